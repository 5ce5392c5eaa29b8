//! Record ids: opaque strings to clients.
//!
//! UUIDv7 in its simple (hex) form: ids sort by creation time, which keeps
//! B-tree inserts local on both SQLite and PostgreSQL.

/// A new, unique record id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `s` could be an id we issued. Used to answer 404 early for
/// garbage without touching the database.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
