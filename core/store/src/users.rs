//! Users, roles and preferences.

use docket_domain::access::{ListScope, Permissions};
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::{Page, SimpleFilter, like_pattern, simple_order};
use docket_domain::preferences::Preferences;
use docket_domain::user::{NewRole, NewUser, Role, RolePatch, User, UserPatch, UserType, check_role_name};
use docket_domain::{Action, Actor, Scope};
use tracing::instrument;

use crate::cases::{page_window, prefixed};
use crate::db::{Row, Sql, Tx};
use crate::rows::{check_exist, check_exists, check_version, json_text, load_links, parse_stored, replace_links};
use crate::{Result, Store, StoreError, now};

const USER_COLUMNS: &str = "u.id, u.username, u.name, u.email, u.user_type, u.is_active, u.contact_id, \
     u.created_at, u.modified_at, u.version";

/// Only admins manage users, teams and roles.
pub(crate) fn require_admin(actor: &Actor, what: &str) -> Result<()> {
    if actor.is_admin() { Ok(()) } else { Err(StoreError::Forbidden(format!("only admins may {what}"))) }
}

impl Store {
    /// The display names of users, by id; unknown ids are left out. Only
    /// names: pages use it to name the authors of notes they already show.
    #[instrument(level = "debug", skip_all)]
    pub async fn user_names(&self, ids: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
        let candidates: Vec<String> = ids.iter().filter(|id| looks_like_id(id)).cloned().collect();
        if candidates.is_empty() {
            return Ok(Default::default());
        }
        let mut sql = Sql::new("SELECT id, name FROM users WHERE id IN ");
        sql.list(&candidates);
        let mut tx = self.pools.read().await?;
        let rows = tx.built(&sql).fetch_all().await?;
        tx.commit().await?;
        rows.iter().map(|row| Ok((row.get("id")?, row.get("name")?))).collect()
    }

