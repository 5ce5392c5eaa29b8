//! Contacts: the people who raise cases. A contact has several email
//! addresses (the first is primary) and may belong to several accounts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Ownership;
use crate::patch::double_option;
use crate::validation::{ValidationErrors, id_list, is_email, optional_text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: String,
    /// First and last name joined, for display.
    pub name: String,
    pub emails: Vec<String>,
    pub phone: Option<String>,
    pub account_ids: Vec<String>,
    pub assigned_user_id: Option<String>,
    pub team_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by_id: Option<String>,
    pub modified_at: DateTime<Utc>,
    pub modified_by_id: Option<String>,
    pub version: i64,
}

impl Contact {
    pub fn ownership(&self) -> Ownership<'_> {
        Ownership {
            assigned_user_id: self.assigned_user_id.as_deref(),
            created_by: self.created_by_id.as_deref(),
            team_ids: &self.team_ids,
            ..Default::default()
        }
    }
}

/// "First Last", or just the last name.
pub fn display_name(first_name: Option<&str>, last_name: &str) -> String {
    match first_name {
        Some(first) if !first.is_empty() => format!("{first} {last_name}"),
        _ => last_name.to_string(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    #[serde(default)]
    pub first_name: Option<String>,
    pub last_name: String,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub account_ids: Vec<String>,
    #[serde(default)]
    pub assigned_user_id: Option<String>,
    #[serde(default)]
    pub team_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default, deserialize_with = "double_option")]
    pub first_name: Option<Option<String>>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub emails: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub phone: Option<Option<String>>,
    #[serde(default)]
    pub account_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub assigned_user_id: Option<Option<String>>,
    #[serde(default)]
    pub team_ids: Option<Vec<String>>,
    #[serde(default)]
    pub version: Option<i64>,
}

/// Lowercases and checks email addresses; no address twice.
pub fn normalize_emails(errors: &mut ValidationErrors, emails: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for email in emails {
        let email = email.trim().to_lowercase();
        if !is_email(&email) {
            errors.add("emails", format!("`{email}` is not a valid email address"));
        } else if out.contains(&email) {
            errors.add("emails", format!("`{email}` listed twice"));
        } else {
            out.push(email);
        }
    }
    if out.len() > 20 {
        errors.add("emails", "at most 20 addresses");
    }
    out
}

fn check_names(errors: &mut ValidationErrors, first_name: Option<&str>, last_name: Option<&str>) {
    if let Some(first) = first_name {
        optional_text(errors, "first_name", first, 100);
    }
    if let Some(last) = last_name {
        if last.trim().is_empty() {
            errors.add("last_name", "required");
        }
        optional_text(errors, "last_name", last, 100);
    }
}

impl NewContact {
    pub fn validate(&mut self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_names(&mut errors, self.first_name.as_deref(), Some(&self.last_name));
        self.emails = normalize_emails(&mut errors, &self.emails);
        if let Some(phone) = &self.phone {
            optional_text(&mut errors, "phone", phone, 50);
        }
        id_list(&mut errors, "account_ids", &self.account_ids);
        id_list(&mut errors, "team_ids", &self.team_ids);
        errors.into_result()
    }
}

impl ContactPatch {
    pub fn apply(&self, current: &Contact) -> Result<Contact, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_names(&mut errors, self.first_name.as_ref().and_then(|f| f.as_deref()), self.last_name.as_deref());
        let emails = self.emails.as_ref().map(|emails| normalize_emails(&mut errors, emails));
        if let Some(Some(phone)) = &self.phone {
            optional_text(&mut errors, "phone", phone, 50);
        }
        for (field, ids) in [("account_ids", &self.account_ids), ("team_ids", &self.team_ids)] {
            if let Some(ids) = ids {
                id_list(&mut errors, field, ids);
            }
        }
        errors.into_result()?;
        let mut next = current.clone();
        if let Some(first_name) = &self.first_name {
            next.first_name = first_name.clone();
        }
        if let Some(last_name) = &self.last_name {
            next.last_name = last_name.trim().to_string();
        }
        next.name = display_name(next.first_name.as_deref(), &next.last_name);
        if let Some(emails) = emails {
            next.emails = emails;
        }
        if let Some(phone) = &self.phone {
            next.phone = phone.clone();
        }
        if let Some(account_ids) = &self.account_ids {
            next.account_ids = account_ids.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        let mut errors = ValidationErrors::new();
        let emails = normalize_emails(&mut errors, &["Ann@Example.com".into(), "ann@example.com".into()]);
        assert_eq!(emails, vec!["ann@example.com".to_string()]);
        assert!(errors.fields["emails"].contains("twice"));
    }
}
