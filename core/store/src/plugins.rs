//! The plugin registry and the calls into plugins: uploads checked by the
//! host, grants and configuration, the per-plugin storage, and the run log.
//!
//! Plugins run inside the transaction of the change that called them, like
//! rules. A plugin granted no data capability runs in place; one that may
//! read or write data runs on a blocking thread and its host calls come
//! back over a channel to the task holding the transaction (see
//! [`IoRequest`]), each under a savepoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::assignment::Choice;
use docket_domain::case::Case;
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::{Page, Window};
use docket_domain::rule::{Rule, RuleAction};
use docket_plugins::{
    ActorView, AssignmentRequest, Call, CandidateView, Capability, CaseSnapshot, EmailDecision, Grants, LimitsOverride,
    LogLine, Manifest, ParsedEmail, PluginError, PluginHost, PluginIo, Prepared, Report, RuleEvent, SetOutcome, World,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::instrument;

use crate::db::{Row, Tx};
use crate::hooks::{Trigger, ask_blocking, end_savepoint};
use crate::rows::json_column;
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

/// A plugin as the registry shows it (without the component's bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginRecord {
    pub id: String,
    pub name: String,
    pub version: String,
    pub world: World,
    pub wit_version: String,
    pub description: String,
    /// What the manifest asks for.
    pub requested: Grants,
    /// What an admin granted.
    pub grants: Grants,
    pub config: serde_json::Value,
    pub limits: LimitsOverride,
    pub enabled: bool,
    /// Imports, exports and host functions, as the host read them.
    pub inspection: serde_json::Value,
    pub component_hash: String,
    pub component_size: i64,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// An upload: the manifest, the component and the admin's choices.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    pub manifest: Manifest,
    pub component: Vec<u8>,
    pub grants: Grants,
    pub enabled: bool,
}

/// What an admin may change on an installed plugin.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub grants: Option<Grants>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub limits: Option<LimitsOverride>,
}

/// One plugin call in the run log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginRun {
    pub id: String,
    pub plugin_id: Option<String>,
    pub plugin_name: String,
    pub world: String,
    pub rule_id: Option<String>,
    /// The rule's name, when read back from the log (the rule may have
    /// been deleted since).
    pub rule_name: Option<String>,
    pub case_id: Option<String>,
    /// The case's number, when read back from the log.
    pub case_number: Option<i64>,
    /// `ok` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub log: Vec<LogLine>,
    pub fuel_used: i64,
    pub peak_memory: i64,
    pub duration_us: i64,
    pub started_at: DateTime<Utc>,
    /// Succeeded without acting or logging: not written to the log, like
    /// rule runs that did nothing (they would be most of it).
    #[serde(skip)]
    pub quiet: bool,
}

const PLUGIN_COLUMNS: &str = "id, name, version, world, wit_version, description, requested, grants, config, \
     limits, is_enabled, inspection, component_hash, component_size, created_at, modified_at";

fn plugin_from_row(row: &Row) -> Result<PluginRecord> {
    let world: String = row.get("world")?;
    Ok(PluginRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        version: row.get("version")?,
        world: World::parse(&world).ok_or_else(|| StoreError::Corrupt(format!("plugin world {world}")))?,
        wit_version: row.get("wit_version")?,
        description: row.get("description")?,
        requested: json_column(row, "requested")?,
        grants: json_column(row, "grants")?,
        config: json_column(row, "config")?,
        limits: json_column(row, "limits")?,
        enabled: row.get("is_enabled")?,
        inspection: json_column(row, "inspection")?,
        component_hash: row.get("component_hash")?,
        component_size: row.get("component_size")?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
    })
}

fn run_from_row(row: &Row) -> Result<PluginRun> {
    Ok(PluginRun {
        id: row.get("id")?,
        plugin_id: row.get("plugin_id")?,
        plugin_name: row.get("plugin_name")?,
        world: row.get("world")?,
        rule_id: row.get("rule_id")?,
        rule_name: row.get("rule_name")?,
        case_id: row.get("case_id")?,
        case_number: row.get("case_number")?,
        outcome: row.get("outcome")?,
        error: row.get("error")?,
        log: json_column(row, "log")?,
        fuel_used: row.get("fuel_used")?,
        peak_memory: row.get("peak_memory")?,
        duration_us: row.get("duration_us")?,
        started_at: row.get("started_at")?,
        quiet: false,
    })
}

