//! Teams: groups of users, each member with an optional position
//! (assignment rules can target a position within a team).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Ownership;
use crate::validation::{ValidationErrors, optional_text, required_text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub user_id: String,
    #[serde(default)]
    pub position: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub members: Vec<TeamMember>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

impl Team {
    /// A team is "owned" by its members: their `team` level reaches it.
    pub fn team_ids(&self) -> Vec<String> {
        vec![self.id.clone()]
    }

    pub fn ownership<'a>(&self, team_ids: &'a [String]) -> Ownership<'a> {
        Ownership { team_ids, ..Default::default() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub members: Vec<TeamMember>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub members: Option<Vec<TeamMember>>,
    #[serde(default)]
    pub version: Option<i64>,
}

/// Checks a team's name and members (no user twice, positions short).
pub fn validate_team(name: Option<&str>, members: Option<&[TeamMember]>) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if let Some(name) = name {
        required_text(&mut errors, "name", name, 100);
    }
    if let Some(members) = members {
        let mut seen = std::collections::HashSet::new();
        for member in members {
            if !seen.insert(&member.user_id) {
                errors.add("members", format!("user {} listed twice", member.user_id));
            }
            if let Some(position) = &member.position {
                optional_text(&mut errors, "members", position, 100);
            }
        }
    }
    errors.into_result()
}
