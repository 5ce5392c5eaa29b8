//! Per-user preferences that change how Docket treats them.

use serde::{Deserialize, Serialize};

use crate::user::UserType;
use crate::validation::ValidationErrors;

/// Record kinds a user may auto-follow (every new one of that kind).
pub const AUTO_FOLLOW_TYPES: [&str; 1] = ["Case"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// "Global auto-follow": follow every new record of these kinds.
    #[serde(default)]
    pub auto_follow_entity_types: Vec<String>,
    /// Follow a case when posting to it.
    #[serde(default = "yes")]
    pub follow_on_post: bool,
    /// Receive stream updates by email too.
    #[serde(default)]
    pub email_notifications: bool,
    /// Follow the cases one creates (portal users always do).
    #[serde(default)]
    pub follow_created: bool,
}

fn yes() -> bool {
    true
}

impl Preferences {
    /// Portal users get stream email by default; agents opt in.
    pub fn defaults_for(user_type: UserType) -> Preferences {
        Preferences {
            auto_follow_entity_types: Vec::new(),
            follow_on_post: true,
            email_notifications: user_type == UserType::Portal,
            follow_created: user_type == UserType::Portal,
        }
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for kind in &self.auto_follow_entity_types {
            if !AUTO_FOLLOW_TYPES.contains(&kind.as_str()) {
                errors.add(
                    "auto_follow_entity_types",
                    format!("unknown value `{kind}`, expected one of: {}", AUTO_FOLLOW_TYPES.join(", ")),
                );
            }
        }
        errors.into_result()
    }
}