fn invalid(error: PluginError) -> StoreError {
    StoreError::invalid("component", error.to_string())
}

/// Grants must be among the capabilities the manifest asked for.
fn check_grants(requested: &Grants, grants: &Grants) -> Result<()> {
    if let Some(extra) = grants.difference(requested).next() {
        return Err(StoreError::invalid(
            "grants",
            format!("`{extra}` was not requested by the plugin's manifest; grant only what it asks for"),
        ));
    }
    Ok(())
}

impl Store {
    /// The node's plugin host, started on first use (a store that never
    /// meets a plugin never starts wasmtime).
    pub fn plugin_host(&self) -> Result<Arc<PluginHost>> {
        if let Some(host) = self.plugin_host.get() {
            return Ok(host.clone());
        }
        let host =
            Arc::new(PluginHost::new(self.plugin_config.clone()).map_err(|e| StoreError::Unavailable(e.to_string()))?);
        Ok(self.plugin_host.get_or_init(|| host).clone())
    }

    /// Runs `work` on the plugin host off the async threads: compiling a
    /// large component takes seconds the first time (then the cache
    /// answers).
    async fn on_host<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PluginHost) -> std::result::Result<T, PluginError> + Send + 'static,
    ) -> Result<std::result::Result<T, PluginError>> {
        let host = self.plugin_host()?;
        tokio::task::spawn_blocking(move || work(&host))
            .await
            .map_err(|e| StoreError::Corrupt(format!("compiling a plugin panicked: {e}")))
    }

    /// Compiles, checks and links a component with these grants.
    async fn prepare_component(
        &self,
        bytes: Arc<Vec<u8>>,
        grants: Grants,
    ) -> Result<std::result::Result<Arc<Prepared>, PluginError>> {
        self.on_host(move |host| host.prepare(&bytes, &grants)).await
    }

    /// Installs a plugin (admins). The component is compiled and checked
    /// against its manifest: the world it exports, the WIT version, the
    /// imports; enabling it also checks the grants cover its imports.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn install_plugin(&self, actor: &Actor, new: NewPlugin) -> Result<PluginRecord> {
        require_admin(actor, "install plugins")?;
        new.manifest.validate().map_err(|e| StoreError::invalid("manifest", e.to_string()))?;
        let requested = new.manifest.requested();
        check_grants(&requested, &new.grants)?;
        let bytes = Arc::new(new.component);
        let inspecting = bytes.clone();
        let inspection = self.on_host(move |host| host.inspect(&inspecting)).await?.map_err(invalid)?;
        if inspection.world != new.manifest.world {
            return Err(StoreError::invalid(
                "manifest",
                format!(
                    "the manifest says world `{}` but the component exports docket:plugin/{}@{} (world `{}`)",
                    new.manifest.world,
                    inspection.world.handler(),
                    inspection.wit_version,
                    inspection.world
                ),
            ));
        }
        if let Some(missing) = inspection.needs.difference(&requested).next() {
            return Err(StoreError::invalid(
                "manifest",
                format!("the component needs the `{missing}` capability, which its manifest does not request"),
            ));
        }
        if new.enabled {
            self.prepare_component(bytes.clone(), new.grants.clone()).await?.map_err(invalid)?;
        }
        let at = now();
        let id = new_id();
        let mut tx = self.pools.write().await?;
        tx.query(
            "INSERT INTO plugins (id, name, version, world, wit_version, description, requested, grants, config, \
             limits, is_enabled, inspection, component_hash, component_size, component, created_by_id, created_at, \
             modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
        )
        .bind(id.as_str())
        .bind(new.manifest.name.as_str())
        .bind(new.manifest.version.as_str())
        .bind(new.manifest.world.as_str())
        .bind(inspection.wit_version.as_str())
        .bind(new.manifest.description.as_str())
        .bind(to_json(&requested))
        .bind(to_json(&new.grants))
        .bind(new.manifest.config.to_string())
        .bind(to_json(&new.manifest.limits))
        .bind(new.enabled)
        .bind(to_json(&inspection))
        .bind(docket_plugins::component_hash(&bytes))
        .bind(bytes.len() as i64)
        .bind(bytes.as_slice().to_vec())
        .bind(actor.user_id.as_str())
        .bind(at)
        .execute()
        .await
        .map_err(|e| match e {
            StoreError::Duplicate(_) => StoreError::invalid(
                "name",
                format!("a plugin named {} is installed already; delete it first to replace it", new.manifest.name),
            ),
            other => other,
        })?;
        let record = load_plugin(&mut tx, &id).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(record)
    }

    /// The host's default and ceiling limits, for the admin pages.
    pub fn plugin_limits(&self) -> (docket_plugins::Limits, docket_plugins::Limits) {
        (self.plugin_config.defaults, self.plugin_config.ceiling)
    }

    /// Every installed plugin (admins).
    #[instrument(level = "debug", skip_all)]
    pub async fn plugins(&self, actor: &Actor) -> Result<Vec<PluginRecord>> {
        require_admin(actor, "see plugins")?;
        let mut tx = self.pools.read().await?;
        let sql = format!("SELECT {PLUGIN_COLUMNS} FROM plugins ORDER BY name");
        let plugins = tx.query(&sql).fetch_all().await?.iter().map(plugin_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(plugins)
    }

    /// One plugin (admins).
    #[instrument(level = "debug", skip_all)]
    pub async fn plugin(&self, actor: &Actor, id: &str) -> Result<PluginRecord> {
        require_admin(actor, "see plugins")?;
        let mut tx = self.pools.read().await?;
        let plugin = load_plugin(&mut tx, id).await?;
        tx.commit().await?;
        Ok(plugin)
    }

    /// Changes what an admin controls: enabled, grants, configuration,
    /// limits. A plugin is only enabled if it loads with its grants.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn update_plugin(&self, actor: &Actor, id: &str, patch: &PluginPatch) -> Result<PluginRecord> {
        require_admin(actor, "manage plugins")?;
        let mut tx = self.pools.write().await?;
        let current = load_plugin(&mut tx, id).await?;
        let grants = patch.grants.clone().unwrap_or_else(|| current.grants.clone());
        check_grants(&current.requested, &grants)?;
        let config = patch.config.clone().unwrap_or_else(|| current.config.clone());
        docket_plugins::validate_config(&config).map_err(|e| StoreError::invalid("config", e.to_string()))?;
        let limits = patch.limits.unwrap_or(current.limits);
        let enabled = patch.enabled.unwrap_or(current.enabled);
        if enabled {
            let bytes = component_bytes(&mut tx, id).await?;
            // Compiling may take a while: not while holding the writer.
            tx.commit().await?;
            self.prepare_component(Arc::new(bytes), grants.clone()).await?.map_err(|e| match e {
                PluginError::NotGranted { .. } => StoreError::invalid("grants", format!("cannot enable: {e}")),
                other => invalid(other),
            })?;
            tx = self.pools.write().await?;
        }
        let changed = tx
            .query(
                "UPDATE plugins SET grants = $1, config = $2, limits = $3, is_enabled = $4, modified_at = $5 \
                 WHERE id = $6 AND modified_at = $7",
            )
            .bind(to_json(&grants))
            .bind(config.to_string())
            .bind(to_json(&limits))
            .bind(enabled)
            .bind(now())
            .bind(id)
            .bind(current.modified_at)
            .execute()
            .await?;
        if changed != 1 {
            return Err(StoreError::Conflict("the plugin changed meanwhile; reload and try again".into()));
        }
        let record = load_plugin(&mut tx, id).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(record)
    }

    /// Removes a plugin and its storage. Refused while rules use it.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn delete_plugin(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage plugins")?;
        let mut tx = self.pools.write().await?;
        let plugin = load_plugin(&mut tx, id).await?;
        let users: Vec<String> = tx
            .query("SELECT name FROM rules WHERE plugin = $1 ORDER BY name")
            .bind(plugin.name.as_str())
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("name"))
            .collect::<Result<_>>()?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "rules run this plugin ({}); change or delete them first",
                users.join(", ")
            )));
        }
        tx.query("DELETE FROM plugins WHERE id = $1").bind(id).execute().await?;
        tx.commit().await?;
        if let Some(host) = self.plugin_host.get() {
            host.forget(&plugin.component_hash);
        }
        self.forget_rules();
        Ok(())
    }

    /// A plugin's calls, newest first (admins).
    #[instrument(level = "debug", skip_all)]
    pub async fn plugin_runs(&self, actor: &Actor, plugin_id: &str, window: Window) -> Result<Page<PluginRun>> {
        require_admin(actor, "see plugin runs")?;
        let mut tx = self.pools.read().await?;
        let total: i64 = tx
            .query("SELECT COUNT(*) AS total FROM plugin_runs WHERE plugin_id = $1")
            .bind(plugin_id)
            .fetch_one()
            .await?
            .get("total")?;
        let items = tx
            .query(
                "SELECT r.id, r.plugin_id, r.plugin_name, r.world, r.rule_id, rules.name AS rule_name, r.case_id, \
                 cases.number AS case_number, r.outcome, r.error, r.log, r.fuel_used, r.peak_memory, \
                 r.duration_us, r.started_at FROM plugin_runs r LEFT JOIN rules ON rules.id = r.rule_id \
                 LEFT JOIN cases ON cases.id = r.case_id WHERE r.plugin_id = $1 \
                 ORDER BY r.started_at DESC, r.id DESC LIMIT $2 OFFSET $3",
            )
            .bind(plugin_id)
            .bind(window.limit)
            .bind(window.offset)
            .fetch_all()
            .await?
            .iter()
            .map(run_from_row)
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Page { items, total })
    }

    /// The enabled plugin named `name` of `world`, ready to call.
    async fn ready_plugin(
        &self,
        tx: &mut Tx,
        name: &str,
        world: World,
    ) -> std::result::Result<(PluginRecord, Arc<Prepared>), String> {
        let plugin = self
            .cached_plugins(tx)
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| format!("no enabled plugin named `{name}`"))?;
        if plugin.world != world {
            return Err(format!("plugin `{name}` is a `{}` plugin, not a `{world}` plugin", plugin.world));
        }
        let host = self.plugin_host().map_err(|e| e.to_string())?;
        if let Some(prepared) = host.prepared(&plugin.component_hash, &plugin.grants) {
            return Ok((plugin, prepared));
        }
        let bytes = component_bytes(tx, &plugin.id).await.map_err(|e| e.to_string())?;
        let prepared = self
            .prepare_component(Arc::new(bytes), plugin.grants.clone())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok((plugin, prepared))
    }

    /// Runs a rule's plugin against the trigger. Returns its actions (or
    /// the error for the rule's run) and the plugin run to log.
    pub(crate) async fn run_rule_plugin(
        &self,
        tx: &mut Tx,
        rule: &Rule,
        name: &str,
        trigger: &Trigger<'_>,
        dry_run: bool,
    ) -> (std::result::Result<Vec<RuleAction>, String>, Vec<String>, Option<PluginRun>) {
        if trigger.hook == docket_domain::rule::Hook::EmailReceived {
            return self.run_parser_plugin(tx, rule, name, trigger, dry_run).await;
        }
        let started_at = now();
        let (plugin, prepared) = match self.ready_plugin(tx, name, World::Rule).await {
            Ok(ready) => ready,
            Err(message) => return (Err(message), Vec::new(), None),
        };
        let case = match trigger.case {
            Some(case) => match snapshot(tx, case).await {
                Ok(snapshot) => Some(snapshot),
                Err(error) => return (Err(error.to_string()), Vec::new(), None),
            },
            None => None,
        };
        let event = RuleEvent {
            hook: trigger.hook.as_str().to_string(),
            case,
            changes: trigger
                .changes
                .iter()
                .map(|c| docket_plugins::FieldChange {
                    field: c.field.to_string(),
                    before: c.old.clone(),
                    after: c.new.clone(),
                })
                .collect(),
            note: trigger.note.map(|n| docket_plugins::NoteView {
                id: n.id.clone(),
                note_type: n.note_type.as_str().to_string(),
                post: n.post.clone(),
                is_internal: n.is_internal,
                author_id: n.author_id.clone(),
                created_at: n.created_at.to_rfc3339(),
            }),
            actor: ActorView {
                id: trigger.actor.user_id.clone(),
                username: trigger.actor.username.clone(),
                user_type: trigger.actor.user_type.as_str().to_string(),
            },
        };
        let report = self.call_plugin(tx, &plugin, dry_run, move |call| prepared.run_rule(call, &event)).await;
        let log = report.log.iter().map(|line| format!("[{}] {}", line.level, line.message)).collect();
        let mut run =
            plugin_run(&plugin, Some(rule.id.clone()), trigger.case.map(|c| c.id.clone()), &report, started_at);
        run.quiet = report.log.is_empty() && report.outcome.as_ref().is_ok_and(|actions| actions.is_empty());
        (report.outcome.map_err(|e| format!("plugin {name}: {e}")), log, Some(run))
    }

    /// Runs an `email-parser` plugin on the message of an `email.received`
    /// rule. Its decision becomes actions: `drop` a `drop_email`, a rewrite
    /// the fields it sets (and any actions it returns).
    async fn run_parser_plugin(
        &self,
        tx: &mut Tx,
        rule: &Rule,
        name: &str,
        trigger: &Trigger<'_>,
        dry_run: bool,
    ) -> (std::result::Result<Vec<RuleAction>, String>, Vec<String>, Option<PluginRun>) {
        let started_at = now();
        let (plugin, prepared) = match self.ready_plugin(tx, name, World::EmailParser).await {
            Ok(ready) => ready,
            Err(message) => return (Err(message), Vec::new(), None),
        };
        let email: ParsedEmail = match trigger.email.map(|email| serde_json::from_value(email.clone())) {
            Some(Ok(email)) => email,
            Some(Err(error)) => {
                return (Err(format!("the message could not be handed over: {error}")), Vec::new(), None);
            }
            None => return (Err("an email parser runs only on received mail".into()), Vec::new(), None),
        };
        let report = self.call_plugin(tx, &plugin, dry_run, move |call| prepared.run_email_parser(call, &email)).await;
        let log = report.log.iter().map(|line| format!("[{}] {}", line.level, line.message)).collect();
        let mut run = plugin_run(&plugin, Some(rule.id.clone()), None, &report, started_at);
        run.quiet = report.log.is_empty() && matches!(report.outcome, Ok(EmailDecision::Keep));
        let outcome = report.outcome.map(decision_actions).map_err(|e| format!("plugin {name}: {e}"));
        (outcome, log, Some(run))
    }

    /// Asks an `assigner` plugin to choose among the candidates.
    pub(crate) async fn run_assigner_plugin(
        &self,
        tx: &mut Tx,
        name: &str,
        input: &docket_domain::assignment::AssignmentInput,
        case: Option<&Case>,
    ) -> Result<(std::result::Result<Option<Choice>, String>, Option<PluginRun>)> {
        let started_at = now();
        let (plugin, prepared) = match self.ready_plugin(tx, name, World::Assigner).await {
            Ok(ready) => ready,
            Err(message) => return Ok((Err(message), None)),
        };
        let request = AssignmentRequest {
            team_id: input.team_id.clone(),
            team_name: input.team_name.clone(),
            position: input.position.clone(),
            candidates: input
                .candidates
                .iter()
                .map(|c| CandidateView {
                    user_id: c.user_id.clone(),
                    username: c.username.clone(),
                    open_cases: c.open_cases,
                })
                .collect(),
            case: match case {
                Some(case) => Some(snapshot(tx, case).await?),
                None => None,
            },
        };
        let report = self.call_plugin(tx, &plugin, false, move |call| prepared.run_assigner(call, &request)).await;
        let run = plugin_run(&plugin, None, case.map(|c| c.id.clone()), &report, started_at);
        Ok((report.outcome.map_err(|e| format!("plugin {name}: {e}")), Some(run)))
    }

    /// Is there an enabled assigner plugin of this name?
    pub(crate) async fn has_assigner_plugin(&self, tx: &mut Tx, name: &str) -> Result<bool> {
        Ok(self.cached_plugins(tx).await?.iter().any(|p| p.name == name && p.world == World::Assigner))
    }

    /// One call with the plugin's configuration and limits. Plugins that
    /// may touch data (or have WASI) run on a blocking thread and their
    /// data calls are answered here. Their first write opens a savepoint,
    /// rolled back if the call fails: nothing a failed plugin wrote is
    /// kept, and a call that writes nothing costs no savepoint.
    async fn call_plugin<T: Send + 'static>(
        &self,
        tx: &mut Tx,
        plugin: &PluginRecord,
        dry_run: bool,
        run: impl FnOnce(Call) -> Report<T> + Send + 'static,
    ) -> Report<T> {
        let limits = self.plugin_config.defaults.with(&plugin.limits, &self.plugin_config.ceiling);
        let config = plugin.config.to_string();
        let touches_data = plugin.grants.iter().any(|g| matches!(g, Capability::Storage | Capability::ReadCases));
        if !touches_data && !plugin.grants.contains(&Capability::Wasi) {
            return run(Call { config, limits, io: Box::new(NoIo) });
        }
        let mut savepoint = false;
        let (requests, mut incoming) = mpsc::channel::<IoRequest>(1);
        let io = ChannelIo { requests, dry_run, overlay: BTreeMap::new() };
        let mut call = tokio::task::spawn_blocking(move || run(Call { config, limits, io: Box::new(io) }));
        let report = loop {
            tokio::select! {
                Some(request) = incoming.recv() => {
                    if request.writes() && !savepoint {
                        if let Err(error) = tx.query("SAVEPOINT plugin_call").execute().await {
                            request.refuse(&format!("the database refused the write: {error}"));
                            continue;
                        }
                        savepoint = true;
                    }
                    request.answer(tx, &plugin.id, self.plugin_config.max_storage_keys).await
                }
                done = &mut call => break done,
            }
        };
        let report = match report {
            Ok(report) => report,
            Err(panic) => Report {
                outcome: Err(PluginError::Host(format!("the plugin call panicked: {panic}"))),
                log: Vec::new(),
                fuel_used: 0,
                peak_memory: 0,
                duration: Duration::ZERO,
            },
        };
        if savepoint {
            end_savepoint(tx, "plugin_call", report.outcome.is_ok()).await;
        }
        report
    }
}

