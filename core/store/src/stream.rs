//! The stream around a case: posts, follows and in-app notifications.
//!
//! Every note fans out to the case's followers as notifications in the
//! transaction that writes the note. Follows follow the rules of
//! `domain.md`: creators (portal users always, agents by preference),
//! assignees, posters (by preference), the primary contact's portal user,
//! and users whose global auto-follow lists `Case`. Nobody follows a case
//! they cannot read; losing access (or being deactivated) ends the follow.

use chrono::{DateTime, Utc};
use docket_domain::access::Decision;
use docket_domain::case::Case;
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::Window;
use docket_domain::note::{DELETE_WINDOW, EDIT_WINDOW, NewPost, Note, NoteType, Notification, mentions, within};
use docket_domain::{Action, Actor, Scope};
use serde::Serialize;
use tracing::instrument;

use crate::auth::load_actor;
use docket_domain::rule::Hook;

use crate::cases::{AttachmentOwner, Cause, check_attachments, load_case, note_from_row, page_window};
use crate::db::{Sql, Tx};
use crate::hooks::{Effects, Trigger};
use crate::jobs::{NewJob, enqueue};
use crate::rows::{enforce, parse_stored};
use crate::users::parse_preferences;
use crate::{Result, Store, StoreError, now};

/// A follower as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Follower {
    pub user_id: String,
    pub username: String,
    pub name: String,
    #[serde(rename = "type")]
    pub user_type: String,
}

/// A page of notifications with the unread count.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub total: i64,
    pub unread: i64,
}

