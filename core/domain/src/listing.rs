//! Lists: pages, sorting and the filters of case lists.

use serde::Serialize;

use crate::case::{CasePriority, CaseStatus, CaseType};

/// Rows per page when the client does not say.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most rows a page holds; larger requests are capped, not refused.
pub const MAX_LIMIT: i64 = 200;

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// Which rows of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub offset: i64,
}

impl Window {
    /// Caps the limit to [`MAX_LIMIT`] and clamps negatives.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Window {
        Window { limit: limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT), offset: offset.unwrap_or(0).max(0) }
    }
}

impl Default for Window {
    fn default() -> Self {
        Window::new(None, None)
    }
}

/// A sort order: a field and a direction. Parsed from `number` or `-number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<F> {
    pub field: F,
    pub descending: bool,
}

/// The fields case lists sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseSortField {
    Number,
    Name,
    Status,
    Priority,
    CreatedAt,
    ModifiedAt,
    StreamUpdatedAt,
}

impl CaseSortField {
    pub const ALL: [(&'static str, CaseSortField); 7] = [
        ("number", CaseSortField::Number),
        ("name", CaseSortField::Name),
        ("status", CaseSortField::Status),
        ("priority", CaseSortField::Priority),
        ("created_at", CaseSortField::CreatedAt),
        ("modified_at", CaseSortField::ModifiedAt),
        ("stream_updated_at", CaseSortField::StreamUpdatedAt),
    ];
}

/// Parses `field` or `-field` against a list of allowed names; the error
/// lists them.
pub fn parse_sort<F: Copy>(value: &str, allowed: &[(&'static str, F)]) -> Result<Sort<F>, String> {
    let (descending, name) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    allowed.iter().find(|(n, _)| *n == name).map(|(_, field)| Sort { field: *field, descending }).ok_or_else(|| {
        let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
        format!("cannot sort by `{name}`, expected one of: {} (prefix - for descending)", names.join(", "))
    })
}

/// The filters of a case list. Empty means no filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFilter {
    pub statuses: Vec<CaseStatus>,
    /// `Some(true)`: open cases only; `Some(false)`: closed ones only.
    pub open: Option<bool>,
    pub priorities: Vec<CasePriority>,
    pub case_type: Option<CaseType>,
    pub assigned_user_id: Option<String>,
    pub team_id: Option<String>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    /// Text over name, number and description.
    pub q: Option<String>,
    pub sort: Sort<CaseSortField>,
    pub window: Window,
}

impl Default for CaseFilter {
    fn default() -> Self {
        CaseFilter {
            statuses: Vec::new(),
            open: None,
            priorities: Vec::new(),
            case_type: None,
            assigned_user_id: None,
            team_id: None,
            account_id: None,
            contact_id: None,
            q: None,
            // Newest first, as helpdesks show them.
            sort: Sort { field: CaseSortField::Number, descending: true },
            window: Window::default(),
        }
    }
}

/// Text search over a simple list (accounts, contacts, users, teams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimpleFilter {
    pub q: Option<String>,
    pub account_id: Option<String>,
    /// `None`: the list's natural order (by name).
    pub sort: Option<Sort<SimpleSortField>>,
    pub window: Window,
}

/// The fields simple lists (accounts, contacts, users, teams) sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleSortField {
    Name,
    CreatedAt,
    ModifiedAt,
}

impl SimpleSortField {
    pub const ALL: [(&'static str, SimpleSortField); 3] = [
        ("name", SimpleSortField::Name),
        ("created_at", SimpleSortField::CreatedAt),
        ("modified_at", SimpleSortField::ModifiedAt),
    ];
}

/// `ORDER BY` for a simple list: `name` is the list's own name columns, the
/// id breaks ties so pages never overlap.
pub fn simple_order(sort: Option<Sort<SimpleSortField>>, alias: &str, name_columns: &[&str]) -> String {
    let (field, descending) = match sort {
        Some(sort) => (sort.field, sort.descending),
        None => (SimpleSortField::Name, false),
    };
    let direction = if descending { "DESC" } else { "ASC" };
    let columns: Vec<String> = match field {
        SimpleSortField::Name => name_columns.iter().map(|c| format!("{alias}.{c} {direction}")).collect(),
        SimpleSortField::CreatedAt => vec![format!("{alias}.created_at {direction}")],
        SimpleSortField::ModifiedAt => vec![format!("{alias}.modified_at {direction}")],
    };
    format!(" ORDER BY {}, {alias}.id {direction}", columns.join(", "))
}

/// Escapes `%`, `_` and `\` so that user text matches literally in a
/// `LIKE ... ESCAPE '\'` pattern.
pub fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_capped_not_refused() {
        assert_eq!(Window::new(Some(1_000_000), None).limit, MAX_LIMIT);
        assert_eq!(Window::new(Some(-5), Some(-3)), Window { limit: 1, offset: 0 });
        assert_eq!(Window::new(None, None).limit, DEFAULT_LIMIT);
    }

    #[test]
    fn sort_parses_direction_and_lists_allowed_fields() {
        let sort = parse_sort("-number", &CaseSortField::ALL).expect("valid");
        assert!(sort.descending);
        assert_eq!(sort.field, CaseSortField::Number);
        let error = parse_sort("password", &CaseSortField::ALL).expect_err("invalid");
        assert!(error.contains("created_at"));
    }

    #[test]
    fn simple_lists_order_by_name_unless_told_otherwise() {
        assert_eq!(
            simple_order(None, "k", &["last_name", "first_name"]),
            " ORDER BY k.last_name ASC, k.first_name ASC, k.id ASC"
        );
        let newest = Some(Sort { field: SimpleSortField::CreatedAt, descending: true });
        assert_eq!(simple_order(newest, "a", &["name"]), " ORDER BY a.created_at DESC, a.id DESC");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
