//! Rules: stored, edited by admins, tested against a case (dry run), run
//! by hand (manual rules) or on a schedule. The hook points themselves are
//! in `hooks.rs`.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::{CaseSortField, Page, Sort, Window};
use docket_domain::rule::{CaseQuery, Hook, Outcome, Rule, RuleInput, RuleRun, ValidRule};
use docket_domain::validation::ValidationErrors;
use docket_domain::{Action, Scope};
use serde_json::json;
use tracing::instrument;

use crate::cases::select_cases;
use crate::cases::{Cause, load_case};
use crate::db::{Query, Row, Sql, Tx};
use crate::hooks::{Effects, Trigger, dry_run_record, query_condition};
use crate::jobs::{NewJob, enqueue};
use crate::rows::{check_version, enforce, parse_stored};
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

pub(crate) const RULE_COLUMNS: &str = "id, name, description, hook, condition, script, plugin, position, \
     is_enabled, schedule, case_filter, run_cap, next_run_at, created_at, modified_at, version";

/// The job kind that runs one tick of a scheduled rule.
pub const RULE_SCHEDULE_JOB: &str = "rule_schedule";

/// Cases a scheduled run processes per transaction.
const SCHEDULE_BATCH: usize = 50;

pub(crate) fn rule_from_row(row: &Row) -> Result<Rule> {
    let hook: String = row.get("hook")?;
    let case_filter: Option<String> = row.get("case_filter")?;
    Ok(Rule {
        id: row.get("id")?,
        name: row.get("name")?,
        description: row.get("description")?,
        hook: parse_stored(&hook, Hook::parse)?,
        condition: row.get("condition")?,
        script: row.get("script")?,
        plugin: row.get("plugin")?,
        position: row.get("position")?,
        enabled: row.get("is_enabled")?,
        schedule: row.get("schedule")?,
        case_filter: case_filter
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("rule case filter: {e}")))?,
        run_cap: row.get("run_cap")?,
        next_run_at: row.get("next_run_at")?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}

fn run_from_row(row: &Row) -> Result<RuleRun> {
    let outcome: String = row.get("outcome")?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("rule run: {e}"));
    Ok(RuleRun {
        id: row.get("id")?,
        rule_id: row.get("rule_id")?,
        rule_name: row.get("rule_name")?,
        case_id: row.get("case_id")?,
        case_number: row.get("case_number")?,
        hook: row.get("hook")?,
        depth: row.get::<i64>("depth")?.try_into().unwrap_or(0),
        outcome: parse_stored(&outcome, Outcome::parse)?,
        condition_held: row.get("condition_held")?,
        actions: serde_json::from_str(&row.get::<String>("actions")?).map_err(corrupt)?,
        log: serde_json::from_str(&row.get::<String>("log")?).map_err(corrupt)?,
        error: row.get("error")?,
        duration_us: row.get("duration_us")?,
        started_at: row.get("started_at")?,
    })
}

/// A cron expression as the `cron` crate reads it. Five fields (minute
/// first, as in crontab) get a leading `0` for the seconds.
pub fn parse_schedule(expression: &str) -> std::result::Result<cron::Schedule, String> {
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 { format!("0 {expression}") } else { expression.to_string() };
    cron::Schedule::from_str(&full).map_err(|e| format!("not a cron expression ({e}); e.g. `0 9 * * Mon-Fri`"))
}

fn next_tick(schedule: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    parse_schedule(schedule).ok()?.after(&after).next()
}

/// Filter for the run log.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub rule_id: Option<String>,
    pub case_id: Option<String>,
    pub outcome: Option<Outcome>,
    pub window: Window,
}

/// What one scheduled tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScheduledRun {
    pub cases: usize,
    /// More cases matched than the rule's cap; the rest wait for the next tick.
    pub capped: bool,
}