impl Store {
    /// Posts to a case's stream: the note, its attachments, the author's
    /// follow (by preference), `stream_updated_at`, notifications for
    /// followers and mentioned users, and the `note.created` rules.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn create_post(&self, actor: &Actor, case_id: &str, post: &NewPost) -> Result<Note> {
        post.validate(actor.is_staff())?;
        let mut effects = Effects::default();
        let result = async {
            let mut tx = self.pools.write().await?;
            let note = self.create_post_in(&mut tx, actor, case_id, post, &Store::top_cause(), &mut effects).await?;
            Ok((tx, note))
        }
        .await;
        let (tx, note) = self.settle(result, &mut effects).await?;
        self.finish(tx, effects).await?;
        Ok(note)
    }

    /// Posts inside a transaction: the command behind `create_post`, and
    /// what rules call to write notes.
    pub(crate) async fn create_post_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        case_id: &str,
        post: &NewPost,
        cause: &Cause,
        effects: &mut Effects,
    ) -> Result<Note> {
        post.validate(actor.is_staff())?;
        // No row lock: posts do not change the case's fields, and many people
        // may post at once; the stream_updated_at update below locks briefly.
        let case = load_case(tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide_stream(&case.ownership()), "post to this case")?;
        check_attachments(tx, actor, &post.attachment_ids, AttachmentOwner::New).await?;
        let at = now();
        let data = match &cause.rule {
            Some(rule) => serde_json::json!({ "rule": rule }),
            None => serde_json::json!({}),
        };
        let note = Note {
            id: new_id(),
            case_id: case.id.clone(),
            note_type: NoteType::Post,
            post: Some(post.post.trim().to_string()).filter(|p| !p.is_empty()),
            data,
            is_internal: post.is_internal,
            author_id: Some(actor.user_id.clone()),
            attachment_ids: post.attachment_ids.clone(),
            created_at: at,
        };
        insert_note_row(tx, &note).await?;
        for attachment_id in &post.attachment_ids {
            tx.query("UPDATE attachments SET note_id = $1 WHERE id = $2")
                .bind(note.id.as_str())
                .bind(attachment_id.as_str())
                .execute()
                .await?;
        }
        if !actor.is_system() && preferences_of(tx, &actor.user_id).await?.follow_on_post {
            add_follower(tx, &case.id, &actor.user_id).await?;
        }
        let fan_out = FanOut {
            note_id: &note.id,
            note_type: NoteType::Post,
            is_internal: note.is_internal,
            author_id: Some(&actor.user_id),
            emailed: true,
        };
        notify_followers(tx, &case, &fan_out, self.email_delay).await?;
        notify_mentions(tx, &case, &note, actor, self.email_delay).await?;
        self.note_written(tx, &case, &note, actor, cause.depth, effects).await?;
        Ok(note)
    }

    /// What every new note of a case ends with: the case's stream time
    /// moves (last, because it locks the case row until commit: concurrent
    /// notes on one case queue only for this), live views hear of it, and
    /// the `note.created` rules run.
    pub(crate) async fn note_written(
        &self,
        tx: &mut Tx,
        case: &Case,
        note: &Note,
        actor: &Actor,
        depth: u32,
        effects: &mut Effects,
    ) -> Result<()> {
        tx.query("UPDATE cases SET stream_updated_at = $1 WHERE id = $2")
            .bind(note.created_at)
            .bind(case.id.as_str())
            .execute()
            .await?;
        effects.announce.push((case.id.clone(), note.id.clone()));
        let trigger = Trigger {
            email: None,
            hook: Hook::NoteCreated,
            case: Some(case),
            changes: &[],
            note: Some(note),
            actor,
            depth,
        };
        self.run_hook(tx, trigger, effects).await
    }

    /// Edits a post's text: its author within seven days, or an admin.
    #[instrument(level = "debug", skip_all)]
    pub async fn edit_post(&self, actor: &Actor, note_id: &str, text: &str) -> Result<Note> {
        let mut errors = docket_domain::ValidationErrors::new();
        docket_domain::validation::required_text(&mut errors, "post", text, docket_domain::note::POST_MAX);
        errors.into_result()?;
        let mut tx = self.pools.write().await?;
        let note = own_post(&mut tx, actor, note_id, EDIT_WINDOW, "edit").await?;
        tx.query("UPDATE notes SET post = $1, modified_at = $2 WHERE id = $3")
            .bind(text.trim())
            .bind(now())
            .bind(note_id)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(Note { post: Some(text.trim().to_string()), ..note })
    }

    /// Deletes a post: its author within a month, or an admin.
    #[instrument(level = "debug", skip_all)]
    pub async fn delete_post(&self, actor: &Actor, note_id: &str) -> Result<Vec<String>> {
        let mut tx = self.pools.write().await?;
        own_post(&mut tx, actor, note_id, DELETE_WINDOW, "delete").await?;
        let keys: Vec<String> = tx
            .query("SELECT storage_key FROM attachments WHERE note_id = $1")
            .bind(note_id)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("storage_key"))
            .collect::<Result<_>>()?;
        tx.query("DELETE FROM notes WHERE id = $1").bind(note_id).execute().await?;
        tx.commit().await?;
        Ok(keys)
    }

    /// Who follows a case (for those who may read it).
    #[instrument(level = "debug", skip_all)]
    pub async fn followers(&self, actor: &Actor, case_id: &str) -> Result<Vec<Follower>> {
        let mut tx = self.pools.read().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide(Scope::Case, Action::Read, &case.ownership()), "read this case")?;
        let mut sql = String::from(
            "SELECT u.id, u.username, u.name, u.user_type FROM follows f JOIN users u ON u.id = f.user_id \
             WHERE f.case_id = $1",
        );
        // Portal users see no staff names beyond their own follow.
        if !actor.is_staff() {
            sql.push_str(" AND u.id = $2");
        }
        sql.push_str(" ORDER BY u.username");
        let mut query = tx.query(&sql).bind(case.id.as_str());
        if !actor.is_staff() {
            query = query.bind(actor.user_id.as_str());
        }
        let rows = query.fetch_all().await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(Follower {
                    user_id: row.get("id")?,
                    username: row.get("username")?,
                    name: row.get("name")?,
                    user_type: row.get("user_type")?,
                })
            })
            .collect()
    }

    /// Makes a user follow a case: oneself, or anyone for an admin. The
    /// follower must be able to read the case.
    #[instrument(level = "debug", skip_all)]
    pub async fn follow(&self, actor: &Actor, case_id: &str, user_id: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide(Scope::Case, Action::Read, &case.ownership()), "read this case")?;
        if user_id != actor.user_id && !actor.is_admin() {
            return Err(StoreError::Forbidden("only admins manage other users' follows".into()));
        }
        let follower =
            load_actor(&mut tx, user_id).await?.ok_or_else(|| StoreError::invalid("user_id", "no such active user"))?;
        if !follower.may_follow(&case.ownership()) {
            return Err(StoreError::invalid("user_id", "this user cannot read the case's stream, so cannot follow it"));
        }
        add_follower(&mut tx, &case.id, user_id).await?;
        tx.commit().await
    }

    /// Ends a follow: one's own, or anyone's for an admin.
    #[instrument(level = "debug", skip_all)]
    pub async fn unfollow(&self, actor: &Actor, case_id: &str, user_id: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide(Scope::Case, Action::Read, &case.ownership()), "read this case")?;
        if user_id != actor.user_id && !actor.is_admin() {
            return Err(StoreError::Forbidden("only admins manage other users' follows".into()));
        }
        tx.query("DELETE FROM follows WHERE case_id = $1 AND user_id = $2")
            .bind(case.id.as_str())
            .bind(user_id)
            .execute()
            .await?;
        tx.commit().await
    }

    /// The actor's notifications, newest first.
    #[instrument(level = "debug", skip_all)]
    pub async fn notifications(&self, actor: &Actor, unread_only: bool, window: Window) -> Result<NotificationPage> {
        let mut tx = self.pools.read().await?;
        const JOINED: &str = "FROM notifications n JOIN cases c ON c.id = n.case_id JOIN notes t ON t.id = n.note_id";
        let mut condition = Sql::new(" WHERE n.user_id = ");
        condition.value(actor.user_id.as_str());
        portal_notification_condition(&mut condition, actor);
        let mut unread_condition = condition.clone();
        unread_condition.push(" AND n.is_read = ").value(false);
        if unread_only {
            condition = unread_condition.clone();
        }
        let total: i64 = tx
            .built(&crate::cases::prefixed(&format!("SELECT COUNT(*) AS total {JOINED}"), &condition))
            .fetch_one()
            .await?
            .get("total")?;
        let unread: i64 = tx
            .built(&crate::cases::prefixed(&format!("SELECT COUNT(*) AS unread {JOINED}"), &unread_condition))
            .fetch_one()
            .await?
            .get("unread")?;
        let mut select = crate::cases::prefixed(
            &format!(
                "SELECT n.id, n.case_id, n.note_id, n.kind, n.is_highlighted, n.is_read, n.created_at, c.number, \
                 c.name, t.note_type, t.author_id {JOINED}"
            ),
            &condition,
        );
        select.push(" ORDER BY n.created_at DESC, n.id DESC");
        page_window(&mut select, window);
        let rows = tx.built(&select).fetch_all().await?;
        tx.commit().await?;
        let items = rows
            .iter()
            .map(|row| {
                let note_type: String = row.get("note_type")?;
                Ok(Notification {
                    id: row.get("id")?,
                    case_id: row.get("case_id")?,
                    case_number: row.get("number")?,
                    case_name: row.get("name")?,
                    note_id: row.get("note_id")?,
                    kind: row.get("kind")?,
                    note_type: parse_stored(&note_type, NoteType::parse)?,
                    author_id: row.get("author_id")?,
                    is_highlighted: row.get("is_highlighted")?,
                    is_read: row.get("is_read")?,
                    created_at: row.get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(NotificationPage { items, total, unread })
    }

    /// Marks one of the actor's notifications read.
    #[instrument(level = "debug", skip_all)]
    pub async fn mark_notification_read(&self, actor: &Actor, id: &str) -> Result<()> {
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let changed = tx
            .query("UPDATE notifications SET is_read = $1 WHERE id = $2 AND user_id = $3")
            .bind(true)
            .bind(id)
            .bind(actor.user_id.as_str())
            .execute()
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// Marks all the actor's notifications read; returns how many changed.
    #[instrument(level = "debug", skip_all)]
    pub async fn mark_all_notifications_read(&self, actor: &Actor) -> Result<u64> {
        let mut tx = self.pools.write().await?;
        let changed = tx
            .query("UPDATE notifications SET is_read = $1 WHERE user_id = $2 AND is_read = $3")
            .bind(true)
            .bind(actor.user_id.as_str())
            .bind(false)
            .execute()
            .await?;
        tx.commit().await?;
        Ok(changed)
    }
}

/// A post the actor may still edit or delete (its author within the
/// window, or an admin at any time).
async fn own_post(tx: &mut Tx, actor: &Actor, note_id: &str, window: chrono::TimeDelta, what: &str) -> Result<Note> {
    if !looks_like_id(note_id) {
        return Err(StoreError::NotFound);
    }
    let sql = format!(
        "SELECT id, case_id, note_type, post, data, is_internal, author_id, created_at FROM notes WHERE id = $1{}",
        tx.for_update()
    );
    let row = tx.query(&sql).bind(note_id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let note = note_from_row(&row)?;
    let case = load_case(tx, "c.id = $1", &note.case_id, false).await?;
    if actor.decide_stream(&case.ownership()) != Decision::Allow || (note.is_internal && !actor.is_staff()) {
        return Err(StoreError::NotFound);
    }
    if note.note_type != NoteType::Post {
        return Err(StoreError::Forbidden(format!("system notes cannot be {what}ed")));
    }
    if actor.is_admin() {
        return Ok(note);
    }
    if note.author_id.as_deref() != Some(actor.user_id.as_str()) {
        return Err(StoreError::Forbidden(format!("only the author (or an admin) may {what} a post")));
    }
    if !within(note.created_at, window, now()) {
        return Err(StoreError::Forbidden(format!("posts can be {what}ed for {} days only", window.num_days())));
    }
    Ok(note)
}

pub(crate) async fn preferences_of(tx: &mut Tx, user_id: &str) -> Result<docket_domain::preferences::Preferences> {
    let row = tx.query("SELECT preferences, user_type FROM users WHERE id = $1").bind(user_id).fetch_one().await?;
    let user_type: String = row.get("user_type")?;
    let user_type = parse_stored(&user_type, docket_domain::user::UserType::parse)?;
    parse_preferences(&row.get::<String>("preferences")?, user_type)
}

pub(crate) async fn add_follower(tx: &mut Tx, case_id: &str, user_id: &str) -> Result<()> {
    tx.query("INSERT INTO follows (case_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(case_id)
        .bind(user_id)
        .bind(now())
        .execute()
        .await?;
    Ok(())
}

/// Portal users' notifications, again limited to what they may read now:
/// follows are reconciled whenever access narrows, and this keeps a
/// notification that slipped through from showing a case's name or an
/// internal note. Their reach is that of the narrower of their read and
/// stream levels (the levels nest).
fn portal_notification_condition(sql: &mut Sql, actor: &Actor) {
    if !actor.is_portal() {
        return;
    }
    let cases = &actor.portal.permissions.case;
    let level = cases.read.min(cases.stream);
    sql.push(" AND t.is_internal = ").value(false);
    let scope = match level {
        docket_domain::portal::PortalLevel::No => docket_domain::access::ListScope::Nothing,
        level => docket_domain::access::ListScope::Portal {
            level,
            user_id: actor.user_id.clone(),
            contact_id: actor.contact_id.clone(),
            account_ids: actor.portal.account_ids.clone(),
        },
    };
    if !crate::cases::case_scope_condition(sql, &scope) {
        sql.push(" AND 1 = 0");
    }
}

/// Who may auto-follow a new case, read before the write transaction so
/// that the single SQLite writer (and PostgreSQL's counter lock) are held
/// only for the writes.
pub(crate) struct FollowPlan {
    creator_follows: bool,
    /// Users whose global auto-follow lists `Case`, with their access.
    auto_followers: Vec<Actor>,
}

impl Store {
    pub(crate) async fn follow_plan(&self, creator: &Actor) -> Result<FollowPlan> {
        let mut tx = self.pools.read_autocommit().await?;
        follow_plan_in(&mut tx, creator).await
    }
}

/// The follow plan read in a given transaction (for cases rules create).
pub(crate) async fn follow_plan_in(tx: &mut Tx, creator: &Actor) -> Result<FollowPlan> {
    // One round trip: the creator's preferences and the auto-followers.
    let rows = tx
        .query(
            "SELECT 'preferences' AS kind, preferences AS value FROM users WHERE id = $1 \
             UNION ALL SELECT 'auto' AS kind, user_id AS value FROM user_auto_follow WHERE entity_type = 'Case'",
        )
        .bind(creator.user_id.as_str())
        .fetch_all()
        .await?;
    let mut creator_follows = creator.is_portal();
    let mut ids = Vec::new();
    for row in rows {
        let kind: String = row.get("kind")?;
        let value: String = row.get("value")?;
        if kind == "preferences" {
            creator_follows |= parse_preferences(&value, creator.user_type)?.follow_created;
        } else {
            ids.push(value);
        }
    }
    // Rules follow nothing: followers get notified, the rules' user is nobody.
    creator_follows &= !creator.is_system();
    let mut auto_followers = Vec::new();
    for id in ids {
        if let Some(user) = load_actor(tx, &id).await? {
            auto_followers.push(user);
        }
    }
    Ok(FollowPlan { creator_follows, auto_followers })
}

/// Who follows a new case from the start (see the module comment), read
/// before the case is inserted so that the follows can be written with it.
pub(crate) async fn initial_followers(
    tx: &mut Tx,
    case: &Case,
    creator: &Actor,
    plan: &FollowPlan,
    known_active: Option<&str>,
) -> Result<Vec<String>> {
    let mut followers: Vec<String> = Vec::new();
    if plan.creator_follows && creator.may_follow(&case.ownership()) {
        followers.push(creator.user_id.clone());
    }
    if let Some(assignee) = &case.assigned_user_id {
        followers.push(assignee.clone());
    }
    if let Some(contact_id) = &case.contact_id
        && !case.is_internal
    {
        followers.extend(followable_portal_users(tx, case, contact_id).await?);
    }
    for user in &plan.auto_followers {
        if user.may_follow(&case.ownership()) {
            followers.push(user.user_id.clone());
        }
    }
    followers.sort();
    followers.dedup();
    if followers.is_empty() {
        return Ok(followers);
    }
    // The plan was read before this transaction: keep only users still
    // active now (an assignee a strategy chose in this transaction is).
    if followers.iter().any(|id| Some(id.as_str()) != known_active) {
        let mut sql = Sql::new("SELECT id FROM users WHERE is_active = ");
        sql.value(true).push(" AND id IN ").list(&followers);
        let active: Vec<String> =
            tx.built(&sql).fetch_all().await?.iter().map(|row| row.get("id")).collect::<Result<_>>()?;
        followers.retain(|id| active.contains(id));
    }
    Ok(followers)
}

/// The notifications of a new case's `Create` note for its first
/// followers (the assignee's highlighted), without reading the follows
/// back.
pub(crate) fn created_notifications(case: &Case, followers: &[String], author: &str) -> Vec<NotificationRow> {
    followers
        .iter()
        .filter(|id| id.as_str() != author)
        .map(|user_id| NotificationRow {
            id: new_id(),
            user_id: user_id.clone(),
            highlighted: case.assigned_user_id.as_deref() == Some(user_id.as_str()),
        })
        .collect()
}

/// Writes the follows of a new case one statement per follower: for the
/// rare case with more followers than the creation statement takes.
pub(crate) async fn insert_follows(tx: &mut Tx, case_id: &str, followers: &[String]) -> Result<()> {
    for user_id in followers {
        add_follower(tx, case_id, user_id).await?;
    }
    Ok(())
}

/// Writes `INSERT INTO follows ...` for a new case's followers (not empty).
pub(crate) fn follows_insert(sql: &mut Sql, case_id: &str, followers: &[String], at: DateTime<Utc>) {
    sql.push("INSERT INTO follows (case_id, user_id, created_at) VALUES ");
    for (i, user_id) in followers.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(").value(case_id).push(", ").value(user_id.as_str()).push(", ").value(at).push(")");
    }
}

/// The active portal users of a contact.
pub(crate) async fn contact_portal_users(tx: &mut Tx, contact_id: &str) -> Result<Vec<String>> {
    tx.query("SELECT id FROM users WHERE contact_id = $1 AND user_type = 'portal' AND is_active = $2")
        .bind(contact_id)
        .bind(true)
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("id"))
        .collect()
}

/// The active portal users of a contact whose portal roles let them follow
/// the case.
async fn followable_portal_users(tx: &mut Tx, case: &Case, contact_id: &str) -> Result<Vec<String>> {
    let mut followers = Vec::new();
    for user_id in contact_portal_users(tx, contact_id).await? {
        if let Some(user) = load_actor(tx, &user_id).await?
            && user.may_follow(&case.ownership())
        {
            followers.push(user_id);
        }
    }
    Ok(followers)
}

/// The primary contact's active portal user follows (not internal cases).
pub(crate) async fn follow_contact_portal_user(tx: &mut Tx, case: &Case, contact_id: &str) -> Result<()> {
    if case.is_internal {
        return Ok(());
    }
    for user_id in followable_portal_users(tx, case, contact_id).await? {
        add_follower(tx, &case.id, &user_id).await?;
    }
    Ok(())
}

/// After an update: followers who can no longer read the case stop
/// following it (and lose its notifications); the old primary contact's
/// portal user stops following when the contact changes.
pub(crate) async fn reconcile_follows(tx: &mut Tx, before: &Case, after: &Case) -> Result<()> {
    if before.contact_id != after.contact_id {
        if let Some(old) = &before.contact_id {
            tx.query(
                "DELETE FROM follows WHERE case_id = $1 AND user_id IN \
                 (SELECT id FROM users WHERE contact_id = $2 AND user_type = 'portal')",
            )
            .bind(after.id.as_str())
            .bind(old.as_str())
            .execute()
            .await?;
        }
        if let Some(new) = &after.contact_id {
            follow_contact_portal_user(tx, after, new).await?;
        }
    }
    if let Some(assignee) = &after.assigned_user_id
        && before.assigned_user_id.as_ref() != Some(assignee)
    {
        add_follower(tx, &after.id, assignee).await?;
    }
    let access_changed = before.team_ids != after.team_ids
        || before.assigned_user_id != after.assigned_user_id
        || before.is_internal != after.is_internal
        || before.contact_ids != after.contact_ids
        || before.account_id != after.account_id;
    if !access_changed {
        return Ok(());
    }
    let followers: Vec<String> = tx
        .query("SELECT user_id FROM follows WHERE case_id = $1")
        .bind(after.id.as_str())
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("user_id"))
        .collect::<Result<_>>()?;
    for user_id in followers {
        let keeps = match load_actor(tx, &user_id).await? {
            Some(user) => user.may_follow(&after.ownership()),
            None => false,
        };
        if !keeps {
            drop_follower(tx, &after.id, &user_id).await?;
        }
    }
    Ok(())
}

/// After a user's access may have changed (type, contact, teams, roles,
/// active flag): they stop following the cases they can no longer read.
pub(crate) async fn reconcile_user_follows(tx: &mut Tx, user_id: &str) -> Result<()> {
    let cases: Vec<String> = tx
        .query("SELECT case_id FROM follows WHERE user_id = $1")
        .bind(user_id)
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("case_id"))
        .collect::<Result<_>>()?;
    let user = load_actor(tx, user_id).await?;
    for case_id in cases {
        let keeps = match &user {
            Some(user) => {
                let case = load_case(tx, "c.id = $1", &case_id, false).await?;
                user.may_follow(&case.ownership())
            }
            None => false,
        };
        if !keeps {
            drop_follower(tx, &case_id, user_id).await?;
        }
    }
    Ok(())
}

async fn drop_follower(tx: &mut Tx, case_id: &str, user_id: &str) -> Result<()> {
    tx.query("DELETE FROM follows WHERE case_id = $1 AND user_id = $2").bind(case_id).bind(user_id).execute().await?;
    tx.query("DELETE FROM notifications WHERE case_id = $1 AND user_id = $2")
        .bind(case_id)
        .bind(user_id)
        .execute()
        .await?;
    Ok(())
}

/// A note about to be fanned out to followers.
pub(crate) struct FanOut<'a> {
    pub note_id: &'a str,
    pub note_type: NoteType,
    pub is_internal: bool,
    pub author_id: Option<&'a str>,
    /// Whether followers who asked for email get this note by email
    /// (posts, status changes, received emails).
    pub emailed: bool,
}

/// Writes a note's row (a post, an email); the caller links attachments.
pub(crate) async fn insert_note_row(tx: &mut Tx, note: &Note) -> Result<()> {
    tx.query(
        "INSERT INTO notes (id, case_id, note_type, post, data, is_internal, author_id, created_at, modified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(note.id.as_str())
    .bind(note.case_id.as_str())
    .bind(note.note_type.as_str())
    .bind(note.post.as_deref())
    .bind(note.data.to_string())
    .bind(note.is_internal)
    .bind(note.author_id.as_deref())
    .bind(note.created_at)
    .execute()
    .await?;
    Ok(())
}

/// One notification per follower except the author; portal users get
/// none for internal notes; the assignee's notification of a Create or
/// Assign note is highlighted. Followers who want email get a delayed
/// email job too.
pub(crate) async fn notify_followers(
    tx: &mut Tx,
    case: &Case,
    fan_out: &FanOut<'_>,
    email_delay: chrono::Duration,
) -> Result<()> {
    let rows = tx
        .query(
            "SELECT f.user_id, u.user_type, u.email, u.preferences FROM follows f JOIN users u ON u.id = f.user_id \
             WHERE f.case_id = $1 AND u.is_active = $2",
        )
        .bind(case.id.as_str())
        .bind(true)
        .fetch_all()
        .await?;
    let at = now();
    let mut batch = Vec::new();
    let mut emails = Vec::new();
    for row in rows {
        let user_id: String = row.get("user_id")?;
        let user_type: String = row.get("user_type")?;
        if Some(user_id.as_str()) == fan_out.author_id || (fan_out.is_internal && user_type == "portal") {
            continue;
        }
        let highlighted = matches!(fan_out.note_type, NoteType::Create | NoteType::Assign)
            && case.assigned_user_id.as_deref() == Some(user_id.as_str());
        let id = new_id();
        if fan_out.emailed && wants_email(&row)? {
            emails.push(id.clone());
        }
        batch.push(NotificationRow { id, user_id, highlighted });
    }
    insert_notifications(tx, &case.id, fan_out.note_id, "note", &batch, at).await?;
    for id in emails {
        enqueue_email(tx, &id, at + email_delay).await?;
    }
    Ok(())
}

pub(crate) struct NotificationRow {
    id: String,
    user_id: String,
    highlighted: bool,
}

/// Inserts many notifications of one note in multi-row statements: a post
/// on a case with fifty followers is a couple of statements, not fifty.
pub(crate) async fn insert_notifications(
    tx: &mut Tx,
    case_id: &str,
    note_id: &str,
    kind: &str,
    rows: &[NotificationRow],
    at: DateTime<Utc>,
) -> Result<()> {
    for chunk in rows.chunks(100) {
        let mut sql = Sql::default();
        notifications_insert(&mut sql, case_id, note_id, kind, chunk, at);
        tx.built(&sql).execute().await?;
    }
    Ok(())
}

/// Writes `INSERT INTO notifications ...` for `rows` (not empty).
pub(crate) fn notifications_insert(
    sql: &mut Sql,
    case_id: &str,
    note_id: &str,
    kind: &str,
    rows: &[NotificationRow],
    at: DateTime<Utc>,
) {
    sql.push(
        "INSERT INTO notifications (id, user_id, case_id, note_id, kind, is_highlighted, is_read, created_at) VALUES ",
    );
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(").value(row.id.as_str()).push(", ").value(row.user_id.as_str()).push(", ");
        sql.value(case_id).push(", ").value(note_id).push(", ").value(kind).push(", ");
        sql.value(row.highlighted).push(", ").value(false).push(", ").value(at).push(")");
    }
}

/// Whether a user row (with `user_type`, `email`, `preferences`) asked
/// for stream email and has an address to send it to.
fn wants_email(row: &crate::db::Row) -> Result<bool> {
    let email: Option<String> = row.get("email")?;
    let user_type: String = row.get("user_type")?;
    let user_type = parse_stored(&user_type, docket_domain::user::UserType::parse)?;
    let preferences = parse_preferences(&row.get::<String>("preferences")?, user_type)?;
    Ok(email.is_some() && preferences.email_notifications)
}

async fn enqueue_email(tx: &mut Tx, notification_id: &str, run_at: DateTime<Utc>) -> Result<()> {
    let job = NewJob {
        kind: EMAIL_NOTIFICATION_JOB,
        payload: serde_json::json!({ "notification_id": notification_id }),
        run_at,
        idempotency_key: Some(format!("email-notification:{notification_id}")),
    };
    enqueue(tx, &job).await
}

/// A notification of a rule's `notify` (kind `rule`), pointing at the
/// internal note that holds the message.
pub(crate) async fn insert_rule_notification(
    tx: &mut Tx,
    user_id: &str,
    case_id: &str,
    note_id: &str,
    at: DateTime<Utc>,
) -> Result<String> {
    insert_notification(tx, user_id, case_id, note_id, "rule", true, at).await
}

/// Queues the email of a notification if its user wants stream email.
pub(crate) async fn email_if_wanted(
    tx: &mut Tx,
    user_id: &str,
    notification_id: &str,
    run_at: DateTime<Utc>,
) -> Result<()> {
    let row =
        tx.query("SELECT user_type, email, preferences FROM users WHERE id = $1").bind(user_id).fetch_one().await?;
    if wants_email(&row)? {
        enqueue_email(tx, notification_id, run_at).await?;
    }
    Ok(())
}

/// The job kind that emails one notification.
pub const EMAIL_NOTIFICATION_JOB: &str = "email_notification";

/// `@username` mentions notify active staff users who may read the case
/// (never portal users); a mention replaces their plain notification.
async fn notify_mentions(
    tx: &mut Tx,
    case: &Case,
    note: &Note,
    author: &Actor,
    email_delay: chrono::Duration,
) -> Result<()> {
    let Some(text) = &note.post else { return Ok(()) };
    for username in mentions(text) {
        let row = tx
            .query(
                "SELECT id, user_type, email, preferences FROM users \
                 WHERE username = $1 AND user_type <> 'portal' AND is_active = $2",
            )
            .bind(username.as_str())
            .bind(true)
            .fetch_optional()
            .await?;
        let Some(row) = row else { continue };
        let user_id: String = row.get("id")?;
        if user_id == author.user_id {
            continue;
        }
        let Some(user) = load_actor(tx, &user_id).await? else { continue };
        if !user.allows(Scope::Case, Action::Read, &case.ownership()) {
            continue;
        }
        tx.query("DELETE FROM notifications WHERE note_id = $1 AND user_id = $2")
            .bind(note.id.as_str())
            .bind(user_id.as_str())
            .execute()
            .await?;
        let at = now();
        let id = insert_notification(tx, &user_id, &case.id, &note.id, "mention", false, at).await?;
        if wants_email(&row)? {
            enqueue_email(tx, &id, at + email_delay).await?;
        }
    }
    Ok(())
}

async fn insert_notification(
    tx: &mut Tx,
    user_id: &str,
    case_id: &str,
    note_id: &str,
    kind: &str,
    highlighted: bool,
    at: DateTime<Utc>,
) -> Result<String> {
    let id = new_id();
    tx.query(
        "INSERT INTO notifications (id, user_id, case_id, note_id, kind, is_highlighted, is_read, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(user_id)
    .bind(case_id)
    .bind(note_id)
    .bind(kind)
    .bind(highlighted)
    .bind(false)
    .bind(at)
    .execute()
    .await?;
    Ok(id)
}

impl Store {
    /// How many unread notifications the actor has (the header badge).
    #[instrument(level = "debug", skip_all)]
    pub async fn unread_notifications(&self, actor: &Actor) -> Result<i64> {
        // A portal user's count goes through the same filter as their list.
        if actor.is_portal() {
            return Ok(self.notifications(actor, true, Window::new(Some(1), None)).await?.unread);
        }
        let mut tx = self.pools.read_autocommit().await?;
        tx.query("SELECT COUNT(*) AS unread FROM notifications WHERE user_id = $1 AND is_read = $2")
            .bind(actor.user_id.as_str())
            .bind(false)
            .fetch_one()
            .await?
            .get("unread")
    }

    /// Marks the actor's notifications about one case read (they opened it).
    #[instrument(level = "debug", skip_all)]
    pub async fn mark_case_notifications_read(&self, actor: &Actor, case_id: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query("UPDATE notifications SET is_read = $1 WHERE user_id = $2 AND case_id = $3 AND is_read = $4")
            .bind(true)
            .bind(actor.user_id.as_str())
            .bind(case_id)
            .bind(false)
            .execute()
            .await?;
        tx.commit().await
    }
}

/// What the email job needs to know about one notification.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationEmail {
    pub notification_id: String,
    pub is_read: bool,
    pub to_address: String,
    pub to_name: String,
    pub to_is_portal: bool,
    /// For portal users: the slug of the default portal, whose pages the
    /// email links to (`None` when no portal is active).
    pub portal_slug: Option<String>,
    pub case_id: String,
    pub case_number: i64,
    pub case_name: String,
    pub case_status: String,
    pub note_id: String,
    pub note_type: String,
    pub kind: String,
    pub post: Option<String>,
    pub data: serde_json::Value,
    pub author_name: String,
}

impl Store {
    /// The facts of a notification for its email; `None` when it, its note
    /// or its user are gone, or the user stopped wanting email.
    #[instrument(level = "debug", skip_all)]
    pub async fn notification_email(&self, notification_id: &str) -> Result<Option<NotificationEmail>> {
        let mut tx = self.pools.read().await?;
        let row = tx
            .query(
                "SELECT n.id, n.is_read, n.kind, n.user_id, u.email, u.name AS user_name, u.user_type, u.is_active, \
                 u.preferences, \
                 c.id AS case_id, c.number, c.name AS case_name, c.status, t.id AS note_id, t.note_type, t.post, \
                 t.data, t.is_internal, a.name AS author_name FROM notifications n \
                 JOIN users u ON u.id = n.user_id JOIN cases c ON c.id = n.case_id JOIN notes t ON t.id = n.note_id \
                 LEFT JOIN users a ON a.id = t.author_id WHERE n.id = $1",
            )
            .bind(notification_id)
            .fetch_optional()
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        // Access and preferences are checked again at send time: both may
        // have changed since the notification was written.
        let user_id: String = row.get("user_id")?;
        let case_id: String = row.get("case_id")?;
        let reader = load_actor(&mut tx, &user_id).await?;
        let case = load_case(&mut tx, "c.id = $1", &case_id, false).await?;
        let portal_slug = match &reader {
            Some(reader) if reader.is_portal() => tx
                .query("SELECT slug FROM portals WHERE is_default = $1 AND is_active = $1")
                .bind(true)
                .fetch_optional()
                .await?
                .map(|row| row.get::<String>("slug"))
                .transpose()?,
            _ => None,
        };
        tx.commit().await?;
        let may_read = reader.as_ref().is_some_and(|r| r.may_follow(&case.ownership()));
        let user_type_text: String = row.get("user_type")?;
        let user_type = parse_stored(&user_type_text, docket_domain::user::UserType::parse)?;
        let wants = parse_preferences(&row.get::<String>("preferences")?, user_type)?.email_notifications;
        if !may_read || !wants {
            return Ok(None);
        }
        let email: Option<String> = row.get("email")?;
        let user_type: String = row.get("user_type")?;
        let is_internal: bool = row.get("is_internal")?;
        let is_active: bool = row.get("is_active")?;
        // Internal notes never reach portal users, by any channel.
        let (Some(to_address), true, false) = (email, is_active, is_internal && user_type == "portal") else {
            return Ok(None);
        };
        let data: String = row.get("data")?;
        Ok(Some(NotificationEmail {
            notification_id: row.get("id")?,
            is_read: row.get("is_read")?,
            to_address,
            to_name: row.get("user_name")?,
            to_is_portal: user_type == "portal",
            portal_slug,
            case_id: row.get("case_id")?,
            case_number: row.get("number")?,
            case_name: row.get("case_name")?,
            case_status: row.get("status")?,
            note_id: row.get("note_id")?,
            note_type: row.get("note_type")?,
            kind: row.get("kind")?,
            post: row.get("post")?,
            data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("note data: {e}")))?,
            author_name: row.get::<Option<String>>("author_name")?.unwrap_or_else(|| "Docket".into()),
        }))
    }
}
