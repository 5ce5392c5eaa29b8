//! Portal users' one-time links: staff invite a contact to the portal (a
//! portal user without a password, and an email with a link to set one),
//! and customers ask for a password reset.
//!
//! The link's token is made by the job that sends the email, so no usable
//! token ever waits in the job queue; only its SHA-256 is stored. A user
//! has one live token per purpose (a new one replaces the old), and setting
//! a password with any token ends all of them and every session.

use chrono::{DateTime, Duration, Utc};
use docket_domain::access::Level;
use docket_domain::ids::looks_like_id;
use docket_domain::user::{NewUser, PortalInvitation, User, UserType};
use docket_domain::{Action, Actor, Scope};
use tracing::instrument;

use crate::contacts::load_contact;
use crate::db::Tx;
use crate::jobs::{NewJob, enqueue};
use crate::portals::{grant_portal, may_use_portal};
use crate::rows::enforce;
use crate::users::insert_user;
use crate::{Result, Store, StoreError, now};

/// The job that makes a token and emails its link.
pub const ACCOUNT_EMAIL_JOB: &str = "portal_account_email";

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    Invitation,
    PasswordReset,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Invitation => "invitation",
            TokenPurpose::PasswordReset => "password_reset",
        }
    }

    pub fn parse(text: &str) -> Option<TokenPurpose> {
        match text {
            "invitation" => Some(TokenPurpose::Invitation),
            "password_reset" => Some(TokenPurpose::PasswordReset),
            _ => None,
        }
    }

    /// How long a link works: a week to accept an invitation, an hour to
    /// reset a password.
    pub fn lifetime(self) -> Duration {
        match self {
            TokenPurpose::Invitation => Duration::days(7),
            TokenPurpose::PasswordReset => Duration::hours(1),
        }
    }
}

/// Who a link's email goes to, and where it points.
#[derive(Debug, Clone)]
pub struct TokenEmail {
    pub email: String,
    pub name: String,
    pub username: String,
    /// The slug of the portal to link to (`None`: no such portal is
    /// active, and no token was made).
    pub portal_slug: Option<String>,
    pub portal_title: String,
    pub expires_at: DateTime<Utc>,
}

/// The user a live link belongs to.
#[derive(Debug, Clone)]
pub struct TokenHolder {
    pub username: String,
    pub purpose: TokenPurpose,
}

