//! Portals and what their users may reach.
//!
//! A portal user is a user of type portal linked to a contact (and through
//! it to the contact's accounts). Portal roles give, for cases, a
//! [`PortalLevel`] per action (create, read, edit, stream) and one for
//! reading knowledge-base articles. A user's portal roles merge with the
//! roles of the portal they are in, taking the widest level per cell.
//! Internal cases are invisible at every level.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::case::{CasePriority, CaseType};
use crate::validation::{ValidationErrors, optional_text, required_text};

/// How far a portal permission reaches. Ordered from narrowest to widest,
/// so that merging roles is `max`; each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PortalLevel {
    #[default]
    No,
    /// Cases the user created.
    Own,
    /// And cases among whose contacts is the user's contact.
    Contact,
    /// And cases of one of the user's accounts.
    Account,
    /// Every case that is not internal.
    All,
}

impl PortalLevel {
    pub const ALL: [PortalLevel; 5] =
        [PortalLevel::All, PortalLevel::Account, PortalLevel::Contact, PortalLevel::Own, PortalLevel::No];

    pub fn as_str(self) -> &'static str {
        match self {
            PortalLevel::No => "no",
            PortalLevel::Own => "own",
            PortalLevel::Contact => "contact",
            PortalLevel::Account => "account",
            PortalLevel::All => "all",
        }
    }
}

/// What a portal user wants to do with a case. `Stream` is reading its
/// stream and posting replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortalAction {
    Create,
    Read,
    Edit,
    Stream,
}

/// A portal role's levels for cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalCaseLevels {
    pub create: PortalLevel,
    pub read: PortalLevel,
    pub edit: PortalLevel,
    pub stream: PortalLevel,
}

impl PortalCaseLevels {
    pub fn get(&self, action: PortalAction) -> PortalLevel {
        match action {
            PortalAction::Create => self.create,
            PortalAction::Read => self.read,
            PortalAction::Edit => self.edit,
            PortalAction::Stream => self.stream,
        }
    }
}

/// A portal role's levels for knowledge-base articles: `no` or `all`
/// (articles belong to no one; which ones a portal shows is the portal's
/// business).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalArticleLevels {
    pub read: PortalLevel,
}

/// A portal role's permissions. Kinds a role leaves out get `no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalPermissions {
    pub case: PortalCaseLevels,
    pub kb_article: PortalArticleLevels,
}

impl PortalPermissions {
    /// The widest level of each cell across both.
    pub fn merge(&self, other: &PortalPermissions) -> PortalPermissions {
        PortalPermissions {
            case: PortalCaseLevels {
                create: self.case.create.max(other.case.create),
                read: self.case.read.max(other.case.read),
                edit: self.case.edit.max(other.case.edit),
                stream: self.case.stream.max(other.case.stream),
            },
            kb_article: PortalArticleLevels { read: self.kb_article.read.max(other.kb_article.read) },
        }
    }

    /// What a portal user gets when neither they nor their portal have a
    /// role: create cases, read them and their contact's, reply on those,
    /// read the knowledge base. This is what portal users could do before
    /// portal roles existed.
    pub fn fallback() -> PortalPermissions {
        PortalPermissions {
            case: PortalCaseLevels {
                create: PortalLevel::Own,
                read: PortalLevel::Contact,
                edit: PortalLevel::No,
                stream: PortalLevel::Contact,
            },
            kb_article: PortalArticleLevels { read: PortalLevel::All },
        }
    }

    /// Errors for levels that mean nothing: articles are read by `all` or
    /// `no`, and creating is allowed (any level) or not (`no`).
    pub fn validate(&self, errors: &mut ValidationErrors) {
        if !matches!(self.kb_article.read, PortalLevel::No | PortalLevel::All) {
            errors.add("permissions.kb_article.read", "must be all or no");
        }
        if !matches!(self.case.create, PortalLevel::No | PortalLevel::Own) {
            errors.add("permissions.case.create", "must be own (may create) or no");
        }
    }
}

/// The access a portal user has where they are: their merged permissions
/// and the accounts of their contact (for the `account` level).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortalAccess {
    pub permissions: PortalPermissions,
    pub account_ids: Vec<String>,
    /// The portal whose pages the user is on; `None` means the default
    /// portal (the API and emails).
    pub portal_id: Option<String>,
}

/// A portal role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRole {
    pub id: String,
    pub name: String,
    pub permissions: PortalPermissions,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

/// What a client sends to create or replace a portal role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalRoleInput {
    pub name: String,
    #[serde(default)]
    pub permissions: PortalPermissions,
    /// For updates: the version the client read (409 when stale).
    #[serde(default)]
    pub version: Option<i64>,
}

