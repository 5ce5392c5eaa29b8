//! Cases: create, read, update, delete and list, each with its stream
//! notes, in one transaction.

use chrono::{DateTime, Utc};
use docket_domain::access::{Decision, ListScope};
use docket_domain::case::{
    AppliedPatch, Case, CaseDraft, CasePatch, CasePriority, CaseStatus, CaseType, linked_contacts, update_note_data,
};
use docket_domain::ids::new_id;
use docket_domain::listing::{CaseFilter, CaseSortField, Page, Window, like_pattern};
use docket_domain::note::{Note, NoteType};
use docket_domain::portal::PortalLevel;
use docket_domain::rule::{Hook, NewRuleCase, RuleRun, all_changes};
use docket_domain::{Action, Actor, Scope};
use serde_json::{Value as Json, json};
use tracing::instrument;

use crate::db::{Backend, Row, Sql, Tx};
use crate::hooks::{Effects, RUNS_PER_STATEMENT, Trigger, runs_insert, worth_logging};
use crate::rows::{check_assignee, check_exist, check_exists, check_version, load_links, parse_stored, replace_links};
use crate::stream::{
    FanOut, FollowPlan, NotificationRow, created_notifications, follow_plan_in, follows_insert, initial_followers,
    insert_follows, insert_notifications, notifications_insert, notify_followers, reconcile_follows,
};
use crate::{Result, Store, StoreError, now};

const CASE_COLUMNS: &str = "c.id, c.number, c.name, c.status, c.priority, c.case_type, c.description, \
     c.account_id, c.contact_id, c.inbound_mailbox_id, c.is_internal, c.assigned_user_id, c.created_at, \
     c.created_by_id, c.modified_at, c.modified_by_id, c.stream_updated_at, c.version";

