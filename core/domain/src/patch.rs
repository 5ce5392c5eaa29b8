//! Helpers for partial updates, where "absent" and "null" mean different
//! things: absent leaves a field alone, null clears it.

use serde::{Deserialize, Deserializer};

/// Deserialises a present field into `Some(value)`, so that together with
/// `#[serde(default)]` an `Option<Option<T>>` tells absent (`None`) from
/// null (`Some(None)`).
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Trims a text and turns an empty one into `None`.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.and_then(|v| {
        let trimmed = v.trim();
        if trimmed.is_empty() { None } else { Some(trimmed.to_string()) }
    })
}
