//! The store's errors: what went wrong, in terms callers can act on.

use docket_domain::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record, or one the actor may not read.
    #[error("not found")]
    NotFound,
    /// The actor may read the record but not do this to it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The record changed since the version the client saw.
    #[error("the record was changed by someone else; current version is {current}")]
    VersionConflict { current: i64 },
    /// A unique value is already taken.
    #[error("{0}")]
    Duplicate(String),
    /// Input that only the database can check (references to records that
    /// do not exist, for instance).
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A `case.before_save` rule refused the change; the message is the
    /// rule's, for the user.
    #[error("{message}")]
    Rejected { rule: String, message: String },
    /// The change conflicts with the state of other records (a plugin
    /// that rules still use, say).
    #[error("{0}")]
    Conflict(String),
    /// A part of the server this needs could not start.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A stored value this version cannot read (a bug or a manual edit).
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A single-field validation error.
    pub fn invalid(field: &str, message: impl Into<String>) -> StoreError {
        StoreError::Invalid(ValidationErrors::single(field, message))
    }

    /// Whether trying the same thing again later may succeed: the database
    /// unreachable, busy or shutting down, a serialization conflict. Other
    /// database errors (a value it refuses, a limit) fail the same way
    /// every time.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => {
                    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                        // Connection (08), transaction rollback (40),
                        // resources (53), operator intervention (57),
                        // system (58).
                        ["08", "40", "53", "57", "58"].iter().any(|class| pg.code().starts_with(class))
                    } else {
                        // SQLite: BUSY (5), LOCKED (6), IOERR (10), FULL
                        // (13), by the primary code of the extended one.
                        let code = db.code().and_then(|c| c.parse::<u32>().ok()).unwrap_or(0);
                        matches!(code & 0xff, 5 | 6 | 10 | 13)
                    }
                }
                _ => false,
            },
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
                StoreError::Duplicate("a record with this value already exists".to_string())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt(error.to_string()),
            _ => StoreError::Database(error),
        }
    }
}