impl Store {
    /// Creates a case: takes the next number, links contacts, teams and
    /// attachments, writes the `Create` note, and runs the case rules.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn create_case(&self, actor: &Actor, draft: CaseDraft) -> Result<Case> {
        if !actor.may_create(Scope::Case) {
            return Err(StoreError::Forbidden("you may not create cases".into()));
        }
        if draft.silent && !actor.is_admin() {
            return Err(StoreError::Forbidden("only admins save silently".into()));
        }
        if actor.is_portal() && draft.is_internal {
            return Err(StoreError::invalid("is_internal", "portal users cannot create internal cases"));
        }
        let plan = self.follow_plan(actor).await?;
        let mut effects = Effects::default();
        let result = async {
            let mut tx = self.pools.write().await?;
            let draft = if actor.is_portal() { portal_draft(&mut tx, actor, draft).await? } else { draft };
            let case =
                self.create_case_in(&mut tx, actor, draft, Some(&plan), &Store::top_cause(), &mut effects).await?;
            Ok((tx, case))
        }
        .await;
        let (tx, case) = self.settle(result, &mut effects).await?;
        self.finish(tx, effects).await?;
        Ok(case)
    }

    /// A command's outcome: a rejection by a rule still logs the runs that
    /// led to it (the command's own transaction was rolled back).
    pub(crate) async fn settle<T>(&self, result: Result<T>, effects: &mut Effects) -> Result<T> {
        if let Err(StoreError::Rejected { .. }) = &result {
            self.insert_runs_alone(std::mem::take(&mut effects.runs)).await;
        }
        result
    }

    /// Creates a case inside a transaction: the command behind
    /// `create_case`, and what rules call to open cases. `plan` is the
    /// creator's follow plan when read beforehand.
    pub(crate) async fn create_case_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        draft: CaseDraft,
        plan: Option<&FollowPlan>,
        cause: &Cause,
        effects: &mut Effects,
    ) -> Result<Case> {
        check_attachments(tx, actor, &draft.attachment_ids, AttachmentOwner::New).await?;
        let silent = draft.silent;
        let at = now();
        let pending = pending_case(draft, &actor.user_id, at);
        let runs_before = effects.runs.len();
        let saved = self.before_save(tx, &pending, &[], actor, cause.depth, effects).await?;
        let (mut case, deferred) = (saved.case, saved.deferred);
        // An assignee a strategy just chose is known to be active staff.
        let verified = saved.verified_assignee.filter(|v| case.assigned_user_id.as_ref() == Some(v));
        let unverified_assignee = if verified.is_some() { None } else { case.assigned_user_id.clone() };
        check_references(tx, &case.account_id, &case.contact_ids, &unverified_assignee, &case.team_ids).await?;
        let mut note_data = json!({ "status": case.status, "assigned_user_id": case.assigned_user_id });
        if let Some(rule) = &cause.rule {
            note_data["rule"] = json!(rule);
        }
        if let Some(assignment) = saved.assignment.or(cause.assignment.clone()) {
            note_data["assignment"] = assignment;
        }
        let nested_plan;
        let plan = match plan {
            Some(plan) => plan,
            None => {
                nested_plan = follow_plan_in(tx, actor).await?;
                &nested_plan
            }
        };
        let followers = initial_followers(tx, &case, actor, plan, verified.as_deref()).await?;
        let notifications = if silent { Vec::new() } else { created_notifications(&case, &followers, &actor.user_id) };
        // The before_save runs are final now, except those with actions
        // still to apply once the case exists.
        let deferred_runs: Vec<usize> = deferred.iter().map(|(_, _, index)| *index).collect();
        let final_runs: Vec<&RuleRun> = effects.runs[runs_before..]
            .iter()
            .enumerate()
            .filter(|(i, run)| !deferred_runs.contains(&(runs_before + i)) && worth_logging(run))
            .map(|(_, run)| run)
            .collect();
        // Each statement holds the single SQLite writer for a round trip,
        // so the follows, notifications and runs ride in the creation
        // statement; an unusually large set is written on its own after it.
        let batched = followers.len() <= FOLLOWERS_PER_CREATION && final_runs.len() <= RUNS_PER_STATEMENT;
        let create_note_id = new_id();
        let new_case =
            NewCase { case: &case, at, actor: &actor.user_id, note_id: &create_note_id, note_data: &note_data };
        let rows = CreationRows {
            followers: if batched { &followers } else { &[] },
            notifications: if batched { &notifications } else { &[] },
            runs: if batched { &final_runs } else { &[] },
        };
        let sql = creation_statement(tx.backend(), &new_case, !silent, &rows);
        let logged: Vec<String> = rows.runs.iter().map(|run| run.id.clone()).collect();
        let row = tx.built(&sql).fetch_one().await?;
        effects.logged.extend(logged);
        case.number = row.get("number")?;
        case.created_at = row.get("created_at")?;
        (case.modified_at, case.stream_updated_at) = (case.created_at, case.created_at);
        write_links(tx, &case).await?;
        link_attachments(tx, &case.id, &case.attachment_ids).await?;
        if !batched {
            insert_follows(tx, &case.id, &followers).await?;
            insert_notifications(tx, &case.id, &create_note_id, "note", &notifications, at).await?;
        }
        if !silent {
            effects.announce.push((case.id.clone(), create_note_id));
        }
        effects.wrote(&case);
        self.apply_deferred(tx, &case.id, deferred, cause.depth, effects).await?;
        let trigger = Trigger {
            email: None,
            hook: Hook::Created,
            case: Some(&case),
            changes: &[],
            note: None,
            actor,
            depth: cause.depth,
        };
        self.run_hook(tx, trigger, effects).await?;
        // Rules may have changed the case since it was inserted.
        Ok(effects.newest(case))
    }

    /// One case, if the actor may read it.
    #[instrument(level = "debug", skip_all)]
    pub async fn get_case(&self, actor: &Actor, id: &str) -> Result<Case> {
        let mut tx = self.pools.read().await?;
        let case = readable(actor, load_case(&mut tx, "c.id = $1", id, false).await?)?;
        let [case] = hide_unseen_files(&mut tx, actor, [case]).await?;
        tx.commit().await?;
        Ok(case)
    }

    /// One case by its number, if the actor may read it.
    #[instrument(level = "debug", skip_all)]
    pub async fn get_case_by_number(&self, actor: &Actor, number: i64) -> Result<Case> {
        let mut tx = self.pools.read().await?;
        let case = readable(actor, load_case_by_number(&mut tx, number).await?)?;
        let [case] = hide_unseen_files(&mut tx, actor, [case]).await?;
        tx.commit().await?;
        Ok(case)
    }

    /// Applies a patch: checks access and version, runs the
    /// `case.before_save` rules, writes the new values, an `Update` note
    /// for audited fields and an `Assign` note for a new assignee, then
    /// runs the `case.updated` rules. A patch that changes nothing writes
    /// nothing.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn update_case(&self, actor: &Actor, id: &str, patch: &CasePatch) -> Result<Case> {
        let mut effects = Effects::default();
        let result = async {
            let mut tx = self.pools.write().await?;
            let case = self.update_case_in(&mut tx, actor, id, patch, &Store::top_cause(), &mut effects).await?;
            let [case] = hide_unseen_files(&mut tx, actor, [case]).await?;
            Ok((tx, case))
        }
        .await;
        let (tx, case) = self.settle(result, &mut effects).await?;
        self.finish(tx, effects).await?;
        Ok(case)
    }

    /// Updates a case inside a transaction: the command behind
    /// `update_case`, and what rules call to change cases.
    pub(crate) async fn update_case_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        id: &str,
        patch: &CasePatch,
        cause: &Cause,
        effects: &mut Effects,
    ) -> Result<Case> {
        let current = load_case(tx, "c.id = $1", id, true).await?;
        match actor.decide(Scope::Case, Action::Edit, &current.ownership()) {
            Decision::Allow => {}
            Decision::Forbidden => {
                return Err(StoreError::Forbidden("you may not edit this case".into()));
            }
            Decision::Hidden => return Err(StoreError::NotFound),
        }
        check_version(patch.version, current.version)?;
        if patch.silent && !actor.is_admin() {
            return Err(StoreError::Forbidden("only admins save silently".into()));
        }
        let staff_only = patch.staff_only_fields();
        if !actor.is_staff() && !staff_only.is_empty() {
            return Err(StoreError::Forbidden(format!("portal users cannot change {}", staff_only.join(", "))));
        }
        let applied = patch.apply(&current)?;
        if !applied.changed {
            return Ok(current);
        }
        let changes = all_changes(&current, &applied.case);
        let saved = self.before_save(tx, &applied.case, &changes, actor, cause.depth, effects).await?;
        let deferred = saved.deferred;
        let applied = AppliedPatch::between(&current, saved.case, applied.added_attachment_ids);
        let cause = &Cause { assignment: saved.assignment.or(cause.assignment.clone()), ..cause.clone() };
        if !applied.changed {
            // The rules undid the change; what else they asked for still happens.
            self.apply_deferred(tx, &current.id, deferred, cause.depth, effects).await?;
            return Ok(current);
        }
        let next = applied.case.clone();
        check_references(tx, &next.account_id, &next.contact_ids, &None, &next.team_ids).await?;
        if applied.assignee_changed {
            check_assignee(tx, "assigned_user_id", next.assigned_user_id.as_deref()).await?;
        }
        check_attachments(tx, actor, &applied.added_attachment_ids, AttachmentOwner::Case(&current.id)).await?;

        let at = now();
        let stream_bumped =
            !patch.silent && (applied.assignee_changed || applied.audited.iter().any(|c| c.field == "status"));
        let stream_updated_at = if stream_bumped { at } else { current.stream_updated_at };
        let updated = tx
            .query(
                "UPDATE cases SET name = $1, status = $2, priority = $3, case_type = $4, description = $5, \
                 account_id = $6, contact_id = $7, is_internal = $8, assigned_user_id = $9, modified_at = $10, \
                 modified_by_id = $11, stream_updated_at = $12, version = version + 1 \
                 WHERE id = $13 AND version = $14",
            )
            .bind(next.name.as_str())
            .bind(next.status.as_str())
            .bind(next.priority.as_str())
            .bind(next.case_type.map(CaseType::as_str))
            .bind(next.description.as_deref())
            .bind(next.account_id.as_deref())
            .bind(next.contact_id.as_deref())
            .bind(next.is_internal)
            .bind(next.assigned_user_id.as_deref())
            .bind(at)
            .bind(actor.user_id.as_str())
            .bind(stream_updated_at)
            .bind(current.id.as_str())
            .bind(current.version)
            .execute()
            .await?;
        if updated != 1 {
            // Unreachable while the row is locked (PostgreSQL) or the writer
            // is single (SQLite); kept so a future change cannot lose an update.
            return Err(StoreError::VersionConflict { current: current.version + 1 });
        }
        if next.contact_ids != current.contact_ids {
            replace_links(tx, "case_contacts", "case_id", "contact_id", &next.id, &next.contact_ids, true).await?;
        }
        if next.team_ids != current.team_ids {
            replace_links(tx, "case_teams", "case_id", "team_id", &next.id, &next.team_ids, false).await?;
        }
        link_attachments(tx, &next.id, &applied.added_attachment_ids).await?;
        reconcile_follows(tx, &current, &next).await?;
        if !patch.silent {
            for note_id in self.change_notes(tx, actor, &current, &next, &applied, cause).await? {
                effects.announce.push((next.id.clone(), note_id));
            }
        }
        let updated = Case {
            modified_at: at,
            modified_by_id: Some(actor.user_id.clone()),
            stream_updated_at,
            version: current.version + 1,
            ..next
        };
        effects.wrote(&updated);
        self.apply_deferred(tx, &updated.id, deferred, cause.depth, effects).await?;
        let changes = all_changes(&current, &updated);
        let trigger = Trigger {
            email: None,
            hook: Hook::Updated,
            case: Some(&updated),
            changes: &changes,
            note: None,
            actor,
            depth: cause.depth,
        };
        self.run_hook(tx, trigger, effects).await?;
        // Rules may have changed the case again.
        Ok(effects.newest(updated))
    }

    /// Deletes a case with its notes, links and attachment rows. Returns the
    /// storage keys of its attachments so the caller can remove the files.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn delete_case(&self, actor: &Actor, id: &str) -> Result<Vec<String>> {
        let mut tx = self.pools.write().await?;
        let current = load_case(&mut tx, "c.id = $1", id, true).await?;
        match actor.decide(Scope::Case, Action::Delete, &current.ownership()) {
            Decision::Allow => {}
            Decision::Forbidden => {
                return Err(StoreError::Forbidden("you may not delete this case".into()));
            }
            Decision::Hidden => return Err(StoreError::NotFound),
        }
        let keys: Vec<String> = tx
            .query("SELECT storage_key FROM attachments WHERE case_id = $1 OR note_id IN (SELECT id FROM notes WHERE case_id = $1)")
            .bind(id)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("storage_key"))
            .collect::<Result<_>>()?;
        tx.query("DELETE FROM cases WHERE id = $1").bind(id).execute().await?;
        tx.commit().await?;
        Ok(keys)
    }

    /// A page of the cases the actor may read, filtered and sorted.
    #[instrument(level = "debug", skip_all)]
    pub async fn list_cases(&self, actor: &Actor, filter: &CaseFilter) -> Result<Page<Case>> {
        let mut tx = self.pools.read().await?;
        let mut condition = Sql::new(" WHERE 1 = 1");
        if !case_scope_condition(&mut condition, &actor.list_scope(Scope::Case)) {
            tx.commit().await?;
            return Ok(Page { items: Vec::new(), total: 0 });
        }
        case_filter_condition(&mut condition, filter, tx.backend());

        let count = prefixed("SELECT COUNT(*) AS total FROM cases c", &condition);
        let total: i64 = tx.built(&count).fetch_one().await?.get("total")?;

        let cases = select_cases(&mut tx, &condition, filter.sort, filter.window).await?;
        let cases = hide_unseen_files(&mut tx, actor, cases).await?;
        tx.commit().await?;
        Ok(Page { items: cases, total })
    }

    /// The stream of a case, newest first; internal notes only for staff.
    #[instrument(level = "debug", skip_all)]
    pub async fn case_stream(&self, actor: &Actor, case_id: &str, window: Window) -> Result<Page<Note>> {
        let mut tx = self.pools.read().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        enforce_stream(actor, &case)?;
        let visibility = if actor.is_staff() { "" } else { " AND is_internal = $2" };
        let count_sql = format!("SELECT COUNT(*) AS total FROM notes WHERE case_id = $1{visibility}");
        let mut count = tx.query(&count_sql).bind(case.id.as_str());
        if !actor.is_staff() {
            count = count.bind(false);
        }
        let total: i64 = count.fetch_one().await?.get("total")?;
        let mut select = Sql::new(
            "SELECT id, case_id, note_type, post, data, is_internal, author_id, created_at FROM notes WHERE case_id = ",
        );
        select.value(case.id.as_str());
        if !actor.is_staff() {
            select.push(" AND is_internal = ").value(false);
        }
        select.push(" ORDER BY created_at DESC, id DESC");
        page_window(&mut select, window);
        let rows = tx.built(&select).fetch_all().await?;
        let mut notes = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut note = note_from_row(row)?;
            if !actor.is_staff() {
                staff_only_data_removed(&mut note);
            }
            notes.push(note);
        }
        let ids: Vec<String> = notes.iter().map(|n| n.id.clone()).collect();
        let mut attachments = load_links(&mut tx, "attachments", "note_id", "id", "created_at", &ids).await?;
        for note in &mut notes {
            note.attachment_ids = attachments.remove(&note.id).unwrap_or_default();
        }
        tx.commit().await?;
        Ok(Page { items: notes, total })
    }
}

