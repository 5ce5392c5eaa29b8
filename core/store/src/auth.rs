//! What authentication needs from the database: actors, sessions and API
//! keys. Secrets are never stored: sessions and keys are kept as SHA-256
//! hashes of high-entropy random tokens (argon2 is for low-entropy
//! passwords; for 256-bit tokens a fast hash is as safe and keeps every API
//! request cheap).

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::access::Permissions;
use docket_domain::ids::new_id;
use docket_domain::portal::{PortalAccess, PortalPermissions};
use docket_domain::user::UserType;
use serde::Serialize;
use tracing::instrument;

use crate::db::{Row, Tx};
use crate::rows::parse_stored;
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

/// What a password login needs to know about a user.
#[derive(Debug, Clone)]
pub struct LoginUser {
    pub id: String,
    pub user_type: UserType,
    pub is_active: bool,
    pub password_hash: Option<String>,
}

/// A live browser session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub actor: Actor,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The condition, on a portal `p` and a row `s` with the user's
/// `user_id`, that the user may use the portal: every portal user may use
/// the default portal; other portals are granted (`user_portals`). `$4`
/// is bound to `true`.
const MAY_USE_PORTAL: &str = "(p.is_default = $4 OR EXISTS (SELECT 1 FROM user_portals up \
     WHERE up.user_id = s.user_id AND up.portal_id = p.id))";