pub(crate) async fn load_enabled_plugins(tx: &mut Tx) -> Result<Vec<PluginRecord>> {
    let sql = format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE is_enabled = $1");
    tx.query(&sql).bind(true).fetch_all().await?.iter().map(plugin_from_row).collect()
}

async fn load_plugin(tx: &mut Tx, id: &str) -> Result<PluginRecord> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let sql = format!("SELECT {PLUGIN_COLUMNS} FROM plugins WHERE id = $1");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    plugin_from_row(&row)
}

async fn component_bytes(tx: &mut Tx, id: &str) -> Result<Vec<u8>> {
    let row = tx.query("SELECT component FROM plugins WHERE id = $1").bind(id).fetch_optional().await?;
    row.ok_or(StoreError::NotFound)?.get("component")
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Stores a key of a plugin. Updating a key is one statement; a new key
/// is refused when the plugin holds `max_keys` already. Two transactions
/// adding keys at once may each pass the count, so the quota can be
/// overshot by a key per concurrent call: it guards against runaway
/// plugins, not exact accounting.
async fn storage_set(tx: &mut Tx, plugin_id: &str, key: &str, value: &str, max_keys: u64) -> Result<SetOutcome> {
    let updated = tx
        .query("UPDATE plugin_storage SET value = $1 WHERE plugin_id = $2 AND key = $3")
        .bind(value)
        .bind(plugin_id)
        .bind(key)
        .execute()
        .await?;
    if updated > 0 {
        return Ok(SetOutcome::Stored);
    }
    let held: i64 = tx
        .query("SELECT COUNT(*) AS held FROM plugin_storage WHERE plugin_id = $1")
        .bind(plugin_id)
        .fetch_one()
        .await?
        .get("held")?;
    if u64::try_from(held).unwrap_or(0) >= max_keys {
        return Ok(SetOutcome::Full(format!("storage is full: a plugin may hold {max_keys} keys; delete some first")));
    }
    tx.query("INSERT INTO plugin_storage (plugin_id, key, value) VALUES ($1, $2, $3)")
        .bind(plugin_id)
        .bind(key)
        .bind(value)
        .execute()
        .await?;
    Ok(SetOutcome::Stored)
}

/// An email parser's decision as rule actions.
fn decision_actions(decision: EmailDecision) -> Vec<RuleAction> {
    match decision {
        EmailDecision::Keep => Vec::new(),
        EmailDecision::Drop { reason } => vec![RuleAction::DropEmail { reason }],
        EmailDecision::Rewrite(fields) => {
            let set = |field: &str, value: Option<String>| {
                value.map(|value| RuleAction::Set { field: field.to_string(), value: serde_json::Value::String(value) })
            };
            let mut actions: Vec<RuleAction> = [
                set("name", fields.subject),
                set("description", fields.description),
                set("priority", fields.priority),
                set("type", fields.case_type),
            ]
            .into_iter()
            .flatten()
            .collect();
            actions.extend(fields.actions);
            actions
        }
    }
}

/// A case as plugins see it, with its account's name.
async fn snapshot(tx: &mut Tx, case: &Case) -> Result<CaseSnapshot> {
    let mut snapshot = CaseSnapshot::of(case);
    if let Some(account_id) = &case.account_id {
        let row =
            tx.query("SELECT name FROM accounts WHERE id = $1").bind(account_id.as_str()).fetch_optional().await?;
        snapshot.account_name = row.map(|r| r.get("name")).transpose()?;
    }
    Ok(snapshot)
}

fn plugin_run<T>(
    plugin: &PluginRecord,
    rule_id: Option<String>,
    case_id: Option<String>,
    report: &Report<T>,
    started_at: DateTime<Utc>,
) -> PluginRun {
    PluginRun {
        id: new_id(),
        plugin_id: Some(plugin.id.clone()),
        plugin_name: plugin.name.clone(),
        world: plugin.world.as_str().to_string(),
        rule_id,
        rule_name: None,
        case_id,
        case_number: None,
        outcome: if report.outcome.is_ok() { "ok" } else { "failed" }.to_string(),
        error: report.outcome.as_ref().err().map(|e| format!("{}: {e}", e.kind())),
        log: report.log.clone(),
        fuel_used: i64::try_from(report.fuel_used).unwrap_or(i64::MAX),
        peak_memory: i64::try_from(report.peak_memory).unwrap_or(i64::MAX),
        duration_us: i64::try_from(report.duration.as_micros()).unwrap_or(i64::MAX),
        started_at,
        quiet: false,
    }
}

/// Writes plugin runs (with the command's rule runs).
pub(crate) async fn insert_plugin_runs(tx: &mut Tx, runs: &[PluginRun]) -> Result<()> {
    let runs: Vec<&PluginRun> = runs.iter().filter(|run| !run.quiet).collect();
    for chunk in runs.chunks(50) {
        let mut sql = crate::db::Sql::new(
            "INSERT INTO plugin_runs (id, plugin_id, plugin_name, world, rule_id, case_id, outcome, error, log, \
             fuel_used, peak_memory, duration_us, started_at) VALUES ",
        );
        for (i, run) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(").value(run.id.as_str()).push(", ").value(run.plugin_id.as_deref()).push(", ");
            sql.value(run.plugin_name.as_str()).push(", ").value(run.world.as_str()).push(", ");
            sql.value(run.rule_id.as_deref()).push(", ").value(run.case_id.as_deref()).push(", ");
            sql.value(run.outcome.as_str()).push(", ").value(run.error.as_deref()).push(", ");
            sql.value(to_json(&run.log)).push(", ").value(run.fuel_used).push(", ");
            sql.value(run.peak_memory).push(", ").value(run.duration_us).push(", ").value(run.started_at).push(")");
        }
        tx.built(&sql).execute().await?;
    }
    Ok(())
}

/// For plugins granted no data capability: every data call fails (the
/// host refuses them before they get here anyway).
struct NoIo;

impl PluginIo for NoIo {
    fn storage_get(&mut self, _: &str) -> std::result::Result<Option<String>, String> {
        Err("storage is not granted".into())
    }
    fn storage_set(&mut self, _: &str, _: &str) -> std::result::Result<SetOutcome, String> {
        Err("storage is not granted".into())
    }
    fn storage_delete(&mut self, _: &str) -> std::result::Result<(), String> {
        Err("storage is not granted".into())
    }
    fn get_case(&mut self, _: i64) -> std::result::Result<Option<CaseSnapshot>, String> {
        Err("reading cases is not granted".into())
    }
}

type Reply<T> = oneshot::Sender<std::result::Result<T, String>>;

/// A data call of a plugin, sent to the task holding the transaction.
enum IoRequest {
    Get(String, Reply<Option<String>>),
    Set(String, String, Reply<SetOutcome>),
    Delete(String, Reply<()>),
    Case(i64, Reply<Option<CaseSnapshot>>),
}

impl IoRequest {
    fn writes(&self) -> bool {
        matches!(self, IoRequest::Set(..) | IoRequest::Delete(..))
    }

    fn refuse(self, message: &str) {
        let message = message.to_string();
        // A dropped receiver means the plugin was stopped meanwhile.
        match self {
            IoRequest::Get(_, reply) => drop(reply.send(Err(message))),
            IoRequest::Set(_, _, reply) => drop(reply.send(Err(message))),
            IoRequest::Delete(_, reply) => drop(reply.send(Err(message))),
            IoRequest::Case(_, reply) => drop(reply.send(Err(message))),
        }
    }

    async fn answer(self, tx: &mut Tx, plugin_id: &str, max_keys: u64) {
        fn send<T>(reply: Reply<T>, result: Result<T>) {
            // A dropped receiver means the plugin was stopped meanwhile.
            let _ = reply.send(result.map_err(|e| e.to_string()));
        }
        match self {
            IoRequest::Get(key, reply) => {
                let row = tx
                    .query("SELECT value FROM plugin_storage WHERE plugin_id = $1 AND key = $2")
                    .bind(plugin_id)
                    .bind(key.as_str())
                    .fetch_optional()
                    .await;
                send(reply, row.and_then(|r| r.map(|r| r.get("value")).transpose()));
            }
            IoRequest::Set(key, value, reply) => send(reply, storage_set(tx, plugin_id, &key, &value, max_keys).await),
            IoRequest::Delete(key, reply) => {
                let deleted = tx
                    .query("DELETE FROM plugin_storage WHERE plugin_id = $1 AND key = $2")
                    .bind(plugin_id)
                    .bind(key.as_str())
                    .execute()
                    .await;
                send(reply, deleted.map(|_| ()));
            }
            IoRequest::Case(number, reply) => {
                let case = match crate::cases::load_case_by_number(tx, number).await {
                    Ok(case) => snapshot(tx, &case).await.map(Some),
                    Err(StoreError::NotFound) => Ok(None),
                    Err(error) => Err(error),
                };
                send(reply, case);
            }
        }
    }
}

/// The plugin side of the channel. In a dry run, writes stay in memory.
struct ChannelIo {
    requests: mpsc::Sender<IoRequest>,
    dry_run: bool,
    overlay: BTreeMap<String, Option<String>>,
}

impl ChannelIo {
    fn ask<T>(&mut self, request: impl FnOnce(Reply<T>) -> IoRequest) -> std::result::Result<T, String> {
        ask_blocking(&self.requests, request)?
    }
}

impl PluginIo for ChannelIo {
    fn storage_get(&mut self, key: &str) -> std::result::Result<Option<String>, String> {
        if let Some(value) = self.overlay.get(key) {
            return Ok(value.clone());
        }
        self.ask(|reply| IoRequest::Get(key.to_string(), reply))
    }
    fn storage_set(&mut self, key: &str, value: &str) -> std::result::Result<SetOutcome, String> {
        if self.dry_run {
            self.overlay.insert(key.to_string(), Some(value.to_string()));
            return Ok(SetOutcome::Stored);
        }
        self.ask(|reply| IoRequest::Set(key.to_string(), value.to_string(), reply))
    }
    fn storage_delete(&mut self, key: &str) -> std::result::Result<(), String> {
        if self.dry_run {
            self.overlay.insert(key.to_string(), None);
            return Ok(());
        }
        self.ask(|reply| IoRequest::Delete(key.to_string(), reply))
    }
    fn get_case(&mut self, number: i64) -> std::result::Result<Option<CaseSnapshot>, String> {
        self.ask(|reply| IoRequest::Case(number, reply))
    }
}