/// What a portal user may decide about a new case: its subject, text,
/// priority, type and attachments. The contact is theirs, the account one
/// of their contact's (the first when they name none); status, assignee and
/// teams are the helpdesk's to set.
async fn portal_draft(tx: &mut Tx, actor: &Actor, draft: CaseDraft) -> Result<CaseDraft> {
    let Some(contact_id) = actor.contact_id.clone() else {
        return Err(StoreError::Forbidden("this portal user is not linked to a contact".into()));
    };
    let accounts: Vec<String> = tx
        .query("SELECT account_id FROM contact_accounts WHERE contact_id = $1 ORDER BY account_id")
        .bind(contact_id.as_str())
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("account_id"))
        .collect::<Result<_>>()?;
    let account_id = match draft.account_id {
        Some(requested) if accounts.contains(&requested) => Some(requested),
        Some(_) => return Err(StoreError::invalid("account_id", "not one of your accounts")),
        None => accounts.first().cloned(),
    };
    Ok(CaseDraft {
        status: CaseStatus::New,
        account_id,
        contact_id: Some(contact_id.clone()),
        contact_ids: vec![contact_id],
        assigned_user_id: None,
        team_ids: Vec::new(),
        is_internal: false,
        ..draft
    })
}

/// Followers of a new case written by its creation statement; a case with
/// more (a helpdesk where many agents auto-follow everything) has its
/// follows written by statements of their own.
const FOLLOWERS_PER_CREATION: usize = 50;

