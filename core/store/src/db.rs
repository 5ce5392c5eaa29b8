//! The dialect layer: the one place that knows there are two databases.
//!
//! Store methods write SQL with `$1, $2, ...` placeholders, which both
//! SQLite and PostgreSQL accept, bind values that both can encode, and read
//! columns both can decode. The few real differences (case-insensitive
//! `LIKE`, row locks) are methods here.
//!
//! SQLite gets one writer connection and a pool of readers: SQLite allows
//! one writer at a time anyway, and queueing writers in the pool instead of
//! in SQLite's busy handler keeps latency flat under load and makes
//! `SQLITE_BUSY` impossible. PostgreSQL gets one pool for both.
//!
//! SQLite's write-ahead log is copied into the database file by a
//! background checkpointer (see [`Checkpointer`]), not by the commits.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Decode, Encode, Postgres, Row as _, Sqlite, Type};

use crate::periodic::Periodic;
use crate::{Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Case-insensitive `LIKE`: SQLite's `LIKE` already ignores ASCII case.
    pub(crate) fn ilike(self) -> &'static str {
        match self {
            Backend::Sqlite => "LIKE",
            Backend::Postgres => "ILIKE",
        }
    }
}

/// Tuning knobs with sane defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// PostgreSQL connections per node; SQLite readers.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another process.
    pub busy_timeout: Duration,
    /// Delay before a stream notification is also sent by email.
    pub email_delay: Duration,
    /// The first retry delay of a failed job; later ones double.
    pub job_retry_base: Duration,
    /// The budgets of one rule run.
    pub rule_limits: docket_rules::Limits,
    /// How deep rules may trigger rules through their actions.
    pub rule_depth_limit: u32,
    /// The plugin host: compile cache and default limits.
    pub plugins: docket_plugins::HostConfig,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(10),
            email_delay: Duration::from_secs(30),
            job_retry_base: Duration::from_secs(15),
            rule_limits: docket_rules::Limits::default(),
            rule_depth_limit: docket_domain::rule::DEFAULT_DEPTH_LIMIT,
            plugins: docket_plugins::HostConfig::default(),
        }
    }
}

#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite { writer: SqlitePool, reader: SqlitePool, checkpointer: Arc<Checkpointer> },
    Postgres { pool: PgPool },
}