impl Store {
    /// Checks a rule input: fields, schedule, filter, and the script and
    /// condition compiled. A script that does not compile may be saved
    /// only as a disabled draft. Imports check every rule with this before
    /// saving any.
    pub fn check_rule(&self, input: &RuleInput) -> Result<ValidRule> {
        let valid = input.validate()?;
        let mut errors = ValidationErrors::new();
        if let Some(schedule) = &valid.schedule
            && let Err(message) = parse_schedule(schedule)
        {
            errors.add("schedule", message);
        }
        if let Some(filter) = &valid.case_filter
            && let Err(message) = CaseQuery::from_json(filter)
        {
            errors.add("case_filter", message);
        }
        if let Err(error) = self.rules.check(valid.condition.as_deref(), &valid.script)
            && valid.enabled
        {
            errors.add(
                error.part,
                format!(
                    "{} (line {}, column {}); a rule that does not compile can only be saved disabled",
                    error.message, error.line, error.column
                ),
            );
        }
        errors.into_result()?;
        Ok(valid)
    }

    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn create_rule(&self, actor: &Actor, input: &RuleInput) -> Result<Rule> {
        require_admin(actor, "manage rules")?;
        let valid = self.check_rule(input)?;
        let at = now();
        let id = new_id();
        let next_run_at = valid.schedule.as_deref().and_then(|s| next_tick(s, at));
        let mut tx = self.pools.write().await?;
        check_plugin(&mut tx, &valid).await?;
        let insert = tx.query(
            "INSERT INTO rules (name, description, hook, condition, script, position, is_enabled, schedule, \
             case_filter, run_cap, plugin, id, next_run_at, created_at, modified_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 1)",
        );
        bind_fields(insert, &valid)
            .bind(id.as_str())
            .bind(next_run_at)
            .bind(at)
            .execute()
            .await
            .map_err(|e| duplicate_name(e, &valid.name))?;
        let rule = load_rule(&mut tx, &id).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(rule)
    }

