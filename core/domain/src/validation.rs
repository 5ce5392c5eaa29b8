//! Field-level validation errors, shown to users next to the field.

use std::collections::BTreeMap;

/// Validation failures keyed by field name. Empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {}", self.summary())]
pub struct ValidationErrors {
    pub fields: BTreeMap<String, String>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// One failing field.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Records a failure; the first message for a field wins.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.entry(field.to_string()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Ok(())` when nothing failed.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn summary(&self) -> String {
        self.fields.iter().map(|(field, message)| format!("{field}: {message}")).collect::<Vec<_>>().join("; ")
    }
}

/// Checks a required, trimmed text of at most `max` characters.
pub fn required_text(errors: &mut ValidationErrors, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        errors.add(field, "required");
    } else {
        optional_text(errors, field, value, max);
    }
}

/// Checks an optional text of at most `max` characters.
pub fn optional_text(errors: &mut ValidationErrors, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.add(field, format!("at most {max} characters"));
    }
    if value.contains('\0') {
        errors.add(field, "must not contain NUL characters");
    }
}

/// A pragmatic email address check: one `@`, something on both sides, a
/// dot in the domain, no spaces. Deliverability is the mail server's job.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks a list of ids: no duplicates, no empty strings.
pub fn id_list(errors: &mut ValidationErrors, field: &str, ids: &[String]) {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if id.trim().is_empty() {
            errors.add(field, "ids must not be empty");
        } else if !seen.insert(id) {
            errors.add(field, format!("duplicate id {id}"));
        }
    }
    if ids.len() > 100 {
        errors.add(field, "at most 100 ids");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_check_accepts_ordinary_and_rejects_broken_addresses() {
        assert!(is_email("ann@example.com"));
        assert!(is_email("a.b+c@sub.example.org"));
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.com", "ann@.com"] {
            assert!(!is_email(bad), "{bad} accepted");
        }
    }

    #[test]
    fn first_message_per_field_wins() {
        let mut errors = ValidationErrors::new();
        errors.add("name", "required");
        errors.add("name", "too long");
        assert_eq!(errors.fields["name"], "required");
        assert!(errors.into_result().is_err());
    }
}