impl Pools {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Pools> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url, options).await
        } else if url.starts_with("sqlite:") {
            Self::open_sqlite(url, options).await
        } else {
            Err(StoreError::invalid(
                "database_url",
                format!("unsupported database URL `{url}`: use sqlite://PATH or postgres://..."),
            ))
        }
    }

    async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<Pools> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL never corrupts the database; a power cut
            // may lose the last transactions, a crashed process loses none.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000")
            // The checkpointer copies the log in the background; commits
            // only append to it.
            .pragma("wal_autocheckpoint", "0")
            // A log that grew during a burst is cut back once it restarts.
            .pragma("journal_size_limit", WAL_SIZE_LIMIT);
        if let Some(parent) = Path::new(connect.get_filename()).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::invalid("database_url", format!("cannot create folder {}: {e}", parent.display()))
            })?;
        }
        // A SQLite connection cannot drop like a network one, so the pool's
        // ping before every use would only add a round trip to the worker.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        SQLITE_MIGRATIONS.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(1, 8))
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone().read_only(true))
            .await?;
        let checkpointer = Checkpointer::start(connect).await?;
        Ok(Pools::Sqlite { writer, reader, checkpointer: Arc::new(checkpointer) })
    }

    async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Pools> {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        // The migrator holds an advisory lock, so nodes starting together
        // migrate once.
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Pools::Postgres { pool })
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A transaction that may write.
    pub(crate) async fn write(&self) -> Result<Tx> {
        Ok(match self {
            // IMMEDIATE takes the write lock up front, waiting (busy
            // timeout) for another process's writer, e.g. the CLI beside a
            // running server; a deferred BEGIN that later upgrades would
            // fail at once with SQLITE_BUSY instead.
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres { pool } => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A transaction that only reads: on SQLite it runs beside the writer.
    pub(crate) async fn read(&self) -> Result<Tx> {
        Ok(match self {
            Pools::Sqlite { reader, .. } => Tx::Sqlite(reader.begin().await?),
            // One snapshot for the whole read, so a page and its total agree
            // even while others write.
            Pools::Postgres { pool } => {
                Tx::Postgres(pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)
            }
        })
    }

    /// The writer without a transaction, for single-statement writes (one
    /// statement is atomic by itself; this saves BEGIN and COMMIT).
    pub(crate) async fn write_autocommit(&self) -> Result<Tx> {
        Ok(match self {
            Pools::Sqlite { writer, .. } => Tx::SqliteAutocommit(writer.acquire().await?),
            Pools::Postgres { pool } => Tx::PostgresAutocommit(pool.acquire().await?),
        })
    }

    /// A reading connection without a transaction, for the hot paths whose
    /// statements need no common snapshot (authenticating a request): it
    /// saves the BEGIN and COMMIT round trips.
    pub(crate) async fn read_autocommit(&self) -> Result<Tx> {
        Ok(match self {
            Pools::Sqlite { reader, .. } => Tx::SqliteAutocommit(reader.acquire().await?),
            Pools::Postgres { pool } => Tx::PostgresAutocommit(pool.acquire().await?),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Pools::Sqlite { writer, reader, checkpointer } => {
                checkpointer.stop().await;
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres { pool } => pool.close().await,
        }
    }
}

/// How often the checkpointer copies SQLite's write-ahead log into the
/// database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// The size in bytes SQLite's write-ahead log is cut back to when it
/// restarts (64 MiB).
const WAL_SIZE_LIMIT: &str = "67108864";

/// Copies committed pages from SQLite's write-ahead log into the database
/// file, on a connection of its own, twice a second.
///
/// SQLite's automatic checkpoint runs inside whichever commit takes the log
/// past 1,000 pages: that commit then copies them all while holding the
/// single writer, and every other write waits behind it. Commits that
/// touch many tables (a case with its follows, notifications and rule runs)
/// cross the mark more often. A `PASSIVE` checkpoint from another
/// connection copies the same pages beside the writer and the readers,
/// blocking neither. Stopped when the store is closed or dropped; SQLite
/// checkpoints once more when the last connection closes.
pub(crate) struct Checkpointer {
    pool: SqlitePool,
    task: Periodic,
}

impl Checkpointer {
    async fn start(connect: SqliteConnectOptions) -> Result<Checkpointer> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(connect.pragma("cache_size", "-2000"))
            .await?;
        let checkpointed = pool.clone();
        let task = Periodic::start(CHECKPOINT_INTERVAL, move || {
            let pool = checkpointed.clone();
            async move {
                // A checkpoint another process runs at the same time makes
                // this one return early; the next tick catches up.
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                    tracing::warn!(%error, "could not copy the SQLite write-ahead log into the database file");
                }
            }
        });
        Ok(Checkpointer { pool, task })
    }

    async fn stop(&self) {
        self.task.stop().await;
        self.pool.close().await;
    }
}

/// An open transaction on either database (or, for a few reads, a plain
/// connection). Dropped without `commit`, a transaction rolls back.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
    SqliteAutocommit(PoolConnection<Sqlite>),
    PostgresAutocommit(PoolConnection<Postgres>),
}

impl Tx {
    pub(crate) fn query<'q>(&'q mut self, sql: &'q str) -> Query<'q> {
        match self {
            Tx::Sqlite(tx) => Query::Sqlite(tx, sqlx::query(sql)),
            Tx::Postgres(tx) => Query::Postgres(tx, sqlx::query(sql)),
            Tx::SqliteAutocommit(conn) => Query::Sqlite(conn, sqlx::query(sql)),
            Tx::PostgresAutocommit(conn) => Query::Postgres(conn, sqlx::query(sql)),
        }
    }

    /// Runs a statement built with [`Sql`].
    pub(crate) fn built<'q>(&'q mut self, sql: &'q Sql) -> Query<'q> {
        let mut query = self.query(&sql.text);
        for value in &sql.values {
            query = query.bind_value(value);
        }
        query
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::SqliteAutocommit(_) | Tx::PostgresAutocommit(_) => {}
        }
        Ok(())
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) | Tx::SqliteAutocommit(_) => Backend::Sqlite,
            Tx::Postgres(_) | Tx::PostgresAutocommit(_) => Backend::Postgres,
        }
    }

    /// Case-insensitive `LIKE` on this transaction's database.
    pub(crate) fn ilike(&self) -> &'static str {
        self.backend().ilike()
    }

    /// Appended to a `SELECT` that reads a row about to be updated. On
    /// PostgreSQL it locks the row so that two writers serialise instead of
    /// both passing the version check; SQLite has a single writer already.
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) | Tx::SqliteAutocommit(_) => "",
            Tx::Postgres(_) | Tx::PostgresAutocommit(_) => " FOR UPDATE",
        }
    }
}

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    Time(DateTime<Utc>),
    OptionalText(Option<String>),
    OptionalBool(Option<bool>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::OptionalText(v.map(str::to_string))
    }
}
impl From<Option<bool>> for Value {
    fn from(v: Option<bool>) -> Self {
        Value::OptionalBool(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Time(v)
    }
}

/// A statement built piece by piece (list filters), numbering its
/// placeholders as values are added.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql { text: text.to_string(), values: Vec::new() }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Adds a value and writes its placeholder.
    pub(crate) fn value(&mut self, value: impl Into<Value>) -> &mut Sql {
        self.values.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.values.len().to_string());
        self
    }

    /// Writes `(p1, p2, ...)` for a non-empty list of values.
    pub(crate) fn list<V: Into<Value> + Clone>(&mut self, values: &[V]) -> &mut Sql {
        self.text.push('(');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.value(value.clone());
        }
        self.text.push(')');
        self
    }
}