    /// Creates a user. `password_hash` is already an argon2 hash.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn create_user(&self, actor: &Actor, new: &NewUser, password_hash: Option<String>) -> Result<User> {
        require_admin(actor, "create users")?;
        let mut tx = self.pools.write().await?;
        let user = insert_user(&mut tx, new, password_hash).await?;
        tx.commit().await?;
        Ok(user)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_user(&self, actor: &Actor, id: &str) -> Result<User> {
        let mut tx = self.pools.read().await?;
        let user = load_user(&mut tx, id, false).await?;
        tx.commit().await?;
        if actor.user_id == user.id || actor.allows(Scope::User, Action::Read, &user.ownership()) {
            Ok(user)
        } else {
            Err(StoreError::NotFound)
        }
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn list_users(&self, actor: &Actor, filter: &SimpleFilter) -> Result<Page<User>> {
        let mut tx = self.pools.read().await?;
        // The rules' own user is not a person to list or pick.
        let mut condition = Sql::new(" WHERE u.id <> ");
        condition.value(docket_domain::access::SYSTEM_USER_ID);
        match actor.list_scope(Scope::User) {
            ListScope::All => {}
            ListScope::OwnOrTeams { user_id, team_ids } => {
                condition.push(" AND (u.id = ").value(user_id);
                if !team_ids.is_empty() {
                    condition
                        .push(" OR EXISTS (SELECT 1 FROM team_members tm WHERE tm.user_id = u.id AND tm.team_id IN ");
                    condition.list(&team_ids).push(")");
                }
                condition.push(")");
            }
            ListScope::Own { user_id } | ListScope::Portal { user_id, .. } => {
                condition.push(" AND u.id = ").value(user_id);
            }
            ListScope::Nothing => {
                condition.push(" AND u.id = ").value(actor.user_id.as_str());
            }
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = like_pattern(q);
            let ilike = tx.ilike();
            condition.push(&format!(" AND (u.username {ilike} ")).value(pattern.as_str()).push(" ESCAPE '\\'");
            condition.push(&format!(" OR u.name {ilike} ")).value(pattern).push(" ESCAPE '\\')");
        }
        let total: i64 =
            tx.built(&prefixed("SELECT COUNT(*) AS total FROM users u", &condition)).fetch_one().await?.get("total")?;
        let mut select = prefixed(&format!("SELECT {USER_COLUMNS} FROM users u"), &condition);
        select.push(&simple_order(filter.sort, "u", &["username"]));
        page_window(&mut select, filter.window);
        let mut users: Vec<User> =
            tx.built(&select).fetch_all().await?.iter().map(user_from_row).collect::<Result<_>>()?;
        load_user_links(&mut tx, &mut users).await?;
        tx.commit().await?;
        Ok(Page { items: users, total })
    }

    /// Updates a user. Deactivating one ends their sessions.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: &str,
        patch: &UserPatch,
        password_hash: Option<String>,
    ) -> Result<User> {
        require_admin(actor, "edit users")?;
        let mut tx = self.pools.write().await?;
        let current = load_user(&mut tx, id, true).await?;
        check_version(patch.version, current.version)?;
        let mut next = current.clone();
        if let Some(username) = &patch.username
            && *username != current.username
        {
            check_username_free(&mut tx, username).await?;
            next.username = username.clone();
        }
        if let Some(name) = &patch.name {
            next.name = name.trim().to_string();
        }
        if let Some(email) = &patch.email {
            next.email = email.clone();
        }
        if let Some(user_type) = patch.user_type {
            next.user_type = user_type;
        }
        if let Some(is_active) = patch.is_active {
            next.is_active = is_active;
        }
        if let Some(contact_id) = &patch.contact_id {
            next.contact_id = contact_id.clone();
        }
        if let Some(team_ids) = &patch.team_ids {
            next.team_ids = team_ids.clone();
        }
        if let Some(role_ids) = &patch.role_ids {
            next.role_ids = role_ids.clone();
        }
        if next.user_type == UserType::Portal && next.contact_id.is_none() {
            return Err(StoreError::invalid("contact_id", "required for portal users"));
        }
        if next.user_type != UserType::Portal && next.contact_id.is_some() {
            return Err(StoreError::invalid("contact_id", "only portal users are linked to a contact"));
        }
        if current.id == actor.user_id && (!next.is_active || next.user_type != UserType::Admin) {
            return Err(StoreError::invalid("is_active", "you cannot deactivate or demote yourself"));
        }
        check_exists(&mut tx, "contacts", "contact_id", next.contact_id.as_deref()).await?;
        check_exist(&mut tx, "teams", "team_ids", &next.team_ids).await?;
        check_exist(&mut tx, "roles", "role_ids", &next.role_ids).await?;
        let at = now();
        tx.query(
            "UPDATE users SET username = $1, name = $2, email = $3, user_type = $4, is_active = $5, contact_id = $6, \
             modified_at = $7, version = version + 1 WHERE id = $8",
        )
        .bind(next.username.as_str())
        .bind(next.name.as_str())
        .bind(next.email.as_deref())
        .bind(next.user_type.as_str())
        .bind(next.is_active)
        .bind(next.contact_id.as_deref())
        .bind(at)
        .bind(id)
        .execute()
        .await?;
        let password_hash_set = password_hash.is_some();
        if let Some(hash) = password_hash {
            // A reset password also ends every session of the old one.
            tx.query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(id).execute().await?;
            tx.query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute().await?;
        }
        // Emailed password links were for this address, type and password;
        // any change (or deactivation) spends them.
        if password_hash_set || next.email != current.email || next.user_type != current.user_type || !next.is_active {
            tx.query("DELETE FROM user_tokens WHERE user_id = $1").bind(id).execute().await?;
        }
        if patch.team_ids.is_some() {
            replace_team_memberships(&mut tx, id, &next.team_ids).await?;
        }
        if patch.role_ids.is_some() {
            replace_links(&mut tx, "user_roles", "user_id", "role_id", id, &next.role_ids, false).await?;
        }
        if !next.is_active {
            // Deactivated users leave: no sessions, no follows.
            tx.query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute().await?;
            tx.query("DELETE FROM follows WHERE user_id = $1").bind(id).execute().await?;
        } else if next.user_type != current.user_type
            || next.contact_id != current.contact_id
            || patch.team_ids.is_some()
            || patch.role_ids.is_some()
        {
            // What they may read changed: follows follow.
            crate::stream::reconcile_user_follows(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(User { modified_at: at, version: current.version + 1, ..next })
    }

    /// Deletes a user; their cases stay, unassigned.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn delete_user(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "delete users")?;
        if id == actor.user_id {
            return Err(StoreError::Forbidden("you cannot delete yourself".into()));
        }
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let deleted = tx.query("DELETE FROM users WHERE id = $1").bind(id).execute().await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// The user's preferences, with defaults for what they never set.
    #[instrument(level = "debug", skip_all)]
    pub async fn preferences(&self, actor: &Actor) -> Result<Preferences> {
        let mut tx = self.pools.read().await?;
        let row =
            tx.query("SELECT preferences FROM users WHERE id = $1").bind(actor.user_id.as_str()).fetch_one().await?;
        tx.commit().await?;
        let stored: String = row.get("preferences")?;
        parse_preferences(&stored, actor.user_type)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn set_preferences(&self, actor: &Actor, preferences: &Preferences) -> Result<Preferences> {
        let json = serde_json::to_string(preferences).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pools.write().await?;
        tx.query("UPDATE users SET preferences = $1 WHERE id = $2")
            .bind(json)
            .bind(actor.user_id.as_str())
            .execute()
            .await?;
        replace_links(
            &mut tx,
            "user_auto_follow",
            "user_id",
            "entity_type",
            &actor.user_id,
            &preferences.auto_follow_entity_types,
            false,
        )
        .await?;
        tx.commit().await?;
        Ok(preferences.clone())
    }

    /// Creates a role (admins only).
    #[instrument(level = "debug", skip_all)]
    pub async fn create_role(&self, actor: &Actor, new: &NewRole) -> Result<Role> {
        require_admin(actor, "manage roles")?;
        check_role_name(&new.name)?;
        let mut tx = self.pools.write().await?;
        let role = insert_role(&mut tx, new.name.trim(), &new.permissions).await?;
        tx.commit().await?;
        Ok(role)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn list_roles(&self, actor: &Actor) -> Result<Page<Role>> {
        require_admin(actor, "see roles")?;
        let mut tx = self.pools.read().await?;
        let rows = tx.query("SELECT * FROM roles ORDER BY name").fetch_all().await?;
        tx.commit().await?;
        let items: Vec<Role> = rows.iter().map(role_from_row).collect::<Result<_>>()?;
        Ok(Page { total: items.len() as i64, items })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_role(&self, actor: &Actor, id: &str) -> Result<Role> {
        require_admin(actor, "see roles")?;
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.read().await?;
        let row = tx.query("SELECT * FROM roles WHERE id = $1").bind(id).fetch_optional().await?;
        tx.commit().await?;
        role_from_row(&row.ok_or(StoreError::NotFound)?)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn update_role(&self, actor: &Actor, id: &str, patch: &RolePatch) -> Result<Role> {
        require_admin(actor, "manage roles")?;
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        if let Some(name) = &patch.name {
            check_role_name(name)?;
        }
        let mut tx = self.pools.write().await?;
        let sql = format!("SELECT * FROM roles WHERE id = $1{}", tx.for_update());
        let current = role_from_row(&tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?)?;
        check_version(patch.version, current.version)?;
        let name = patch.name.as_deref().map(str::trim).unwrap_or(&current.name).to_string();
        let permissions = patch.permissions.unwrap_or(current.permissions);
        let at = now();
        let holders: Vec<String> = tx
            .query("SELECT user_id FROM user_roles WHERE role_id = $1")
            .bind(id)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("user_id"))
            .collect::<Result<_>>()?;
        tx.query("UPDATE roles SET name = $1, permissions = $2, modified_at = $3, version = version + 1 WHERE id = $4")
            .bind(name.as_str())
            .bind(json_text(&permissions)?)
            .bind(at)
            .bind(id)
            .execute()
            .await?;
        // Narrower levels may end some follows of the role's holders.
        for user_id in &holders {
            crate::stream::reconcile_user_follows(&mut tx, user_id).await?;
        }
        tx.commit().await?;
        Ok(Role { name, permissions, modified_at: at, version: current.version + 1, ..current })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_role(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage roles")?;
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        if tx.query("DELETE FROM roles WHERE id = $1").bind(id).execute().await? == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// On an empty database: creates the `admin` user and the default
    /// "Agent" role, in one transaction. Returns false when users exist.
    #[instrument(level = "debug", skip_all)]
    pub async fn bootstrap(&self, admin_password_hash: String) -> Result<bool> {
        let mut tx = self.pools.write().await?;
        // The rules' own user (migration 0004) does not count.
        let users: i64 = tx
            .query("SELECT COUNT(*) AS n FROM users WHERE id <> $1")
            .bind(docket_domain::access::SYSTEM_USER_ID)
            .fetch_one()
            .await?
            .get("n")?;
        if users > 0 {
            return Ok(false);
        }
        let admin = NewUser {
            username: "admin".into(),
            name: Some("Administrator".into()),
            user_type: UserType::Admin,
            is_active: true,
            ..Default::default()
        };
        // Nodes starting together on one PostgreSQL race here: the loser's
        // insert hits the unique username (or sees it taken) and backs off.
        match insert_user(&mut tx, &admin, Some(admin_password_hash)).await {
            Ok(_) => {}
            Err(StoreError::Duplicate(_) | StoreError::Invalid(_)) => return Ok(false),
            Err(other) => return Err(other),
        }
        match insert_role(&mut tx, "Agent", &Permissions::default_agent()).await {
            Ok(_) => {}
            Err(StoreError::Duplicate(_) | StoreError::Invalid(_)) => return Ok(false),
            Err(other) => return Err(other),
        }
        match tx.commit().await {
            Ok(()) => Ok(true),
            Err(StoreError::Duplicate(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Finds a role id by name (CLI and demo data).
    pub async fn role_id_by_name(&self, name: &str) -> Result<Option<String>> {
        let mut tx = self.pools.read().await?;
        let row = tx.query("SELECT id FROM roles WHERE name = $1").bind(name).fetch_optional().await?;
        tx.commit().await?;
        row.map(|r| r.get("id")).transpose()
    }
}

pub(crate) fn parse_preferences(stored: &str, user_type: UserType) -> Result<Preferences> {
    let mut defaults =
        serde_json::to_value(Preferences::defaults_for(user_type)).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let stored: serde_json::Value =
        serde_json::from_str(stored).map_err(|e| StoreError::Corrupt(format!("preferences: {e}")))?;
    if let (Some(defaults), Some(stored)) = (defaults.as_object_mut(), stored.as_object()) {
        for (key, value) in stored {
            defaults.insert(key.clone(), value.clone());
        }
    }
    serde_json::from_value(defaults).map_err(|e| StoreError::Corrupt(format!("preferences: {e}")))
}

async fn insert_role(tx: &mut Tx, name: &str, permissions: &Permissions) -> Result<Role> {
    if tx.query("SELECT id FROM roles WHERE name = $1").bind(name).fetch_optional().await?.is_some() {
        return Err(StoreError::invalid("name", "a role with this name exists"));
    }
    let at = now();
    let role = Role {
        id: new_id(),
        name: name.to_string(),
        permissions: *permissions,
        created_at: at,
        modified_at: at,
        version: 1,
    };
    tx.query(
        "INSERT INTO roles (id, name, permissions, created_at, modified_at, version) VALUES ($1, $2, $3, $4, $4, 1)",
    )
    .bind(role.id.as_str())
    .bind(name)
    .bind(json_text(permissions)?)
    .bind(at)
    .execute()
    .await?;
    Ok(role)
}

fn role_from_row(row: &Row) -> Result<Role> {
    let permissions: String = row.get("permissions")?;
    Ok(Role {
        id: row.get("id")?,
        name: row.get("name")?,
        permissions: serde_json::from_str(&permissions).map_err(|e| StoreError::Corrupt(format!("role: {e}")))?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}

async fn check_username_free(tx: &mut Tx, username: &str) -> Result<()> {
    if tx.query("SELECT id FROM users WHERE username = $1").bind(username).fetch_optional().await?.is_some() {
        Err(StoreError::invalid("username", format!("`{username}` is taken")))
    } else {
        Ok(())
    }
}

pub(crate) async fn insert_user(tx: &mut Tx, new: &NewUser, password_hash: Option<String>) -> Result<User> {
    check_username_free(tx, &new.username).await?;
    check_exists(tx, "contacts", "contact_id", new.contact_id.as_deref()).await?;
    check_exist(tx, "teams", "team_ids", &new.team_ids).await?;
    check_exist(tx, "roles", "role_ids", &new.role_ids).await?;
    let at = now();
    let user = User {
        id: new_id(),
        username: new.username.clone(),
        name: new.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| new.username.clone()),
        email: new.email.clone(),
        user_type: new.user_type,
        is_active: new.is_active,
        team_ids: new.team_ids.clone(),
        role_ids: new.role_ids.clone(),
        contact_id: new.contact_id.clone(),
        created_at: at,
        modified_at: at,
        version: 1,
    };
    tx.query(
        "INSERT INTO users (id, username, name, email, user_type, is_active, password_hash, contact_id, preferences, \
         created_at, modified_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '{}', $9, $9, 1)",
    )
    .bind(user.id.as_str())
    .bind(user.username.as_str())
    .bind(user.name.as_str())
    .bind(user.email.as_deref())
    .bind(user.user_type.as_str())
    .bind(user.is_active)
    .bind(password_hash)
    .bind(user.contact_id.as_deref())
    .bind(at)
    .execute()
    .await?;
    replace_team_memberships(tx, &user.id, &user.team_ids).await?;
    replace_links(tx, "user_roles", "user_id", "role_id", &user.id, &user.role_ids, false).await?;
    Ok(user)
}

/// Sets which teams a user is in, keeping positions in teams they stay in.
async fn replace_team_memberships(tx: &mut Tx, user_id: &str, team_ids: &[String]) -> Result<()> {
    let current: Vec<String> = tx
        .query("SELECT team_id FROM team_members WHERE user_id = $1")
        .bind(user_id)
        .fetch_all()
        .await?
        .iter()
        .map(|r| r.get("team_id"))
        .collect::<Result<_>>()?;
    for team_id in current.iter().filter(|t| !team_ids.contains(t)) {
        tx.query("DELETE FROM team_members WHERE user_id = $1 AND team_id = $2")
            .bind(user_id)
            .bind(team_id.as_str())
            .execute()
            .await?;
    }
    for team_id in team_ids.iter().filter(|t| !current.contains(t)) {
        tx.query("INSERT INTO team_members (team_id, user_id, position) VALUES ($1, $2, NULL)")
            .bind(team_id.as_str())
            .bind(user_id)
            .execute()
            .await?;
    }
    Ok(())
}

/// Loads a user with teams and roles; `lock` for an update.
async fn load_user(tx: &mut Tx, id: &str, lock: bool) -> Result<User> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if lock { tx.for_update() } else { "" };
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut users = vec![user_from_row(&row)?];
    load_user_links(tx, &mut users).await?;
    Ok(users.remove(0))
}

pub(crate) async fn load_user_links(tx: &mut Tx, users: &mut [User]) -> Result<()> {
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let mut teams = load_links(tx, "team_members", "user_id", "team_id", "team_id", &ids).await?;
    let mut roles = load_links(tx, "user_roles", "user_id", "role_id", "role_id", &ids).await?;
    for user in users {
        user.team_ids = teams.remove(&user.id).unwrap_or_default();
        user.role_ids = roles.remove(&user.id).unwrap_or_default();
    }
    Ok(())
}

pub(crate) fn user_from_row(row: &Row) -> Result<User> {
    let user_type: String = row.get("user_type")?;
    Ok(User {
        id: row.get("id")?,
        username: row.get("username")?,
        name: row.get("name")?,
        email: row.get("email")?,
        user_type: parse_stored(&user_type, UserType::parse)?,
        is_active: row.get("is_active")?,
        team_ids: Vec::new(),
        role_ids: Vec::new(),
        contact_id: row.get("contact_id")?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}