/// A case about to be inserted, with its `Create` note.
struct NewCase<'a> {
    case: &'a Case,
    /// The time of the insert on SQLite (PostgreSQL stamps its own).
    at: DateTime<Utc>,
    actor: &'a str,
    note_id: &'a str,
    note_data: &'a Json,
}

/// Rows written together with a new case.
struct CreationRows<'a> {
    followers: &'a [String],
    /// Of the `Create` note, for the followers.
    notifications: &'a [NotificationRow],
    runs: &'a [&'a RuleRun],
}

/// The statement that takes the next case number, inserts the case, its
/// `Create` note and `rows`: the hot path of case creation, in one round
/// trip.
///
/// The counter row is the lock: concurrent creators queue on it, so numbers
/// are unique and increase in commit order on both backends. SQLite runs
/// the statements as one batch (its single writer makes reading the
/// counter back race-free); PostgreSQL chains them as data-modifying CTEs
/// (whose foreign keys are checked at the end of the statement, once the
/// case exists) and stamps the time after the counter lock is held, so
/// that on both backends a later number never has an earlier creation
/// time. A silent save (`with_note` false) leaves the note out. The
/// statement returns the case's `number` and `created_at`.
fn creation_statement(backend: Backend, new: &NewCase<'_>, with_note: bool, rows: &CreationRows<'_>) -> Sql {
    const COLUMNS: &str = "id, number, name, status, priority, case_type, description, account_id, contact_id, \
        inbound_mailbox_id, is_internal, assigned_user_id, created_at, created_by_id, modified_at, modified_by_id, \
        stream_updated_at, version";
    const NOTE_COLUMNS: &str = "id, case_id, note_type, post, data, is_internal, author_id, created_at, modified_at";
    let case = new.case;
    // $1 id, $2 name, $3 status, $4 priority, $5 type, $6 description, $7
    // account, $8 contact, $9 mailbox, $10 internal, $11 assignee, $12
    // time, $13 actor, $14 note id, $15 note data; the rows follow.
    let values = vec![
        case.id.as_str().into(),
        case.name.as_str().into(),
        case.status.as_str().into(),
        case.priority.as_str().into(),
        case.case_type.map(CaseType::as_str).into(),
        case.description.as_deref().into(),
        case.account_id.as_deref().into(),
        case.contact_id.as_deref().into(),
        case.inbound_mailbox_id.as_deref().into(),
        case.is_internal.into(),
        case.assigned_user_id.as_deref().into(),
        new.at.into(),
        new.actor.into(),
        new.note_id.into(),
        new.note_data.to_string().into(),
    ];
    let mut sql = Sql { text: String::new(), values };
    match backend {
        Backend::Sqlite => {
            sql.push(&format!(
                "UPDATE counters SET value = value + 1 WHERE name = 'case_number'; \
                 INSERT INTO cases ({COLUMNS}) VALUES ($1, (SELECT value FROM counters WHERE name = 'case_number'), \
                 $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $12, $13, $12, 1); "
            ));
            if with_note {
                sql.push(&format!(
                    "INSERT INTO notes ({NOTE_COLUMNS}) VALUES ($14, $1, 'Create', NULL, $15, FALSE, $13, $12, $12); "
                ));
            }
        }
        Backend::Postgres => {
            sql.push(&format!(
                "WITH counter AS (UPDATE counters SET value = value + 1 WHERE name = 'case_number' RETURNING value), \
                 stamp AS (SELECT counter.value, clock_timestamp() AS at FROM counter), \
                 created AS (INSERT INTO cases ({COLUMNS}) SELECT $1, stamp.value, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, stamp.at, $13, stamp.at, $13, stamp.at, 1 FROM stamp RETURNING id, number, created_at), "
            ));
            if with_note {
                sql.push(&format!(
                    "note AS (INSERT INTO notes ({NOTE_COLUMNS}) SELECT $14, created.id, 'Create', NULL, $15, FALSE, \
                     $13, created.created_at, created.created_at FROM created), "
                ));
            }
        }
    }
    if !rows.followers.is_empty() {
        open_part(&mut sql, backend, "follows");
        follows_insert(&mut sql, &case.id, rows.followers, new.at);
        close_part(&mut sql, backend);
    }
    if with_note && !rows.notifications.is_empty() {
        open_part(&mut sql, backend, "notified");
        notifications_insert(&mut sql, &case.id, new.note_id, "note", rows.notifications, new.at);
        close_part(&mut sql, backend);
    }
    if !rows.runs.is_empty() {
        open_part(&mut sql, backend, "logged");
        runs_insert(&mut sql, rows.runs);
        close_part(&mut sql, backend);
    }
    match backend {
        Backend::Sqlite => sql.push("SELECT number, created_at FROM cases WHERE id = $1"),
        Backend::Postgres => sql.push("done AS (SELECT 1) SELECT number, created_at FROM created"),
    };
    sql
}