    /// Replaces a rule (all fields); `input.version`, when given, must be
    /// the current one.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn update_rule(&self, actor: &Actor, id: &str, input: &RuleInput) -> Result<Rule> {
        require_admin(actor, "manage rules")?;
        let valid = self.check_rule(input)?;
        let mut tx = self.pools.write().await?;
        check_plugin(&mut tx, &valid).await?;
        let current = load_rule(&mut tx, id).await?;
        check_version(input.version, current.version)?;
        let at = now();
        let next_run_at = match (&valid.schedule, &current.schedule) {
            (Some(new), Some(old)) if new == old => current.next_run_at,
            (Some(new), _) => next_tick(new, at),
            (None, _) => None,
        };
        let update = tx.query(
            "UPDATE rules SET name = $1, description = $2, hook = $3, condition = $4, script = $5, position = $6, \
             is_enabled = $7, schedule = $8, case_filter = $9, run_cap = $10, plugin = $11, next_run_at = $12, \
             modified_at = $13, schedule_cursor = CASE WHEN $15 THEN 0 ELSE schedule_cursor END, \
             version = version + 1 WHERE id = $14",
        );
        bind_fields(update, &valid)
            .bind(next_run_at)
            .bind(at)
            .bind(id)
            // A new filter starts a new sweep.
            .bind(valid.case_filter != current.case_filter)
            .execute()
            .await
            .map_err(|e| duplicate_name(e, &valid.name))?;
        let rule = load_rule(&mut tx, id).await?;
        tx.commit().await?;
        self.forget_rules();
        Ok(rule)
    }

    /// Creates or replaces the rule with the input's name (imports).
    /// Returns the rule and whether it was new.
    pub async fn import_rule(&self, actor: &Actor, input: &RuleInput) -> Result<(Rule, bool)> {
        require_admin(actor, "manage rules")?;
        let existing = {
            let mut tx = self.pools.read().await?;
            let row = tx.query("SELECT id FROM rules WHERE name = $1").bind(input.name.trim()).fetch_optional().await?;
            tx.commit().await?;
            row.map(|row| row.get::<String>("id")).transpose()?
        };
        let input = RuleInput { version: None, ..input.clone() };
        match existing {
            Some(id) => Ok((self.update_rule(actor, &id, &input).await?, false)),
            None => Ok((self.create_rule(actor, &input).await?, true)),
        }
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_rule(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage rules")?;
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        if tx.query("DELETE FROM rules WHERE id = $1").bind(id).execute().await? == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.forget_rules();
        self.rules.forget(id);
        Ok(())
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_rule(&self, actor: &Actor, id: &str) -> Result<Rule> {
        require_admin(actor, "see rules")?;
        let mut tx = self.pools.read().await?;
        let rule = load_rule(&mut tx, id).await?;
        tx.commit().await?;
        Ok(rule)
    }

    /// Every rule, by hook then order.
    #[instrument(level = "debug", skip_all)]
    pub async fn list_rules(&self, actor: &Actor) -> Result<Vec<Rule>> {
        require_admin(actor, "see rules")?;
        let mut tx = self.pools.read().await?;
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules ORDER BY hook, position, name");
        let rules = tx.query(&sql).fetch_all().await?.iter().map(rule_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(rules)
    }

    /// The run log, newest first (admins).
    #[instrument(level = "debug", skip_all)]
    pub async fn rule_runs(&self, actor: &Actor, filter: &RunFilter) -> Result<Page<RuleRun>> {
        require_admin(actor, "see rule runs")?;
        // The newest runs may still be queued.
        crate::run_log::move_queued_runs(&self.pools, crate::run_log::Mover::Reader).await?;
        let mut condition = Sql::new(" WHERE 1 = 1");
        if let Some(rule_id) = &filter.rule_id {
            condition.push(" AND r.rule_id = ").value(rule_id.as_str());
        }
        if let Some(case_id) = &filter.case_id {
            condition.push(" AND r.case_id = ").value(case_id.as_str());
        }
        if let Some(outcome) = filter.outcome {
            condition.push(" AND r.outcome = ").value(outcome.as_str());
        }
        let mut tx = self.pools.read().await?;
        let count = crate::cases::prefixed("SELECT COUNT(*) AS total FROM rule_runs r", &condition);
        let total: i64 = tx.built(&count).fetch_one().await?.get("total")?;
        let mut select = crate::cases::prefixed(
            "SELECT r.id, r.rule_id, r.rule_name, r.case_id, c.number AS case_number, r.hook, r.depth, r.outcome, \
             r.condition_held, r.actions, r.log, r.error, r.duration_us, r.started_at \
             FROM rule_runs r LEFT JOIN cases c ON c.id = r.case_id",
            &condition,
        );
        select.push(" ORDER BY r.started_at DESC, r.id DESC");
        crate::cases::page_window(&mut select, filter.window);
        let items = tx.built(&select).fetch_all().await?.iter().map(run_from_row).collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Page { items, total })
    }

    /// Dry run: what `rule` would do to case `case_number` (or, without a
    /// case, to nothing) right now. Changes nothing and logs nothing.
    #[instrument(level = "debug", skip_all)]
    pub async fn test_rule(&self, actor: &Actor, rule: &Rule, case_number: Option<i64>) -> Result<RuleRun> {
        require_admin(actor, "test rules")?;
        self.rules
            .check(rule.condition.as_deref(), &rule.script)
            .map_err(|e| StoreError::invalid(e.part, e.to_string()))?;
        let mut tx = self.pools.read().await?;
        let case = match case_number {
            Some(number) => Some(crate::cases::load_case_by_number(&mut tx, number).await?),
            None => None,
        };
        let trigger =
            Trigger { email: None, hook: rule.hook, case: case.as_ref(), changes: &[], note: None, actor, depth: 0 };
        // A test compiles its own copy: the cache holds saved versions only.
        let scratch = Rule { id: format!("test-{}", new_id()), ..rule.clone() };
        let scratch_id = scratch.id.clone();
        let evaluated = self.evaluate(&mut tx, vec![scratch], &trigger, None).await;
        self.rules.forget(&scratch_id);
        let (_, evaluation) = evaluated?.remove(0);
        tx.commit().await?;
        let mut run = dry_run_record(rule, &trigger, &evaluation);
        run.rule_id = if looks_like_id(&rule.id) { Some(rule.id.clone()) } else { None };
        Ok(run)
    }

    /// The manual rules whose button shows on this case for this user:
    /// enabled, and their condition holds.
    #[instrument(level = "debug", skip_all)]
    pub async fn manual_rules(&self, actor: &Actor, case_id: &str) -> Result<Vec<Rule>> {
        if !actor.is_staff() {
            return Ok(Vec::new());
        }
        let mut tx = self.pools.read().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        if !actor.allows(Scope::Case, Action::Edit, &case.ownership()) {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rules = self.enabled_rules(&mut tx, Hook::Manual).await?;
        if rules.is_empty() {
            tx.commit().await?;
            return Ok(rules);
        }
        let trigger =
            Trigger { email: None, hook: Hook::Manual, case: Some(&case), changes: &[], note: None, actor, depth: 0 };
        let held = self.conditions(&mut tx, rules, &trigger).await?;
        tx.commit().await?;
        Ok(held.into_iter().filter(|(_, holds)| holds == &Ok(true)).map(|(rule, _)| rule).collect())
    }

    /// Runs a manual rule on a case (the button). Returns its run.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn run_manual_rule(&self, actor: &Actor, case_id: &str, rule_id: &str) -> Result<RuleRun> {
        if !actor.is_staff() {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, true).await?;
        enforce(actor.decide(Scope::Case, Action::Edit, &case.ownership()), "edit this case")?;
        let rule = load_rule(&mut tx, rule_id).await?;
        if rule.hook != Hook::Manual || !rule.enabled {
            return Err(StoreError::invalid("rule", "not an enabled manual rule"));
        }
        let trigger =
            Trigger { email: None, hook: Hook::Manual, case: Some(&case), changes: &[], note: None, actor, depth: 0 };
        let mut effects = Effects::default();
        let held = self.conditions(&mut tx, vec![rule.clone()], &trigger).await?;
        if held.first().map(|(_, holds)| holds) != Some(&Ok(true)) {
            return Err(StoreError::invalid("rule", "this rule does not apply to the case as it is now"));
        }
        self.run_rules(&mut tx, vec![rule], &trigger, &mut effects).await?;
        let run = effects.runs.first().cloned().ok_or_else(|| StoreError::Corrupt("the rule left no run".into()))?;
        self.finish(tx, effects).await?;
        Ok(run)
    }

    /// Deletes rule runs that started before `before`, in slices so that
    /// the writer is never held long. Returns how many went.
    #[instrument(level = "debug", skip_all)]
    pub async fn prune_rule_runs(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let mut tx = self.pools.write().await?;
            let slice = tx
                .query(
                    "DELETE FROM rule_runs WHERE id IN \
                     (SELECT id FROM rule_runs WHERE started_at < $1 ORDER BY started_at LIMIT 5000)",
                )
                .bind(before)
                .execute()
                .await?;
            tx.commit().await?;
            deleted += slice;
            if slice < 5000 {
                return Ok(deleted);
            }
        }
    }

    /// Enqueues one job per scheduled rule whose tick is due, and moves
    /// the rule to its next tick. Several nodes may call this at once: the
    /// conditional update lets exactly one of them take each tick.
    #[instrument(level = "debug", skip_all)]
    pub async fn schedule_due_rules(&self) -> Result<usize> {
        let at = now();
        // Every node asks every few seconds; most of the time nothing is
        // due, and a read does not take SQLite's write lock.
        let mut read = self.pools.read_autocommit().await?;
        let due = read
            .query(
                "SELECT COUNT(*) AS due FROM rules WHERE hook = 'schedule' AND is_enabled = $1 AND next_run_at <= $2",
            )
            .bind(true)
            .bind(at)
            .fetch_one()
            .await?
            .get::<i64>("due")?;
        drop(read);
        if due == 0 {
            return Ok(0);
        }
        let mut tx = self.pools.write().await?;
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE hook = 'schedule' AND is_enabled = $1 AND next_run_at <= $2"
        );
        let due = tx
            .query(&sql)
            .bind(true)
            .bind(at)
            .fetch_all()
            .await?
            .iter()
            .map(rule_from_row)
            .collect::<Result<Vec<_>>>()?;
        let mut enqueued = 0;
        for rule in due {
            let (Some(schedule), Some(tick)) = (&rule.schedule, rule.next_run_at) else { continue };
            let next = next_tick(schedule, at);
            let moved = tx
                .query("UPDATE rules SET next_run_at = $1 WHERE id = $2 AND next_run_at = $3")
                .bind(next)
                .bind(rule.id.as_str())
                .bind(tick)
                .execute()
                .await?;
            if moved != 1 {
                continue;
            }
            let job = NewJob {
                kind: RULE_SCHEDULE_JOB,
                payload: json!({ "rule_id": rule.id, "tick": tick }),
                run_at: at,
                idempotency_key: Some(format!("rule-schedule:{}:{}", rule.id, tick.timestamp())),
            };
            enqueue(&mut tx, &job).await?;
            enqueued += 1;
        }
        tx.commit().await?;
        Ok(enqueued)
    }

    /// One tick of a scheduled rule: over the cases its filter selects (at
    /// most its cap, oldest number first, in batches of one transaction
    /// each), or once without a case when it has no filter.
    #[instrument(level = "debug", skip_all)]
    pub async fn run_scheduled_rule(&self, rule_id: &str) -> Result<ScheduledRun> {
        let system = Actor::system();
        let mut tx = self.pools.read().await?;
        let rule = load_rule(&mut tx, rule_id).await?;
        if !rule.enabled || rule.hook != Hook::Schedule {
            tx.commit().await?;
            return Ok(ScheduledRun::default());
        }
        let Some(filter) = &rule.case_filter else {
            tx.commit().await?;
            let mut tx = self.pools.write().await?;
            let trigger = Trigger {
                email: None,
                hook: Hook::Schedule,
                case: None,
                changes: &[],
                note: None,
                actor: &system,
                depth: 0,
            };
            let mut effects = Effects::default();
            self.run_rules(&mut tx, vec![rule], &trigger, &mut effects).await?;
            self.finish(tx, effects).await?;
            return Ok(ScheduledRun { cases: 0, capped: false });
        };
        let query = CaseQuery::from_json(filter).map_err(|e| StoreError::invalid("case_filter", e))?;
        let cap = usize::try_from(rule.run_cap).unwrap_or(1);
        // Go on after the last case the previous run processed: a rule
        // capped below the number of matching cases still reaches every
        // case in turn, and a retried run does not repeat committed work.
        let cursor: i64 = tx
            .query("SELECT schedule_cursor FROM rules WHERE id = $1")
            .bind(rule.id.as_str())
            .fetch_one()
            .await?
            .get("schedule_cursor")?;
        let mut condition = query_condition(&tx, &query)?;
        condition.push(" AND c.number > ").value(cursor);
        let sort = Sort { field: CaseSortField::Number, descending: false };
        let cases = select_cases(&mut tx, &condition, sort, Window { offset: 0, limit: cap as i64 + 1 }).await?;
        tx.commit().await?;
        let capped = cases.len() > cap;
        let picked: Vec<(String, i64)> = cases.into_iter().take(cap).map(|c| (c.id, c.number)).collect();
        for batch in picked.chunks(SCHEDULE_BATCH) {
            let mut tx = self.pools.write().await?;
            let mut effects = Effects::default();
            for (id, _) in batch {
                // The case may have changed or gone since it was selected.
                let case = match load_case(&mut tx, "c.id = $1", id, true).await {
                    Ok(case) => case,
                    Err(StoreError::NotFound) => continue,
                    Err(error) => return Err(error),
                };
                let trigger = Trigger {
                    email: None,
                    hook: Hook::Schedule,
                    case: Some(&case),
                    changes: &[],
                    note: None,
                    actor: &system,
                    depth: 0,
                };
                self.run_rules(&mut tx, vec![rule.clone()], &trigger, &mut effects).await?;
            }
            // The end of the sweep starts the next one from the beginning.
            let last = batch.last().map(|(_, number)| *number).unwrap_or(cursor);
            let reached_end = !capped && batch.last() == picked.last();
            let next_cursor = if reached_end { 0 } else { last };
            tx.query("UPDATE rules SET schedule_cursor = $1 WHERE id = $2")
                .bind(next_cursor)
                .bind(rule.id.as_str())
                .execute()
                .await?;
            self.finish(tx, effects).await?;
        }
        if picked.is_empty() && cursor > 0 {
            // Nothing after the cursor: the next run starts over.
            let mut tx = self.pools.write().await?;
            tx.query("UPDATE rules SET schedule_cursor = 0 WHERE id = $1").bind(rule.id.as_str()).execute().await?;
            tx.commit().await?;
        }
        if capped {
            tracing::info!(rule = %rule.name, cap, "scheduled rule hit its cap; the rest wait for the next tick");
        }
        let ids = picked;
        Ok(ScheduledRun { cases: ids.len(), capped })
    }
}

