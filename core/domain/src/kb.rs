//! The knowledge base: articles in a tree of categories, published to
//! portals, related to cases and suggested for them.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::{ValidationErrors, id_list, optional_text, required_text};

/// Where an article stands. Only published articles reach customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ArticleStatus {
    #[default]
    Draft,
    #[serde(rename = "In Review")]
    InReview,
    Published,
    Archived,
}

impl ArticleStatus {
    pub const ALL: [ArticleStatus; 4] =
        [ArticleStatus::Draft, ArticleStatus::InReview, ArticleStatus::Published, ArticleStatus::Archived];

    pub fn as_str(self) -> &'static str {
        match self {
            ArticleStatus::Draft => "Draft",
            ArticleStatus::InReview => "In Review",
            ArticleStatus::Published => "Published",
            ArticleStatus::Archived => "Archived",
        }
    }

    pub fn parse(value: &str) -> Result<ArticleStatus, String> {
        ArticleStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| format!("unknown status `{value}`: Draft, In Review, Published or Archived"))
    }
}

/// A knowledge-base article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub id: String,
    pub name: String,
    pub status: ArticleStatus,
    /// A language tag such as `en`; empty for any.
    pub language: String,
    pub portal_ids: Vec<String>,
    pub category_ids: Vec<String>,
    pub publish_date: Option<NaiveDate>,
    /// After this day the article is archived by a job.
    pub expiration_date: Option<NaiveDate>,
    /// Higher first; new articles go on top.
    pub order: i64,
    pub description: Option<String>,
    /// Markdown, rendered and sanitised where shown.
    pub body: String,
    pub assigned_user_id: Option<String>,
    pub attachment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by_id: Option<String>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

/// What a client sends to create or replace an article.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArticleInput {
    pub name: String,
    #[serde(default)]
    pub status: ArticleStatus,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub portal_ids: Vec<String>,
    #[serde(default)]
    pub category_ids: Vec<String>,
    #[serde(default)]
    pub publish_date: Option<NaiveDate>,
    #[serde(default)]
    pub expiration_date: Option<NaiveDate>,
    /// Left out: on top of the others.
    #[serde(default)]
    pub order: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub assigned_user_id: Option<String>,
    /// Files uploaded to `/api/v1/attachments` (or already the article's).
    #[serde(default)]
    pub attachment_ids: Vec<String>,
    #[serde(default)]
    pub version: Option<i64>,
}

/// Largest article body, in characters.
pub const MAX_BODY: usize = 200_000;

/// Largest `order` either way (new articles go one above the highest).
pub const MAX_ORDER: i64 = 1_000_000_000;

impl ArticleInput {
    pub fn validate(mut self) -> Result<ArticleInput, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.name = self.name.trim().to_string();
        required_text(&mut errors, "name", &self.name, 255);
        self.language = self.language.trim().to_string();
        optional_text(&mut errors, "language", &self.language, 20);
        if let Some(description) = &self.description {
            optional_text(&mut errors, "description", description, 5_000);
        }
        optional_text(&mut errors, "body", &self.body, MAX_BODY);
        id_list(&mut errors, "portal_ids", &self.portal_ids);
        id_list(&mut errors, "category_ids", &self.category_ids);
        id_list(&mut errors, "attachment_ids", &self.attachment_ids);
        // Dates are stored as YYYY-MM-DD text and compared as text, which
        // holds for years 1 to 9999 only.
        for (field, date) in [("publish_date", self.publish_date), ("expiration_date", self.expiration_date)] {
            if date.is_some_and(|d| !(1..=9999).contains(&d.year())) {
                errors.add(field, "the year must be between 1 and 9999");
            }
        }
        if self.order.is_some_and(|order| order.abs() > MAX_ORDER) {
            errors.add("order", format!("must be between -{MAX_ORDER} and {MAX_ORDER}"));
        }
        if let (Some(publish), Some(expire)) = (self.publish_date, self.expiration_date)
            && expire <= publish
        {
            errors.add("expiration_date", "must be after the publish date");
        }
        self.portal_ids.sort();
        self.category_ids.sort();
        errors.into_result().map(|()| self)
    }
}

/// A category of the knowledge base; categories form a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub order: i64,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub version: i64,
}

/// What a client sends to create or replace a category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
}

impl CategoryInput {
    pub fn validate(mut self) -> Result<CategoryInput, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.name = self.name.trim().to_string();
        required_text(&mut errors, "name", &self.name, 100);
        if let Some(description) = &self.description {
            optional_text(&mut errors, "description", description, 2_000);
        }
        if self.order.abs() > MAX_ORDER {
            errors.add("order", format!("must be between -{MAX_ORDER} and {MAX_ORDER}"));
        }
        errors.into_result().map(|()| self)
    }
}

/// The words of a text worth searching for, lowercased, at most `limit`:
/// letters and digits only (so that no search syntax gets through), two
/// characters or more, common English words left out.
pub fn search_terms(text: &str, limit: usize) -> Vec<String> {
    const COMMON: [&str; 24] = [
        "the", "and", "for", "are", "but", "not", "you", "all", "can", "was", "our", "has", "have", "with", "this",
        "that", "from", "they", "will", "what", "when", "there", "please", "thanks",
    ];
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() < 2 || COMMON.contains(&word.as_str()) || terms.contains(&word) {
            continue;
        }
        terms.push(word);
        if terms.len() == limit {
            break;
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_are_validated() {
        let input = ArticleInput {
            name: "  Reset your password ".into(),
            body: "Go to **Settings**.".into(),
            publish_date: NaiveDate::from_ymd_opt(2026, 12, 1),
            expiration_date: NaiveDate::from_ymd_opt(2026, 11, 1),
            ..Default::default()
        };
        let errors = input.clone().validate().expect_err("expires before it is published");
        assert!(errors.fields.contains_key("expiration_date"));
        let far = ArticleInput { publish_date: NaiveDate::from_ymd_opt(10_000, 1, 1), ..input.clone() };
        assert!(far.validate().expect_err("year 10000").fields.contains_key("publish_date"));
        let huge = ArticleInput { order: Some(i64::MAX), expiration_date: None, ..input.clone() };
        assert!(huge.validate().expect_err("order").fields.contains_key("order"));
        let valid = ArticleInput { expiration_date: None, ..input }.validate().expect("valid");
        assert_eq!(valid.name, "Reset your password");
        assert_eq!(valid.status, ArticleStatus::Draft);
        assert!(ArticleInput::default().validate().expect_err("no name").fields.contains_key("name"));
    }

    #[test]
    fn statuses_read_as_written() {
        for status in ArticleStatus::ALL {
            assert_eq!(ArticleStatus::parse(status.as_str()), Ok(status));
            assert_eq!(serde_json::to_value(status).expect("json"), status.as_str());
        }
        assert!(ArticleStatus::parse("Gone").is_err());
    }

    #[test]
    fn search_terms_keep_words_only() {
        assert_eq!(
            search_terms("Printer \"offline\" OR NEAR(x) -- the printer is OFFLINE!", 10),
            vec!["printer", "offline", "or", "near", "is"]
        );
        assert_eq!(search_terms("a b c", 10), Vec::<String>::new());
        assert_eq!(search_terms("one two three", 2), vec!["one", "two"]);
    }
}