/// Starts one more insert of the creation statement: a statement of the
/// batch on SQLite, a CTE named `name` on PostgreSQL.
fn open_part(sql: &mut Sql, backend: Backend, name: &str) {
    if backend == Backend::Postgres {
        sql.push(name).push(" AS (");
    }
}

fn close_part(sql: &mut Sql, backend: Backend) {
    match backend {
        Backend::Sqlite => sql.push("; "),
        Backend::Postgres => sql.push("), "),
    };
}

impl Store {
    /// The stream notes of a change, each fanned out to the followers: an
    /// `Update` for audited fields, `Relate`/`Unrelate` per contact linked
    /// or unlinked, an `Assign` for a new assignee. Returns the note ids.
    async fn change_notes(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        current: &Case,
        next: &Case,
        applied: &AppliedPatch,
        cause: &Cause,
    ) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        // Notes written for a rule say which.
        let tagged = |mut data: Json| {
            if let Some(rule) = &cause.rule {
                data["rule"] = json!(rule);
            }
            data
        };
        if !applied.audited.is_empty() {
            // Status changes reach customers by email too (domain.md).
            let emailed = applied.audited.iter().any(|change| change.field == "status");
            let data = tagged(update_note_data(&applied.audited));
            notes.push(self.note_and_notify(tx, actor, next, NoteType::Update, data, emailed).await?);
        }
        let (added, removed) = linked_contacts(current, next);
        for (note_type, contact_ids) in [(NoteType::Relate, added), (NoteType::Unrelate, removed)] {
            for contact_id in contact_ids {
                let data = tagged(json!({ "entity_type": "Contact", "entity_id": contact_id }));
                notes.push(self.note_and_notify(tx, actor, next, note_type, data, false).await?);
            }
        }
        if applied.assignee_changed {
            let mut data = tagged(json!({ "assigned_user_id": next.assigned_user_id }));
            if let Some(assignment) = &cause.assignment {
                data["assignment"] = assignment.clone();
            }
            notes.push(self.note_and_notify(tx, actor, next, NoteType::Assign, data, false).await?);
        }
        Ok(notes)
    }

    async fn note_and_notify(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        case: &Case,
        note_type: NoteType,
        data: Json,
        emailed: bool,
    ) -> Result<String> {
        let note_id = insert_note(tx, &case.id, note_type, data, Some(&actor.user_id)).await?;
        let fan_out =
            FanOut { note_id: &note_id, note_type, is_internal: false, author_id: Some(&actor.user_id), emailed };
        notify_followers(tx, case, &fan_out, self.email_delay).await?;
        Ok(note_id)
    }
}

/// Reading a case's stream: portal users need their `stream` level too.
fn enforce_stream(actor: &Actor, case: &Case) -> Result<()> {
    match actor.decide_stream(&case.ownership()) {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(StoreError::Forbidden("you may not see this case's stream".into())),
        Decision::Hidden => Err(StoreError::NotFound),
    }
}

pub(crate) fn readable(actor: &Actor, case: Case) -> Result<Case> {
    if actor.allows(Scope::Case, Action::Read, &case.ownership()) { Ok(case) } else { Err(StoreError::NotFound) }
}

/// `prefix` (which has no placeholders) followed by a condition; the
/// condition's placeholders keep their numbers.
pub(crate) fn prefixed(prefix: &str, condition: &Sql) -> Sql {
    Sql { text: format!("{prefix}{}", condition.text), values: condition.values.clone() }
}

pub(crate) fn page_window(sql: &mut Sql, window: Window) {
    sql.push(" LIMIT ").value(window.limit).push(" OFFSET ").value(window.offset);
}

/// Adds the actor's reach; `false` means the actor sees no cases at all.
pub(crate) fn case_scope_condition(sql: &mut Sql, scope: &ListScope) -> bool {
    match scope {
        ListScope::All => true,
        ListScope::Nothing => false,
        ListScope::Own { user_id } => {
            sql.push(" AND (c.assigned_user_id = ").value(user_id.as_str());
            sql.push(" OR c.created_by_id = ").value(user_id.as_str()).push(")");
            true
        }
        ListScope::OwnOrTeams { user_id, team_ids } => {
            sql.push(" AND (c.assigned_user_id = ").value(user_id.as_str());
            sql.push(" OR c.created_by_id = ").value(user_id.as_str());
            if !team_ids.is_empty() {
                sql.push(" OR EXISTS (SELECT 1 FROM case_teams ct WHERE ct.case_id = c.id AND ct.team_id IN ");
                sql.list(team_ids).push(")");
            }
            sql.push(")");
            true
        }
        // Each level includes the narrower ones (see `Actor::portal_reaches`).
        ListScope::Portal { level, user_id, contact_id, account_ids } => {
            sql.push(" AND c.is_internal = ").value(false);
            if *level == PortalLevel::All {
                return true;
            }
            sql.push(" AND (c.created_by_id = ").value(user_id.as_str());
            if *level >= PortalLevel::Contact
                && let Some(contact_id) = contact_id
            {
                sql.push(" OR EXISTS (SELECT 1 FROM case_contacts cc WHERE cc.case_id = c.id AND cc.contact_id = ");
                sql.value(contact_id.as_str()).push(")");
            }
            if *level >= PortalLevel::Account && !account_ids.is_empty() {
                sql.push(" OR c.account_id IN ").list(account_ids);
            }
            sql.push(")");
            true
        }
    }
}