impl PortalRoleInput {
    pub fn validate(mut self) -> Result<PortalRoleInput, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.name = self.name.trim().to_string();
        required_text(&mut errors, "name", &self.name, 100);
        self.permissions.validate(&mut errors);
        errors.into_result().map(|()| self)
    }
}

/// How a portal looks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Branding {
    /// The name shown in the portal's header; the portal's name if empty.
    pub title: String,
    /// An image URL (https, or a path on this server).
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub primary_color: Option<String>,
    /// A language tag such as `en` or `pt-BR`.
    pub language: String,
}

/// A portal's public case form: a page under the portal and a JSON
/// endpoint other sites may post to, for visitors without a login.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebForm {
    pub enabled: bool,
    /// Sites whose pages may post to the form from a browser (CORS), as
    /// origins: `https://www.example.com`. The portal's own page always may.
    pub allowed_origins: Vec<String>,
    /// What a case from the form gets (Normal when unset).
    pub priority: Option<CasePriority>,
    #[serde(rename = "type")]
    pub case_type: Option<CaseType>,
    pub team_ids: Vec<String>,
}

/// At most this many allowed origins per form.
pub const MAX_ORIGINS: usize = 20;

impl WebForm {
    fn validate(&mut self, errors: &mut ValidationErrors) {
        for origin in &mut self.allowed_origins {
            *origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        }
        self.allowed_origins.retain(|o| !o.is_empty());
        self.allowed_origins.sort();
        self.allowed_origins.dedup();
        if self.allowed_origins.len() > MAX_ORIGINS {
            errors.add("web_form.allowed_origins", format!("at most {MAX_ORIGINS}"));
        }
        if let Some(bad) = self.allowed_origins.iter().find(|o| !is_origin(o)) {
            errors.add(
                "web_form.allowed_origins",
                format!("{bad} is not an origin such as https://www.example.com (scheme and host, no path)"),
            );
        }
        crate::validation::id_list(errors, "web_form.team_ids", &self.team_ids);
        self.team_ids.sort();
        self.team_ids.dedup();
    }

    /// Whether a browser page of `origin` may post to the form.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.allowed_origins.contains(&origin)
    }
}

/// What a visitor sends through a portal's public case form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebFormInput {
    pub name: String,
    pub email: String,
    pub subject: String,
    pub description: String,
}

impl WebFormInput {
    /// Trims, lowercases the address, and checks every field.
    pub fn validate(mut self) -> Result<WebFormInput, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.name = self.name.trim().to_string();
        required_text(&mut errors, "name", &self.name, 100);
        self.email = self.email.trim().to_lowercase();
        if !crate::validation::is_email(&self.email) {
            errors.add("email", "not a valid email address");
        }
        self.subject = self.subject.trim().to_string();
        required_text(&mut errors, "subject", &self.subject, crate::case::NAME_MAX);
        self.description = self.description.trim().to_string();
        required_text(&mut errors, "description", &self.description, crate::case::DESCRIPTION_MAX);
        errors.into_result().map(|()| self)
    }
}

/// `http(s)://host[:port]`, nothing more.
fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    origin.len() <= 200
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !rest.starts_with(':')
}

/// A portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portal {
    pub id: String,
    pub name: String,
    /// The portal answers at `/portal/<slug>`; the default one at `/portal`
    /// too.
    pub slug: String,
    pub is_active: bool,
    pub is_default: bool,
    pub role_ids: Vec<String>,
    pub branding: Branding,
    pub web_form: WebForm,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

/// What a client sends to create or replace a portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalInput {
    pub name: String,
    pub slug: String,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub role_ids: Vec<String>,
    #[serde(default)]
    pub branding: Branding,
    #[serde(default)]
    pub web_form: WebForm,
    #[serde(default)]
    pub version: Option<i64>,
}

fn yes() -> bool {
    true
}

