//! Users, their types and roles.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{Ownership, Permissions};
use crate::patch::double_option;
use crate::validation::{ValidationErrors, id_list, is_email, optional_text, required_text};

/// Shortest password Docket accepts.
pub const PASSWORD_MIN: usize = 8;
/// Longest password (argon2 input is bounded to keep hashing cheap to refuse).
pub const PASSWORD_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    /// Everything, including the admin area; roles do not apply.
    Admin,
    /// Support staff, limited by roles.
    #[default]
    Agent,
    /// Customers using a portal.
    Portal,
    /// Integrations using API keys, limited by roles.
    Api,
}

impl UserType {
    pub const ALL: [UserType; 4] = [UserType::Admin, UserType::Agent, UserType::Portal, UserType::Api];

    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Admin => "admin",
            UserType::Agent => "agent",
            UserType::Portal => "portal",
            UserType::Api => "api",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.as_str() == value).ok_or_else(|| {
            format!("unknown value `{value}`, expected one of: {}", Self::ALL.map(Self::as_str).join(", "))
        })
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub name: String,
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub user_type: UserType,
    pub is_active: bool,
    pub team_ids: Vec<String>,
    pub role_ids: Vec<String>,
    /// The contact a portal user is.
    pub contact_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

impl User {
    pub fn ownership(&self) -> Ownership<'_> {
        Ownership { assigned_user_id: Some(&self.id), team_ids: &self.team_ids, ..Default::default() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub user_type: UserType,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub team_ids: Vec<String>,
    #[serde(default)]
    pub role_ids: Vec<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, rename = "type")]
    pub user_type: Option<UserType>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub team_ids: Option<Vec<String>>,
    #[serde(default)]
    pub role_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub contact_id: Option<Option<String>>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
}

/// Usernames: 1 to 64 of lowercase letters, digits and `._@-`. Stored
/// lowercased so that `Ann` and `ann` cannot both exist.
pub fn normalize_username(errors: &mut ValidationErrors, username: &str) -> String {
    let username = username.trim().to_lowercase();
    if username.is_empty() {
        errors.add("username", "required");
    } else if username.len() > 64 {
        errors.add("username", "at most 64 characters");
    } else if !username.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c)) {
        errors.add("username", "only letters, digits and . _ @ - are allowed");
    }
    username
}

pub fn check_password(errors: &mut ValidationErrors, password: &str) {
    let length = password.chars().count();
    if length < PASSWORD_MIN {
        errors.add("password", format!("at least {PASSWORD_MIN} characters"));
    } else if length > PASSWORD_MAX {
        errors.add("password", format!("at most {PASSWORD_MAX} characters"));
    }
}

pub fn check_email(errors: &mut ValidationErrors, field: &str, email: &str) {
    if !is_email(email) {
        errors.add(field, "not a valid email address");
    }
}

/// What staff send to invite a contact to the portal: a portal user is
/// made for the contact and emailed a link to set their password.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalInvitation {
    /// The login name; the contact's first email address when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// The portal the email links to; the default portal when absent.
    #[serde(default)]
    pub portal_id: Option<String>,
}

impl NewUser {
    /// A portal user for a contact who will set their own password from an
    /// invitation: no password yet, the contact's name and email.
    pub fn invited(
        contact_id: &str,
        name: &str,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Result<NewUser, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let Some(email) = email else {
            errors.add("contact_id", "the contact has no email address to send the invitation to");
            return Err(errors);
        };
        check_email(&mut errors, "email", email);
        let username = normalize_username(&mut errors, username.unwrap_or(email));
        errors.into_result()?;
        Ok(NewUser {
            username,
            name: Some(name.to_string()),
            email: Some(email.to_string()),
            user_type: UserType::Portal,
            is_active: true,
            team_ids: Vec::new(),
            role_ids: Vec::new(),
            contact_id: Some(contact_id.to_string()),
            password: None,
        })
    }

    /// Validates and normalises; returns the username to store.
    pub fn validate(&mut self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.username = normalize_username(&mut errors, &self.username);
        if let Some(name) = &self.name {
            optional_text(&mut errors, "name", name, 255);
        }
        if let Some(email) = &self.email {
            check_email(&mut errors, "email", email);
        }
        match &self.password {
            Some(password) => check_password(&mut errors, password),
            // Everyone but integrations logs in with a password.
            None if self.user_type != UserType::Api => errors.add("password", "required"),
            None => {}
        }
        if self.user_type == UserType::Portal {
            if self.contact_id.is_none() {
                errors.add("contact_id", "required for portal users");
            }
            if !self.role_ids.is_empty() {
                errors.add("role_ids", "portal users do not take agent roles");
            }
        } else if self.contact_id.is_some() {
            errors.add("contact_id", "only portal users are linked to a contact");
        }
        id_list(&mut errors, "team_ids", &self.team_ids);
        id_list(&mut errors, "role_ids", &self.role_ids);
        errors.into_result()
    }
}

impl UserPatch {
    pub fn validate(&mut self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(username) = &self.username {
            self.username = Some(normalize_username(&mut errors, username));
        }
        if let Some(name) = &self.name {
            required_text(&mut errors, "name", name, 255);
        }
        if let Some(Some(email)) = &self.email {
            check_email(&mut errors, "email", email);
        }
        if let Some(password) = &self.password {
            check_password(&mut errors, password);
        }
        for (field, ids) in [("team_ids", &self.team_ids), ("role_ids", &self.role_ids)] {
            if let Some(ids) = ids {
                id_list(&mut errors, field, ids);
            }
        }
        errors.into_result()
    }
}

/// A role: a named set of permission levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub permissions: Permissions,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    pub name: String,
    #[serde(default)]
    pub permissions: Permissions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub permissions: Option<Permissions>,
    #[serde(default)]
    pub version: Option<i64>,
}

pub fn check_role_name(name: &str) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    required_text(&mut errors, "name", name, 100);
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_restricted() {
        let mut errors = ValidationErrors::new();
        assert_eq!(normalize_username(&mut errors, " Ann.Lee "), "ann.lee");
        assert!(errors.is_empty());
        normalize_username(&mut errors, "ann lee");
        assert!(errors.fields.contains_key("username"));
    }

    #[test]
    fn portal_users_need_a_contact_and_agents_a_password() {
        let mut portal = NewUser {
            username: "c".into(),
            user_type: UserType::Portal,
            password: Some("long enough".into()),
            ..Default::default()
        };
        assert!(portal.validate().expect_err("no contact").fields.contains_key("contact_id"));
        let mut agent = NewUser { username: "a".into(), user_type: UserType::Agent, ..Default::default() };
        assert_eq!(agent.validate().expect_err("no password").fields["password"], "required");
        let mut api = NewUser { username: "bot".into(), user_type: UserType::Api, ..Default::default() };
        assert!(api.validate().is_ok());
    }
}