pub(crate) fn case_filter_condition(sql: &mut Sql, filter: &CaseFilter, backend: Backend) {
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        sql.push(" AND c.status IN ").list(&statuses);
    }
    match filter.open {
        Some(true) => {
            // Named as the open statuses rather than "not the finished
            // ones", so that the (status, number) index can answer it.
            let open: Vec<&str> = CaseStatus::ALL.into_iter().filter(|s| s.is_open()).map(CaseStatus::as_str).collect();
            sql.push(" AND c.status IN ").list(&open);
        }
        Some(false) => {
            sql.push(" AND c.status IN ").list(&CaseStatus::NOT_ACTUAL.map(CaseStatus::as_str));
        }
        None => {}
    }
    if !filter.priorities.is_empty() {
        let priorities: Vec<&str> = filter.priorities.iter().map(|p| p.as_str()).collect();
        sql.push(" AND c.priority IN ").list(&priorities);
    }
    if let Some(case_type) = filter.case_type {
        sql.push(" AND c.case_type = ").value(case_type.as_str());
    }
    if let Some(user_id) = &filter.assigned_user_id {
        sql.push(" AND c.assigned_user_id = ").value(user_id.as_str());
    }
    if let Some(account_id) = &filter.account_id {
        sql.push(" AND c.account_id = ").value(account_id.as_str());
    }
    if let Some(team_id) = &filter.team_id {
        sql.push(" AND EXISTS (SELECT 1 FROM case_teams ft WHERE ft.case_id = c.id AND ft.team_id = ");
        sql.value(team_id.as_str()).push(")");
    }
    if let Some(contact_id) = &filter.contact_id {
        sql.push(" AND EXISTS (SELECT 1 FROM case_contacts fc WHERE fc.case_id = c.id AND fc.contact_id = ");
        sql.value(contact_id.as_str()).push(")");
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let number = q.trim_start_matches('#').trim_start_matches("[#").trim_end_matches(']').parse::<i64>().ok();
        text_condition(sql, q, backend);
        if let Some(number) = number {
            sql.push(" OR c.number = ").value(number);
        }
        sql.push(")");
    }
}

/// Cases whose name or description contains `q`, ignoring case: opens a
/// parenthesis the caller closes. Both backends answer from trigram
/// indexes (migration 0017). SQLite's is a table of its own, asked with the
/// text as a phrase (for trigrams, a substring match), and it holds the
/// cases up to a mark (see `search.rs`): newer ones are scanned with
/// `LIKE`, which folds only ASCII case until they are indexed. Under three
/// characters there are no trigrams to look up, so SQLite scans them all.
fn text_condition(sql: &mut Sql, q: &str, backend: Backend) {
    let ilike = backend.ilike();
    let pattern = like_pattern(q);
    // FTS5 reads its query as a C string: a NUL (possible in a rule's
    // filter, not over HTTP) would end it early, so such text is scanned.
    if backend == Backend::Sqlite && q.chars().count() >= 3 && !q.contains('\0') {
        let phrase = format!("\"{}\"", q.replace('"', "\"\""));
        sql.push(" AND (c.number IN (SELECT rowid FROM cases_search WHERE cases_search MATCH ").value(phrase);
        sql.push(" UNION ALL SELECT number FROM cases WHERE number > (SELECT indexed_upto FROM case_search_state)");
        sql.push(" AND (name LIKE ").value(pattern.as_str()).push(" ESCAPE '\\'");
        sql.push(" OR description LIKE ").value(pattern).push(" ESCAPE '\\'))");
        return;
    }
    sql.push(&format!(" AND (c.name {ilike} ")).value(pattern.as_str()).push(" ESCAPE '\\'");
    sql.push(&format!(" OR c.description {ilike} ")).value(pattern).push(" ESCAPE '\\'");
}

/// The column to order by, and whether it can hold ties.
fn sort_column(field: CaseSortField) -> (&'static str, bool) {
    match field {
        CaseSortField::Number => ("c.number", true),
        CaseSortField::Name => ("c.name", false),
        CaseSortField::Status => ("c.status", false),
        CaseSortField::Priority => {
            ("CASE c.priority WHEN 'Low' THEN 0 WHEN 'Normal' THEN 1 WHEN 'High' THEN 2 ELSE 3 END", false)
        }
        CaseSortField::CreatedAt => ("c.created_at", false),
        CaseSortField::ModifiedAt => ("c.modified_at", false),
        CaseSortField::StreamUpdatedAt => ("c.stream_updated_at", false),
    }
}

async fn check_references(
    tx: &mut Tx,
    account_id: &Option<String>,
    contact_ids: &[String],
    assigned_user_id: &Option<String>,
    team_ids: &[String],
) -> Result<()> {
    check_exists(tx, "accounts", "account_id", account_id.as_deref()).await?;
    check_exist(tx, "contacts", "contact_ids", contact_ids).await?;
    check_assignee(tx, "assigned_user_id", assigned_user_id.as_deref()).await?;
    check_exist(tx, "teams", "team_ids", team_ids).await
}

/// Portal users see what happened, not how the helpdesk works inside:
/// which rule acted, or why a strategy chose an assignee (staff names,
/// other cases, workloads).
pub(crate) fn staff_only_data_removed(note: &mut Note) {
    if let Some(data) = note.data.as_object_mut() {
        data.remove("rule");
        data.remove("assignment");
        data.remove("notified");
    }
}

/// Checks the records a rule's patch names exist (the assignee: active
/// staff).
pub(crate) async fn check_patch_references(tx: &mut Tx, patch: &CasePatch, verified: Option<&str>) -> Result<()> {
    if let Some(account_id) = &patch.account_id {
        check_exists(tx, "accounts", "account_id", account_id.as_deref()).await?;
    }
    if let Some(contact_ids) = &patch.contact_ids {
        check_exist(tx, "contacts", "contact_ids", contact_ids).await?;
    }
    if let Some(assignee) = &patch.assigned_user_id
        && assignee.as_deref() != verified
    {
        check_assignee(tx, "assigned_user_id", assignee.as_deref()).await?;
    }
    if let Some(team_ids) = &patch.team_ids {
        check_exist(tx, "teams", "team_ids", team_ids).await?;
    }
    Ok(())
}