impl PortalInput {
    pub fn validate(mut self) -> Result<PortalInput, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.name = self.name.trim().to_string();
        required_text(&mut errors, "name", &self.name, 100);
        self.slug = self.slug.trim().to_ascii_lowercase();
        if !is_slug(&self.slug) {
            errors.add("slug", "use 1 to 40 lowercase letters, digits and dashes, starting with a letter or digit");
        }
        crate::validation::id_list(&mut errors, "role_ids", &self.role_ids);
        self.branding.title = self.branding.title.trim().to_string();
        optional_text(&mut errors, "branding.title", &self.branding.title, 100);
        if let Some(url) = &self.branding.logo_url
            && !(url.starts_with("https://") || (url.starts_with('/') && !url.starts_with("//")))
        {
            errors.add("branding.logo_url", "must be an https:// URL or a path on this server");
        }
        if let Some(url) = &self.branding.logo_url {
            optional_text(&mut errors, "branding.logo_url", url, 500);
        }
        if let Some(color) = &self.branding.primary_color
            && !(color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            errors.add("branding.primary_color", "must be a colour such as #1f6feb");
        }
        self.branding.language = self.branding.language.trim().to_string();
        if !self.branding.language.is_empty() && !is_language_tag(&self.branding.language) {
            errors.add("branding.language", "must be a language tag such as en or pt-BR");
        }
        if !self.is_active && self.is_default {
            errors.add("is_default", "the default portal must be active");
        }
        self.web_form.validate(&mut errors);
        self.role_ids.sort();
        errors.into_result().map(|()| self)
    }
}

/// Slugs that would collide with the portal's own pages.
const RESERVED_SLUGS: [&str; 6] = ["login", "logout", "static", "api", "form", "assets"];

fn is_slug(slug: &str) -> bool {
    (1..=40).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !RESERVED_SLUGS.contains(&slug)
}

fn is_language_tag(tag: &str) -> bool {
    tag.len() <= 20
        && tag.split('-').all(|part| (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_takes_the_widest_level_per_cell() {
        let reader = PortalPermissions {
            case: PortalCaseLevels { read: PortalLevel::Account, ..Default::default() },
            ..Default::default()
        };
        let writer = PortalPermissions {
            case: PortalCaseLevels {
                create: PortalLevel::Own,
                read: PortalLevel::Own,
                stream: PortalLevel::Contact,
                ..Default::default()
            },
            kb_article: PortalArticleLevels { read: PortalLevel::All },
        };
        let merged = reader.merge(&writer);
        assert_eq!(merged.case.read, PortalLevel::Account);
        assert_eq!(merged.case.create, PortalLevel::Own);
        assert_eq!(merged.case.stream, PortalLevel::Contact);
        assert_eq!(merged.case.edit, PortalLevel::No);
        assert_eq!(merged.kb_article.read, PortalLevel::All);
    }

    #[test]
    fn portals_are_validated() {
        let input = PortalInput {
            name: " Customers ".into(),
            slug: "Help-Desk".into(),
            is_active: true,
            is_default: true,
            role_ids: vec!["b".into(), "a".into()],
            branding: Branding {
                primary_color: Some("#1F6feb".into()),
                language: "pt-BR".into(),
                ..Default::default()
            },
            web_form: WebForm {
                allowed_origins: vec![" https://WWW.Example.com/ ".into(), "".into()],
                ..Default::default()
            },
            version: None,
        };
        let valid = input.clone().validate().expect("valid");
        assert_eq!((valid.name.as_str(), valid.slug.as_str()), ("Customers", "help-desk"));
        assert_eq!(valid.role_ids, vec!["a", "b"]);
        assert_eq!(valid.web_form.allowed_origins, vec!["https://www.example.com"]);
        assert!(valid.web_form.allows_origin("https://www.example.com"));
        assert!(!valid.web_form.allows_origin("https://evil.example.com"));
        for (slug, ok) in [("login", false), ("-x", false), ("a b", false), ("", false), ("support2", true)] {
            let result = PortalInput { slug: slug.into(), ..input.clone() }.validate();
            assert_eq!(result.is_ok(), ok, "{slug}");
        }
        let bad = PortalInput {
            is_active: false,
            branding: Branding {
                logo_url: Some("javascript:alert(1)".into()),
                primary_color: Some("red".into()),
                language: "en_US!".into(),
                ..Default::default()
            },
            web_form: WebForm { allowed_origins: vec!["https://example.com/form".into()], ..Default::default() },
            ..input
        }
        .validate()
        .expect_err("invalid");
        for field in [
            "is_default",
            "branding.logo_url",
            "branding.primary_color",
            "branding.language",
            "web_form.allowed_origins",
        ] {
            assert!(bad.fields.contains_key(field), "{field}: {bad:?}");
        }
    }

    #[test]
    fn meaningless_levels_are_refused() {
        let role = PortalRoleInput {
            name: "Odd".into(),
            permissions: PortalPermissions {
                case: PortalCaseLevels { create: PortalLevel::Account, ..Default::default() },
                kb_article: PortalArticleLevels { read: PortalLevel::Own },
            },
            version: None,
        };
        let errors = role.validate().expect_err("invalid");
        assert!(errors.fields.contains_key("permissions.case.create"));
        assert!(errors.fields.contains_key("permissions.kb_article.read"));
    }
}
