//! Accounts: the customer organisations cases belong to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Ownership;
use crate::patch::double_option;
use crate::validation::{ValidationErrors, id_list, is_email, optional_text, required_text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
    pub assigned_user_id: Option<String>,
    pub team_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by_id: Option<String>,
    pub modified_at: DateTime<Utc>,
    pub modified_by_id: Option<String>,
    pub version: i64,
}

impl Account {
    pub fn ownership(&self) -> Ownership<'_> {
        Ownership {
            assigned_user_id: self.assigned_user_id.as_deref(),
            created_by: self.created_by_id.as_deref(),
            team_ids: &self.team_ids,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub assigned_user_id: Option<String>,
    #[serde(default)]
    pub team_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub website: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub assigned_user_id: Option<Option<String>>,
    #[serde(default)]
    pub team_ids: Option<Vec<String>>,
    #[serde(default)]
    pub version: Option<i64>,
}

fn check_contact_fields(
    errors: &mut ValidationErrors,
    email: Option<&str>,
    phone: Option<&str>,
    website: Option<&str>,
) {
    if let Some(email) = email
        && !is_email(email)
    {
        errors.add("email", "not a valid email address");
    }
    if let Some(phone) = phone {
        optional_text(errors, "phone", phone, 50);
    }
    if let Some(website) = website {
        optional_text(errors, "website", website, 255);
    }
}

impl NewAccount {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        required_text(&mut errors, "name", &self.name, 255);
        check_contact_fields(&mut errors, self.email.as_deref(), self.phone.as_deref(), self.website.as_deref());
        id_list(&mut errors, "team_ids", &self.team_ids);
        errors.into_result()
    }
}

impl AccountPatch {
    pub fn apply(&self, current: &Account) -> Result<Account, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(name) = &self.name {
            required_text(&mut errors, "name", name, 255);
        }
        check_contact_fields(
            &mut errors,
            self.email.as_ref().and_then(|e| e.as_deref()),
            self.phone.as_ref().and_then(|e| e.as_deref()),
            self.website.as_ref().and_then(|e| e.as_deref()),
        );
        if let Some(team_ids) = &self.team_ids {
            id_list(&mut errors, "team_ids", team_ids);
        }
        errors.into_result()?;
        let mut next = current.clone();
        if let Some(name) = &self.name {
            next.name = name.trim().to_string();
        }
        if let Some(email) = &self.email {
            next.email = email.clone();
        }
        if let Some(phone) = &self.phone {
            next.phone = phone.clone();
        }
        if let Some(website) = &self.website {
            next.website = website.clone();
        }
        if let Some(assigned_user_id) = &self.assigned_user_id {
            next.assigned_user_id = assigned_user_id.clone();
        }
        if let Some(team_ids) = &self.team_ids {
            next.team_ids = team_ids.clone();
        }
        Ok(next)
    }
}