impl Store {
    /// Makes a portal user for a contact and queues their invitation.
    /// Staff who may edit the contact may invite it.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn invite_contact(&self, actor: &Actor, contact_id: &str, invitation: &PortalInvitation) -> Result<User> {
        may_invite(actor)?;
        let mut tx = self.pools.write().await?;
        // Locked: two invitations at once make one portal user.
        let contact = load_contact(&mut tx, contact_id, true).await?;
        enforce(actor.decide(Scope::Contact, Action::Edit, &contact.ownership()), "invite this contact")?;
        let new = NewUser::invited(
            &contact.id,
            &contact.name,
            contact.emails.first().map(String::as_str),
            invitation.username.as_deref(),
        )?;
        let existing = tx
            .query("SELECT id FROM users WHERE contact_id = $1 AND user_type = $2")
            .bind(contact.id.as_str())
            .bind(UserType::Portal.as_str())
            .fetch_optional()
            .await?;
        if existing.is_some() {
            return Err(StoreError::invalid(
                "contact_id",
                "this contact already has a portal user; send that user a new invitation instead",
            ));
        }
        check_portal(&mut tx, invitation.portal_id.as_deref()).await?;
        let user = insert_user(&mut tx, &new, None).await?;
        if let Some(portal_id) = &invitation.portal_id {
            grant_portal(&mut tx, &user.id, portal_id).await?;
        }
        enqueue(&mut tx, &account_email(&user.id, TokenPurpose::Invitation, invitation.portal_id.as_deref(), None))
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Queues a new invitation for a portal user (the last one expired or
    /// was lost); it replaces any earlier link.
    #[instrument(level = "debug", skip_all, fields(actor = %actor.username))]
    pub async fn invite_user(&self, actor: &Actor, user_id: &str, portal_id: Option<&str>) -> Result<()> {
        may_invite(actor)?;
        if !looks_like_id(user_id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let row = tx
            .query("SELECT contact_id, email FROM users WHERE id = $1 AND user_type = $2 AND is_active = $3")
            .bind(user_id)
            .bind(UserType::Portal.as_str())
            .bind(true)
            .fetch_optional()
            .await?
            .ok_or(StoreError::NotFound)?;
        let contact_id: Option<String> = row.get("contact_id")?;
        let email: Option<String> = row.get("email")?;
        if !actor.is_admin() {
            // Agents invite the portal users of contacts they may edit.
            let Some(contact_id) = contact_id else { return Err(StoreError::NotFound) };
            let contact = load_contact(&mut tx, &contact_id, false).await?;
            enforce(actor.decide(Scope::Contact, Action::Edit, &contact.ownership()), "invite this contact")?;
        }
        if email.is_none() {
            return Err(StoreError::invalid("email", "this user has no email address to send the invitation to"));
        }
        check_portal(&mut tx, portal_id).await?;
        // Inviting someone into a portal lets them use it.
        if let Some(portal_id) = portal_id {
            grant_portal(&mut tx, user_id, portal_id).await?;
        }
        enqueue(&mut tx, &account_email(user_id, TokenPurpose::Invitation, portal_id, None)).await?;
        tx.commit().await
    }

    /// A customer asks for a password reset at a portal's page, by username
    /// or email address. Nothing tells whether an account matched; one
    /// email per user per ten minutes at most.
    #[instrument(level = "debug", skip_all)]
    pub async fn request_password_reset(&self, login: &str, portal_id: &str) -> Result<()> {
        let login = login.trim().to_lowercase();
        if login.is_empty() || login.len() > 256 || login.contains('\0') {
            return Ok(());
        }
        let mut tx = self.pools.write().await?;
        let rows = tx
            .query(
                "SELECT id FROM users WHERE (username = $1 OR LOWER(email) = $1) AND user_type = $2 \
                 AND is_active = $3 AND email IS NOT NULL ORDER BY id LIMIT 2",
            )
            .bind(login.as_str())
            .bind(UserType::Portal.as_str())
            .bind(true)
            .fetch_all()
            .await?;
        // Only users of this portal get a link into it.
        let rows = if rows.len() == 1 && !may_use_portal(&mut tx, &rows[0].get::<String>("id")?, portal_id).await? {
            Vec::new()
        } else {
            rows
        };
        // An address two customers share names no one in particular.
        if let [row] = rows.as_slice() {
            let user_id: String = row.get("id")?;
            let bucket = Utc::now().timestamp() / 600;
            let key = format!("password_reset:{user_id}:{bucket}");
            enqueue(&mut tx, &account_email(&user_id, TokenPurpose::PasswordReset, Some(portal_id), Some(key))).await?;
        }
        tx.commit().await
    }

    /// Stores a new token (its hash) for an active portal user with an
    /// email address, replacing their earlier one of that purpose, and says
    /// where its email goes; `None` when the user is gone or cannot get
    /// email. Called by the job that sends the link.
    #[instrument(level = "debug", skip_all)]
    pub async fn issue_user_token(
        &self,
        user_id: &str,
        purpose: TokenPurpose,
        portal_id: Option<&str>,
        token_hash: &str,
    ) -> Result<Option<TokenEmail>> {
        let mut tx = self.pools.write().await?;
        // The user's row is locked so that two links issued at once leave
        // one live token, not two.
        let sql = format!(
            "SELECT username, name, email FROM users WHERE id = $1 AND user_type = $2 AND is_active = $3{}",
            tx.for_update()
        );
        let user = tx.query(&sql).bind(user_id).bind(UserType::Portal.as_str()).bind(true).fetch_optional().await?;
        let Some(user) = user else { return Ok(None) };
        let Some(email) = user.get::<Option<String>>("email")? else { return Ok(None) };
        let portal = active_portal(&mut tx, portal_id).await?;
        let expires_at = now() + purpose.lifetime();
        if portal.is_some() {
            tx.query("DELETE FROM user_tokens WHERE user_id = $1 AND purpose = $2")
                .bind(user_id)
                .bind(purpose.as_str())
                .execute()
                .await?;
            tx.query(
                "INSERT INTO user_tokens (token_hash, user_id, purpose, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(now())
            .bind(expires_at)
            .execute()
            .await?;
        }
        tx.commit().await?;
        let (portal_slug, portal_title) = match portal {
            Some((slug, title)) => (Some(slug), title),
            None => (None, String::new()),
        };
        Ok(Some(TokenEmail {
            email,
            name: user.get("name")?,
            username: user.get("username")?,
            portal_slug,
            portal_title,
            expires_at,
        }))
    }

    /// The user of a live token (unused, in date, the user active).
    #[instrument(level = "debug", skip_all)]
    pub async fn user_token(&self, token_hash: &str) -> Result<Option<TokenHolder>> {
        let mut tx = self.pools.read().await?;
        let row = tx
            .query(
                "SELECT u.username, t.purpose FROM user_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND t.expires_at > $2 AND u.is_active = $3",
            )
            .bind(token_hash)
            .bind(now())
            .bind(true)
            .fetch_optional()
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let purpose: String = row.get("purpose")?;
        let purpose =
            TokenPurpose::parse(&purpose).ok_or_else(|| StoreError::Corrupt(format!("token purpose {purpose}")))?;
        Ok(Some(TokenHolder { username: row.get("username")?, purpose }))
    }

    /// Sets a password with a live token, in one transaction: the token and
    /// the user's other tokens are used up, their sessions end. A token that
    /// is used, expired or unknown is not found.
    #[instrument(level = "debug", skip_all)]
    pub async fn set_password_with_token(&self, token_hash: &str, password_hash: &str) -> Result<String> {
        let mut tx = self.pools.write().await?;
        let lock = tx.for_update();
        let sql = format!(
            "SELECT t.user_id, u.username FROM user_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2 AND u.is_active = $3{lock}"
        );
        let row = tx
            .query(&sql)
            .bind(token_hash)
            .bind(now())
            .bind(true)
            .fetch_optional()
            .await?
            .ok_or(StoreError::NotFound)?;
        let user_id: String = row.get("user_id")?;
        let deleted = tx.query("DELETE FROM user_tokens WHERE token_hash = $1").bind(token_hash).execute().await?;
        // Two submissions of one link: the second finds nothing to use.
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.query("DELETE FROM user_tokens WHERE user_id = $1").bind(user_id.as_str()).execute().await?;
        tx.query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id.as_str())
            .execute()
            .await?;
        tx.query("DELETE FROM sessions WHERE user_id = $1").bind(user_id.as_str()).execute().await?;
        tx.commit().await?;
        row.get("username")
    }
}

/// Admins, and agents who read every case, invite customers. An agent who
/// reads less could otherwise invite an address of their own onto a
/// contact and read, as that customer, what their role hides.
fn may_invite(actor: &Actor) -> Result<()> {
    if actor.is_admin() || (actor.is_staff() && actor.permissions.case.read == Level::All) {
        Ok(())
    } else {
        Err(StoreError::Forbidden("only admins and agents who read every case invite customers".into()))
    }
}

fn account_email(user_id: &str, purpose: TokenPurpose, portal_id: Option<&str>, key: Option<String>) -> NewJob {
    NewJob {
        kind: ACCOUNT_EMAIL_JOB,
        payload: serde_json::json!({"user_id": user_id, "purpose": purpose.as_str(), "portal_id": portal_id}),
        run_at: now(),
        idempotency_key: key,
    }
}

/// A named portal must exist and be active (the link must work).
async fn check_portal(tx: &mut Tx, portal_id: Option<&str>) -> Result<()> {
    if let Some(id) = portal_id
        && active_portal(tx, Some(id)).await?.is_none()
    {
        return Err(StoreError::invalid("portal_id", "no such active portal"));
    }
    Ok(())
}

/// The slug and title of an active portal: the one named, or the default.
async fn active_portal(tx: &mut Tx, portal_id: Option<&str>) -> Result<Option<(String, String)>> {
    if portal_id.is_some_and(|id| !looks_like_id(id)) {
        return Ok(None);
    }
    let which = if portal_id.is_some() { "id = $2" } else { "is_default = $1" };
    let sql = format!("SELECT slug, name, branding FROM portals WHERE is_active = $1 AND {which}");
    let mut query = tx.query(&sql).bind(true);
    if let Some(id) = portal_id {
        query = query.bind(id);
    }
    let Some(row) = query.fetch_optional().await? else { return Ok(None) };
    let branding: docket_domain::portal::Branding = crate::rows::json_column(&row, "branding")?;
    let name: String = row.get("name")?;
    let title = if branding.title.trim().is_empty() { name } else { branding.title };
    Ok(Some((row.get("slug")?, title)))
}