/// A statement with its bound values, ready to run in its transaction.
pub(crate) enum Query<'q> {
    Sqlite(&'q mut SqliteConnection, sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>),
    Postgres(&'q mut PgConnection, sqlx::query::Query<'q, Postgres, PgArguments>),
}

impl<'q> Query<'q> {
    /// Binds the next placeholder.
    pub(crate) fn bind<T>(self, value: T) -> Self
    where
        T: 'q + Send + Encode<'q, Sqlite> + Type<Sqlite> + Encode<'q, Postgres> + Type<Postgres>,
    {
        match self {
            Query::Sqlite(tx, query) => Query::Sqlite(tx, query.bind(value)),
            Query::Postgres(tx, query) => Query::Postgres(tx, query.bind(value)),
        }
    }

    fn bind_value(self, value: &'q Value) -> Self {
        match value {
            Value::Text(v) => self.bind(v.as_str()),
            Value::Int(v) => self.bind(*v),
            Value::Bool(v) => self.bind(*v),
            Value::Time(v) => self.bind(*v),
            Value::OptionalText(v) => self.bind(v.as_deref()),
            Value::OptionalBool(v) => self.bind(*v),
        }
    }

    /// Runs the statement; returns the number of rows it changed.
    pub(crate) async fn execute(self) -> Result<u64> {
        Ok(match self {
            Query::Sqlite(tx, query) => query.execute(&mut *tx).await?.rows_affected(),
            Query::Postgres(tx, query) => query.execute(&mut *tx).await?.rows_affected(),
        })
    }

    pub(crate) async fn fetch_one(self) -> Result<Row> {
        Ok(match self {
            Query::Sqlite(tx, query) => Row::Sqlite(query.fetch_one(&mut *tx).await?),
            Query::Postgres(tx, query) => Row::Postgres(query.fetch_one(&mut *tx).await?),
        })
    }

    pub(crate) async fn fetch_optional(self) -> Result<Option<Row>> {
        Ok(match self {
            Query::Sqlite(tx, query) => query.fetch_optional(&mut *tx).await?.map(Row::Sqlite),
            Query::Postgres(tx, query) => query.fetch_optional(&mut *tx).await?.map(Row::Postgres),
        })
    }

    pub(crate) async fn fetch_all(self) -> Result<Vec<Row>> {
        Ok(match self {
            Query::Sqlite(tx, query) => query.fetch_all(&mut *tx).await?.into_iter().map(Row::Sqlite).collect(),
            Query::Postgres(tx, query) => query.fetch_all(&mut *tx).await?.into_iter().map(Row::Postgres).collect(),
        })
    }
}

/// A result row from either database.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// Reads a column as a type both databases decode.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T>
    where
        T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>,
    {
        Ok(match self {
            Row::Sqlite(row) => row.try_get(column)?,
            Row::Postgres(row) => row.try_get(column)?,
        })
    }
}