impl Store {
    /// The cause of a change a person (or an API client) makes: depth 0,
    /// no rule.
    pub(crate) fn top_cause() -> Cause {
        Cause { depth: 0, rule: None, assignment: None }
    }
}

/// Binds a rule's eleven editable fields as $1 to $11, in the column order
/// both `create_rule` and `update_rule` write them.
fn bind_fields<'q>(query: Query<'q>, valid: &'q ValidRule) -> Query<'q> {
    query
        .bind(valid.name.as_str())
        .bind(valid.description.as_deref())
        .bind(valid.hook.as_str())
        .bind(valid.condition.as_deref())
        .bind(valid.script.as_str())
        .bind(valid.position)
        .bind(valid.enabled)
        .bind(valid.schedule.as_deref())
        .bind(valid.case_filter.as_ref().map(|f| f.to_string()))
        .bind(valid.run_cap)
        .bind(valid.plugin.as_deref())
}

/// A rule that runs a plugin names an installed `rule` plugin.
async fn check_plugin(tx: &mut Tx, valid: &ValidRule) -> Result<()> {
    let Some(name) = &valid.plugin else { return Ok(()) };
    let row = tx.query("SELECT world FROM plugins WHERE name = $1").bind(name.as_str()).fetch_optional().await?;
    // Rules on received mail run email parsers; every other hook, rule
    // plugins.
    let wanted = if valid.hook == Hook::EmailReceived { "email-parser" } else { "rule" };
    match row.map(|r| r.get::<String>("world")).transpose()? {
        None => Err(StoreError::invalid("plugin", format!("no plugin named {name} is installed"))),
        Some(world) if world != wanted => Err(StoreError::invalid(
            "plugin",
            format!("{name} is an `{world}` plugin; a {} rule runs `{wanted}` plugins", valid.hook.as_str()),
        )),
        Some(_) => Ok(()),
    }
}

async fn load_rule(tx: &mut Tx, id: &str) -> Result<Rule> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE id = $1");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    rule_from_row(&row)
}

fn duplicate_name(error: StoreError, name: &str) -> StoreError {
    match error {
        StoreError::Duplicate(_) => StoreError::invalid("name", format!("a rule named {name} already exists")),
        other => other,
    }
}