/// What attachments are about to be linked to; files already linked to it
/// may be named again.
pub(crate) enum AttachmentOwner<'a> {
    /// A record not written yet (a new case, post or email).
    New,
    Case(&'a str),
    Article(&'a str),
}

/// Attachments a case, note or article takes must exist, be unlinked (or
/// already its own) and have been uploaded by the actor (any, for
/// admins), so nobody can steal a file by guessing its id.
pub(crate) async fn check_attachments(
    tx: &mut Tx,
    actor: &Actor,
    ids: &[String],
    owner: AttachmentOwner<'_>,
) -> Result<()> {
    for id in ids {
        let row = tx
            .query("SELECT case_id, note_id, article_id, created_by_id FROM attachments WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else {
            return Err(StoreError::invalid("attachment_ids", format!("no such attachment: {id}")));
        };
        let linked_case: Option<String> = row.get("case_id")?;
        let linked_note: Option<String> = row.get("note_id")?;
        let uploader: Option<String> = row.get("created_by_id")?;
        let linked_article: Option<String> = row.get("article_id")?;
        let free = linked_case.is_none() && linked_note.is_none() && linked_article.is_none();
        let ours = match owner {
            AttachmentOwner::New => false,
            AttachmentOwner::Case(case_id) => linked_case.as_deref() == Some(case_id),
            AttachmentOwner::Article(article_id) => linked_article.as_deref() == Some(article_id),
        };
        let may_take = actor.is_admin() || uploader.as_deref() == Some(actor.user_id.as_str());
        if !(ours || (free && may_take)) {
            return Err(StoreError::invalid("attachment_ids", format!("attachment {id} cannot be linked here")));
        }
    }
    Ok(())
}

async fn link_attachments(tx: &mut Tx, case_id: &str, ids: &[String]) -> Result<()> {
    for id in ids {
        tx.query("UPDATE attachments SET case_id = $1 WHERE id = $2").bind(case_id).bind(id.as_str()).execute().await?;
    }
    Ok(())
}

async fn write_links(tx: &mut Tx, case: &Case) -> Result<()> {
    for (position, contact_id) in case.contact_ids.iter().enumerate() {
        tx.query("INSERT INTO case_contacts (case_id, contact_id, position) VALUES ($1, $2, $3)")
            .bind(case.id.as_str())
            .bind(contact_id.as_str())
            .bind(position as i64)
            .execute()
            .await?;
    }
    for team_id in &case.team_ids {
        tx.query("INSERT INTO case_teams (case_id, team_id) VALUES ($1, $2)")
            .bind(case.id.as_str())
            .bind(team_id.as_str())
            .execute()
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_note(
    tx: &mut Tx,
    case_id: &str,
    note_type: NoteType,
    data: Json,
    author_id: Option<&str>,
) -> Result<String> {
    let id = new_id();
    let at = now();
    tx.query(
        "INSERT INTO notes (id, case_id, note_type, post, data, is_internal, author_id, created_at, modified_at) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $7)",
    )
    .bind(id.as_str())
    .bind(case_id)
    .bind(note_type.as_str())
    .bind(data.to_string())
    .bind(false)
    .bind(author_id)
    .bind(at)
    .execute()
    .await?;
    Ok(id)
}

/// Loads one case with its links; `lock` takes a row lock for an update.
pub(crate) async fn load_case(tx: &mut Tx, condition: &str, value: &str, lock: bool) -> Result<Case> {
    if !docket_domain::ids::looks_like_id(value) {
        return Err(StoreError::NotFound);
    }
    let lock = if lock { tx.for_update() } else { "" };
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases c WHERE {condition}{lock}");
    let row = tx.query(&sql).bind(value).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut cases = vec![case_from_row(&row)?];
    load_children(tx, &mut cases).await?;
    Ok(cases.remove(0))
}

/// A case's files include those of its email notes (so agents find them
/// with the case's own). A customer sees only the files of notes they can
/// read: an internal note's (mail from a colleague's address) never, and no
/// note's at all when their portal role does not reach the case's stream.
async fn hide_unseen_files<C>(tx: &mut Tx, actor: &Actor, mut cases: C) -> Result<C>
where
    C: AsMut<[Case]>,
{
    let ids: Vec<String> = cases.as_mut().iter().flat_map(|c| c.attachment_ids.iter().cloned()).collect();
    if actor.is_staff() || ids.is_empty() {
        return Ok(cases);
    }
    let mut sql =
        Sql::new("SELECT a.id, n.is_internal FROM attachments a JOIN notes n ON n.id = a.note_id WHERE a.id IN ");
    sql.list(&ids);
    let mut note_files = std::collections::HashMap::new();
    for row in tx.built(&sql).fetch_all().await? {
        note_files.insert(row.get::<String>("id")?, row.get::<bool>("is_internal")?);
    }
    for case in cases.as_mut() {
        let stream = actor.decide_stream(&case.ownership()) == Decision::Allow;
        case.attachment_ids.retain(|id| note_files.get(id).is_none_or(|internal| stream && !internal));
    }
    Ok(cases)
}

async fn load_children(tx: &mut Tx, cases: &mut [Case]) -> Result<()> {
    let ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
    let mut contacts = load_links(tx, "case_contacts", "case_id", "contact_id", "position", &ids).await?;
    let mut teams = load_links(tx, "case_teams", "case_id", "team_id", "team_id", &ids).await?;
    let mut attachments = load_links(tx, "attachments", "case_id", "id", "created_at", &ids).await?;
    for case in cases {
        case.contact_ids = contacts.remove(&case.id).unwrap_or_default();
        case.team_ids = teams.remove(&case.id).unwrap_or_default();
        case.attachment_ids = attachments.remove(&case.id).unwrap_or_default();
    }
    Ok(())
}

fn case_from_row(row: &Row) -> Result<Case> {
    let status: String = row.get("status")?;
    let priority: String = row.get("priority")?;
    let case_type: Option<String> = row.get("case_type")?;
    Ok(Case {
        id: row.get("id")?,
        number: row.get("number")?,
        name: row.get("name")?,
        status: parse_stored(&status, CaseStatus::parse)?,
        priority: parse_stored(&priority, CasePriority::parse)?,
        case_type: case_type.map(|t| parse_stored(&t, CaseType::parse)).transpose()?,
        description: row.get("description")?,
        account_id: row.get("account_id")?,
        contact_id: row.get("contact_id")?,
        contact_ids: Vec::new(),
        inbound_mailbox_id: row.get("inbound_mailbox_id")?,
        is_internal: row.get("is_internal")?,
        assigned_user_id: row.get("assigned_user_id")?,
        team_ids: Vec::new(),
        attachment_ids: Vec::new(),
        created_at: row.get("created_at")?,
        created_by_id: row.get("created_by_id")?,
        modified_at: row.get("modified_at")?,
        modified_by_id: row.get("modified_by_id")?,
        stream_updated_at: row.get("stream_updated_at")?,
        version: row.get("version")?,
    })
}

pub(crate) fn note_from_row(row: &Row) -> Result<Note> {
    let note_type: String = row.get("note_type")?;
    let data: String = row.get("data")?;
    Ok(Note {
        id: row.get("id")?,
        case_id: row.get("case_id")?,
        note_type: parse_stored(&note_type, NoteType::parse)?,
        post: row.get("post")?,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("note data: {e}")))?,
        is_internal: row.get("is_internal")?,
        author_id: row.get("author_id")?,
        attachment_ids: Vec::new(),
        created_at: row.get("created_at")?,
    })
}

/// Why a change is being made, for the rules it fires: how deep in a chain
/// of rules it is, which rule made it, and how an assignee was chosen.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    pub depth: u32,
    pub rule: Option<String>,
    /// The strategy and reason of an assignment made by `assign_by`,
    /// recorded on the `Assign` note.
    pub assignment: Option<Json>,
}