/// A session to open.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user_id: &'a str,
    /// SHA-256 of the cookie's token.
    pub token_hash: &'a str,
    pub csrf_token: &'a str,
    pub expires_at: DateTime<Utc>,
    /// The portal whose login page opened it; `None` for agents and the API.
    pub portal_id: Option<&'a str>,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it by.
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The user behind a login name, active or not.
    #[instrument(level = "debug", skip_all)]
    pub async fn login_user(&self, username: &str) -> Result<Option<LoginUser>> {
        let mut tx = self.pools.read().await?;
        let row = tx
            .query("SELECT id, user_type, is_active, password_hash FROM users WHERE username = $1")
            .bind(username.trim().to_lowercase())
            .fetch_optional()
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let user_type: String = row.get("user_type")?;
        Ok(Some(LoginUser {
            id: row.get("id")?,
            user_type: parse_stored(&user_type, UserType::parse)?,
            is_active: row.get("is_active")?,
            password_hash: row.get("password_hash")?,
        }))
    }

    /// The actor for an active user.
    #[instrument(level = "debug", skip_all)]
    pub async fn actor(&self, user_id: &str) -> Result<Option<Actor>> {
        let mut tx = self.pools.read().await?;
        let actor = load_actor(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(actor)
    }

    /// The actor an API key acts for, when the key is valid and its user
    /// active.
    #[instrument(level = "debug", skip_all)]
    pub async fn actor_by_api_key(&self, key_hash: &str) -> Result<Option<Actor>> {
        // Every API request comes through here: no transaction, two reads.
        let mut conn = self.pools.read_autocommit().await?;
        let row = conn
            .query(
                "SELECT u.id, u.username, u.user_type, u.contact_id FROM api_keys k JOIN users u ON u.id = k.user_id \
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.is_active = $2",
            )
            .bind(key_hash)
            .bind(true)
            .fetch_optional()
            .await?;
        match row {
            Some(row) => Ok(Some(actor_from_row(&mut conn, &row, None).await?)),
            None => Ok(None),
        }
    }

    /// The agent or API session for a cookie token hash, unless expired or
    /// its user deactivated. Portal sessions are not found here.
    #[instrument(level = "debug", skip_all)]
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        self.load_session(token_hash, None).await
    }

    /// The session for a cookie token hash opened at this portal's login
    /// page, while the portal is active; its actor has this portal's roles.
    #[instrument(level = "debug", skip_all)]
    pub async fn portal_session(&self, token_hash: &str, portal_id: &str) -> Result<Option<SessionRecord>> {
        self.load_session(token_hash, Some(portal_id)).await
    }

    async fn load_session(&self, token_hash: &str, portal_id: Option<&str>) -> Result<Option<SessionRecord>> {
        let mut tx = self.pools.read_autocommit().await?;
        let row = match portal_id {
            None => {
                tx.query(
                    "SELECT user_id, csrf_token, expires_at FROM sessions \
                     WHERE token_hash = $1 AND expires_at > $2 AND portal_id IS NULL",
                )
                .bind(token_hash)
                .bind(now())
                .fetch_optional()
                .await?
            }
            Some(portal_id) => {
                // Membership is checked on every request, so taking a portal
                // away from a user ends their sessions there at once.
                tx.query(&format!(
                    "SELECT s.user_id, s.csrf_token, s.expires_at FROM sessions s \
                     JOIN portals p ON p.id = s.portal_id \
                     WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.portal_id = $3 AND p.is_active = $4 \
                     AND {MAY_USE_PORTAL}"
                ))
                .bind(token_hash)
                .bind(now())
                .bind(portal_id)
                .bind(true)
                .fetch_optional()
                .await?
            }
        };
        let session = match row {
            Some(row) => load_actor_at(&mut tx, &row.get::<String>("user_id")?, portal_id).await?.map(|actor| {
                Ok::<_, StoreError>(SessionRecord {
                    actor,
                    csrf_token: row.get("csrf_token")?,
                    expires_at: row.get("expires_at")?,
                })
            }),
            None => None,
        }
        .transpose()?;
        tx.commit().await?;
        Ok(session)
    }

    /// Opens a session: an agent or API one, or (with `portal_id`) one of
    /// that portal's, for a user who may use it (else `Forbidden`).
    #[instrument(level = "debug", skip_all)]
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<()> {
        let mut tx = self.pools.write().await?;
        if let Some(portal_id) = new.portal_id
            && !crate::portals::may_use_portal(&mut tx, new.user_id, portal_id).await?
        {
            return Err(StoreError::Forbidden("this account does not use this portal".into()));
        }
        // Expired sessions are swept whenever someone logs in.
        tx.query("DELETE FROM sessions WHERE expires_at <= $1").bind(now()).execute().await?;
        tx.query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, portal_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.token_hash)
        .bind(new.user_id)
        .bind(new.csrf_token)
        .bind(now())
        .bind(new.expires_at)
        .bind(new.portal_id)
        .execute()
        .await?;
        tx.commit().await
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute().await?;
        tx.commit().await
    }

    /// Sets a user's own password hash and ends their other sessions.
    #[instrument(level = "debug", skip_all)]
    pub async fn change_password(&self, user_id: &str, password_hash: &str, keep_session: Option<&str>) -> Result<()> {
        let mut tx = self.pools.write().await?;
        tx.query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute()
            .await?;
        tx.query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep_session.unwrap_or(""))
            .execute()
            .await?;
        tx.commit().await
    }

    /// Stores a new API key for a user (admins for anyone; others for
    /// themselves).
    #[instrument(level = "debug", skip_all)]
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        name: &str,
        key_prefix: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRecord> {
        if actor.user_id != user_id {
            require_admin(actor, "create API keys for others")?;
        }
        let mut tx = self.pools.write().await?;
        let record = insert_api_key(&mut tx, user_id, name, key_prefix, key_hash).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Creates an API key for a user found by name (the CLI; no actor).
    #[instrument(level = "debug", skip_all)]
    pub async fn create_api_key_for_username(
        &self,
        username: &str,
        name: &str,
        key_prefix: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRecord> {
        let mut tx = self.pools.write().await?;
        let row = tx
            .query("SELECT id FROM users WHERE username = $1")
            .bind(username.trim().to_lowercase())
            .fetch_optional()
            .await?
            .ok_or_else(|| StoreError::invalid("user", format!("no user named `{username}`")))?;
        let user_id: String = row.get("id")?;
        let record = insert_api_key(&mut tx, &user_id, name, key_prefix, key_hash).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// API keys: admins see all, others their own.
    #[instrument(level = "debug", skip_all)]
    pub async fn list_api_keys(&self, actor: &Actor) -> Result<Vec<ApiKeyRecord>> {
        let mut tx = self.pools.read().await?;
        let sql = "SELECT id, user_id, name, key_prefix, created_at, revoked_at FROM api_keys \
                   WHERE ($1 OR user_id = $2) ORDER BY created_at DESC";
        let rows = tx.query(sql).bind(actor.is_admin()).bind(actor.user_id.as_str()).fetch_all().await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKeyRecord {
                    id: row.get("id")?,
                    user_id: row.get("user_id")?,
                    name: row.get("name")?,
                    key_prefix: row.get("key_prefix")?,
                    created_at: row.get("created_at")?,
                    revoked_at: row.get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes a key: it stops working at once on every node.
    #[instrument(level = "debug", skip_all)]
    pub async fn revoke_api_key(&self, actor: &Actor, id: &str) -> Result<()> {
        if !docket_domain::ids::looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let changed = tx
            .query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3 OR user_id = $4)")
            .bind(now())
            .bind(id)
            .bind(actor.is_admin())
            .bind(actor.user_id.as_str())
            .execute()
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }
}

async fn insert_api_key(
    tx: &mut Tx,
    user_id: &str,
    name: &str,
    key_prefix: &str,
    key_hash: &str,
) -> Result<ApiKeyRecord> {
    let record = ApiKeyRecord {
        id: new_id(),
        user_id: user_id.to_string(),
        name: name.to_string(),
        key_prefix: key_prefix.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    tx.query(
        "INSERT INTO api_keys (id, user_id, name, key_prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(record.id.as_str())
    .bind(user_id)
    .bind(name)
    .bind(key_prefix)
    .bind(key_hash)
    .bind(record.created_at)
    .execute()
    .await?;
    Ok(record)
}

/// Loads an active user with their teams and merged role permissions; a
/// portal user as the default portal sees them (the API, emails, rules).
pub(crate) async fn load_actor(tx: &mut Tx, user_id: &str) -> Result<Option<Actor>> {
    load_actor_at(tx, user_id, None).await
}

/// [`load_actor`], with a portal user's roles those of `portal_id` (their
/// session's portal) instead of the default portal's.
async fn load_actor_at(tx: &mut Tx, user_id: &str, portal_id: Option<&str>) -> Result<Option<Actor>> {
    let row = tx
        .query("SELECT id, username, user_type, contact_id FROM users WHERE id = $1 AND is_active = $2")
        .bind(user_id)
        .bind(true)
        .fetch_optional()
        .await?;
    match row {
        Some(row) => Ok(Some(actor_from_row(tx, &row, portal_id).await?)),
        None => Ok(None),
    }
}

/// Completes an actor from its user row: teams and role permissions in one
/// query.
async fn actor_from_row(tx: &mut Tx, row: &Row, portal_id: Option<&str>) -> Result<Actor> {
    let user_id: String = row.get("id")?;
    let user_type: String = row.get("user_type")?;
    let links = tx
        .query(
            "SELECT 'team' AS kind, team_id AS value FROM team_members WHERE user_id = $1 \
             UNION ALL SELECT 'role' AS kind, r.permissions AS value FROM roles r \
             JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1",
        )
        .bind(user_id.as_str())
        .fetch_all()
        .await?;
    let mut team_ids = Vec::new();
    let mut permissions = Permissions::default();
    for link in links {
        let kind: String = link.get("kind")?;
        let value: String = link.get("value")?;
        if kind == "team" {
            team_ids.push(value);
        } else {
            let role: Permissions =
                serde_json::from_str(&value).map_err(|e| StoreError::Corrupt(format!("role permissions: {e}")))?;
            permissions = permissions.merge(&role);
        }
    }
    team_ids.sort();
    let user_type = parse_stored(&user_type, UserType::parse)?;
    let contact_id: Option<String> = row.get("contact_id")?;
    let portal = if user_type == UserType::Portal {
        portal_access(tx, &user_id, contact_id.as_deref(), portal_id).await?
    } else {
        PortalAccess::default()
    };
    Ok(Actor { username: row.get("username")?, user_type, team_ids, contact_id, permissions, portal, user_id })
}

/// A portal user's access: their portal roles merged with those of the
/// portal they are in (`portal_id`, or the default portal: the API and the
/// emails speak for no portal in particular), or
/// [`PortalPermissions::fallback`] when neither has any; and their
/// contact's accounts.
async fn portal_access(
    tx: &mut Tx,
    user_id: &str,
    contact_id: Option<&str>,
    portal_id: Option<&str>,
) -> Result<PortalAccess> {
    let which_portal = if portal_id.is_some() { "p.id = $4" } else { "p.is_default = $2" };
    let sql = format!(
        "SELECT 'role' AS kind, r.permissions AS value FROM portal_roles r \
             JOIN user_portal_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1 \
             UNION ALL SELECT 'role' AS kind, r.permissions AS value FROM portal_roles r \
             JOIN portal_portal_roles pr ON pr.role_id = r.id JOIN portals p ON p.id = pr.portal_id \
             WHERE {which_portal} AND p.is_active = $2 \
             UNION ALL SELECT 'account' AS kind, account_id AS value FROM contact_accounts WHERE contact_id = $3"
    );
    let mut query = tx.query(&sql).bind(user_id).bind(true).bind(contact_id);
    if let Some(portal_id) = portal_id {
        query = query.bind(portal_id);
    }
    let rows = query.fetch_all().await?;
    let mut roles = Vec::new();
    let mut account_ids = Vec::new();
    for row in rows {
        let kind: String = row.get("kind")?;
        let value: String = row.get("value")?;
        if kind == "account" {
            account_ids.push(value);
        } else {
            let role: PortalPermissions = serde_json::from_str(&value)
                .map_err(|e| StoreError::Corrupt(format!("portal role permissions: {e}")))?;
            roles.push(role);
        }
    }
    let permissions = match roles.split_first() {
        None => PortalPermissions::fallback(),
        Some((first, rest)) => rest.iter().fold(*first, |merged, role| merged.merge(role)),
    };
    account_ids.sort();
    Ok(PortalAccess { permissions, account_ids, portal_id: portal_id.map(str::to_string) })
}

impl Store {
    /// The oldest active admin, acting for the CLI and demo loader (which
    /// run without a logged-in user).
    #[instrument(level = "debug", skip_all)]
    pub async fn first_admin(&self) -> Result<Option<Actor>> {
        let mut tx = self.pools.read().await?;
        let row = tx
            .query("SELECT id FROM users WHERE user_type = 'admin' AND is_active = $1 ORDER BY created_at, id LIMIT 1")
            .bind(true)
            .fetch_optional()
            .await?;
        let actor = match row {
            Some(row) => load_actor(&mut tx, &row.get::<String>("id")?).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(actor)
    }
}
