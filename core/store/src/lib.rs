//! Docket's storage.
//!
//! One implementation of every store method, written once over a small
//! dialect layer ([`db`]) that speaks to SQLite or PostgreSQL. Each public
//! method is one transaction, and the methods that change records are the
//! commands of Docket: they check access with the domain's decisions, write
//! the rows, the stream notes and everything else the change implies, then
//! commit. Handlers never see SQL.

mod accounts;
mod attachments;
mod auth;
mod cases;
mod contacts;
mod db;
mod error;
mod events;
mod hooks;
mod inbound;
mod invitations;
mod jobs;
mod kb;
mod mailboxes;
mod periodic;
mod plugins;
mod portals;
mod replies;
mod rows;
mod rules;
mod run_log;
mod search;
mod settings;
mod stream;
mod teams;
mod users;
mod web_form;

pub use attachments::{AttachmentRecord, NewAttachment};
pub use auth::{ApiKeyRecord, LoginUser, NewSession, SessionRecord};
pub use db::{Backend, StoreOptions};
pub use error::StoreError;
pub use events::StreamEvent;
pub use hooks::{BUSINESS_HOURS_SETTING, RULE_CACHE_TTL, RULE_EMAIL_JOB, RULE_HTTP_JOB};
pub use inbound::{AUTO_REPLY_JOB, AUTO_REPLY_LIMIT, FetchedEmail, InboundEmailRecord, Ingested, Quarantine};
pub use invitations::{ACCOUNT_EMAIL_JOB, TokenEmail, TokenHolder, TokenPurpose};
pub use jobs::{DEFAULT_MAX_ATTEMPTS, Job, JobOutcome, NewJob, backoff};
pub use kb::ArticleFilter;
pub use mailboxes::{DEFAULT_MAX_MESSAGE_BYTES, DISTRIBUTIONS, Mailbox, MailboxInput, MailboxSmtp, MailboxStatus};
pub use plugins::{NewPlugin, PluginPatch, PluginRecord, PluginRun};
pub use replies::{EMAIL_REPLY_JOB, EmailReplyFacts};
pub use rules::{RULE_SCHEDULE_JOB, RunFilter, ScheduledRun, parse_schedule};
pub use stream::{EMAIL_NOTIFICATION_JOB, Follower, NotificationEmail, NotificationPage};
pub use web_form::WEB_FORM_CONFIRMATION_JOB;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use db::Pools;
use docket_domain::assignment::{LeastBusy, RoundRobin, Strategy};

/// Result of store methods.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database, shared by every request and worker. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    /// How long a stream email waits before it is sent (so authors can fix
    /// typos, and readers who already saw it in-app get no email).
    email_delay: chrono::Duration,
    /// New notes, for live pages (see `events.rs`).
    events: events::Events,
    /// The first retry delay of a failed job (doubling after).
    job_retry_base: std::time::Duration,
    /// The rules engine (compiled scripts are cached in it).
    rules: Arc<docket_rules::Engine>,
    /// How deep rules may trigger rules.
    depth_limit: u32,
    /// The enabled rules, cached for a second (see `hooks.rs`).
    rule_cache: Arc<hooks::RuleCache>,
    /// Assignment strategies by name: the built-in ones, and plugins'.
    strategies: Arc<RwLock<BTreeMap<String, Arc<dyn Strategy>>>>,
    /// The WebAssembly host, started when a plugin is first used.
    plugin_host: Arc<std::sync::OnceLock<Arc<docket_plugins::PluginHost>>>,
    plugin_config: docket_plugins::HostConfig,
    /// Moves queued rule runs into the run log (see `run_log.rs`).
    run_log: Arc<periodic::Periodic>,
    /// Adds new cases to SQLite's text index (see `search.rs`).
    case_indexer: Arc<Option<periodic::Periodic>>,
}

impl Store {
    /// Opens the database at `url` (`sqlite://path` or `postgres://...`),
    /// creating a SQLite file and its folder when missing, and runs the
    /// migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Store> {
        let pools = Pools::open(url, options).await?;
        let email_delay = chrono::Duration::from_std(options.email_delay).unwrap_or(chrono::Duration::seconds(30));
        let events = events::Events::start(&pools).await?;
        let mut strategies: BTreeMap<String, Arc<dyn Strategy>> = BTreeMap::new();
        for strategy in [Arc::new(RoundRobin) as Arc<dyn Strategy>, Arc::new(LeastBusy)] {
            strategies.insert(strategy.name().to_string(), strategy);
        }
        let run_log = Arc::new(run_log::start_mover(pools.clone()));
        let case_indexer = Arc::new(search::start_indexer(pools.clone()));
        Ok(Store {
            run_log,
            case_indexer,
            pools,
            email_delay,
            events,
            job_retry_base: options.job_retry_base,
            rules: Arc::new(docket_rules::Engine::new(options.rule_limits)),
            depth_limit: options.rule_depth_limit,
            rule_cache: Arc::new(std::sync::Mutex::new(None)),
            strategies: Arc::new(RwLock::new(strategies)),
            plugin_host: Arc::default(),
            plugin_config: options.plugins.clone(),
        })
    }

    /// Adds (or replaces) an assignment strategy, e.g. a plugin's.
    pub fn register_strategy(&self, strategy: Arc<dyn Strategy>) {
        let mut strategies = self.strategies.write().unwrap_or_else(|e| e.into_inner());
        strategies.insert(strategy.name().to_string(), strategy);
    }

    pub(crate) fn strategy(&self, name: &str) -> Option<Arc<dyn Strategy>> {
        self.strategies.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The names of the known strategies, for errors and forms.
    pub fn strategy_names(&self) -> Vec<String> {
        self.strategies.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    pub fn backend(&self) -> Backend {
        self.pools.backend()
    }

    /// Answers once the database does; for health checks.
    pub async fn ping(&self) -> Result<()> {
        let mut tx = self.pools.read().await?;
        tx.query("SELECT 1").execute().await?;
        tx.commit().await
    }

    /// Waits for open connections to finish and closes them; SQLite
    /// checkpoints its write-ahead log on the last close.
    pub async fn close(&self) {
        self.events.stop();
        self.run_log.stop().await;
        if let Some(indexer) = self.case_indexer.as_ref() {
            indexer.stop().await;
        }
        // What is queued goes into the log now rather than at the next start.
        if let Err(error) = run_log::move_queued_runs(&self.pools, run_log::Mover::Background).await {
            tracing::warn!(%error, "could not move queued rule runs into the run log");
        }
        self.pools.close().await;
    }
}

/// The current time, cut to microseconds: PostgreSQL keeps no more, and
/// both backends must give back exactly what was stored.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