/// A case about to be inserted (no number yet), as `before_save` rules
/// and assigner plugins see it.
pub(crate) fn pending_case(draft: CaseDraft, creator_id: &str, at: chrono::DateTime<chrono::Utc>) -> Case {
    Case {
        id: new_id(),
        number: 0,
        name: draft.name,
        status: draft.status,
        priority: draft.priority,
        case_type: draft.case_type,
        description: draft.description,
        account_id: draft.account_id,
        contact_id: draft.contact_id,
        contact_ids: draft.contact_ids,
        inbound_mailbox_id: draft.inbound_mailbox_id,
        is_internal: draft.is_internal,
        assigned_user_id: draft.assigned_user_id,
        team_ids: draft.team_ids,
        attachment_ids: draft.attachment_ids,
        created_at: at,
        created_by_id: Some(creator_id.to_string()),
        modified_at: at,
        modified_by_id: Some(creator_id.to_string()),
        stream_updated_at: at,
        version: 1,
    }
}

/// The case a rule's `create_case` asks for, as a draft.
pub(crate) fn rule_draft(case: &NewRuleCase) -> Result<CaseDraft> {
    let given = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let status = match given(&case.status) {
        Some(status) => CaseStatus::parse(&status).map_err(|e| StoreError::invalid("create_case.status", e))?,
        None if case.assigned_user_id.is_some() => CaseStatus::Assigned,
        None => CaseStatus::New,
    };
    let priority = match given(&case.priority) {
        Some(priority) => CasePriority::parse(&priority).map_err(|e| StoreError::invalid("create_case.priority", e))?,
        None => CasePriority::Normal,
    };
    let case_type = given(&case.case_type)
        .map(|t| CaseType::parse(&t))
        .transpose()
        .map_err(|e| StoreError::invalid("create_case.type", e))?;
    Ok(CaseDraft {
        name: case.name.trim().to_string(),
        description: case.description.clone(),
        status,
        priority,
        case_type,
        account_id: case.account_id.clone(),
        contact_id: case.contact_ids.first().cloned(),
        contact_ids: case.contact_ids.clone(),
        assigned_user_id: case.assigned_user_id.clone(),
        team_ids: case.team_ids.clone(),
        is_internal: false,
        attachment_ids: Vec::new(),
        silent: false,
        inbound_mailbox_id: None,
    })
}

/// Cases matching a condition over `cases c`, sorted and windowed, with
/// their links.
pub(crate) async fn select_cases(
    tx: &mut Tx,
    condition: &Sql,
    sort: docket_domain::listing::Sort<CaseSortField>,
    window: Window,
) -> Result<Vec<Case>> {
    let mut select = prefixed(&format!("SELECT {CASE_COLUMNS} FROM cases c"), condition);
    let (column, nulls_last) = sort_column(sort.field);
    let direction = if sort.descending { "DESC" } else { "ASC" };
    select.push(&format!(" ORDER BY {column} {direction}"));
    if !nulls_last {
        select.push(&format!(", c.number {direction}"));
    }
    page_window(&mut select, window);
    let mut cases: Vec<Case> = tx.built(&select).fetch_all().await?.iter().map(case_from_row).collect::<Result<_>>()?;
    load_children(tx, &mut cases).await?;
    Ok(cases)
}

/// One case by number, whoever may read it (callers check access).
pub(crate) async fn load_case_by_number(tx: &mut Tx, number: i64) -> Result<Case> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases c WHERE c.number = $1");
    let row = tx.query(&sql).bind(number).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut cases = vec![case_from_row(&row)?];
    load_children(tx, &mut cases).await?;
    Ok(cases.remove(0))
}
