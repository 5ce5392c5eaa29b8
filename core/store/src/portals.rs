//! Portals, portal roles and portal users' roles (admins only).
//!
//! Changing what portal users may reach ends the follows of those who can
//! no longer use a case's stream, in the same transaction, as agent roles
//! do (see `stream::reconcile_user_follows`).

use docket_domain::Actor;
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::Page;
use docket_domain::portal::{Portal, PortalInput, PortalRole, PortalRoleInput};
use docket_domain::user::UserType;
use tracing::instrument;

use crate::db::{Row, Tx};
use crate::rows::{check_exist, check_version, json_column, json_text, replace_links};
use crate::stream::reconcile_user_follows;
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

const PORTAL_COLUMNS: &str =
    "id, name, slug, is_active, is_default, branding, web_form, created_at, modified_at, version";

impl Store {
    #[instrument(level = "debug", skip_all)]
    pub async fn create_portal_role(&self, actor: &Actor, input: PortalRoleInput) -> Result<PortalRole> {
        require_admin(actor, "manage portal roles")?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        check_role_name_free(&mut tx, &input.name, None).await?;
        let at = now();
        let role = PortalRole {
            id: new_id(),
            name: input.name,
            permissions: input.permissions,
            created_at: at,
            modified_at: at,
            version: 1,
        };
        tx.query(
            "INSERT INTO portal_roles (id, name, permissions, created_at, modified_at, version) \
             VALUES ($1, $2, $3, $4, $4, 1)",
        )
        .bind(role.id.as_str())
        .bind(role.name.as_str())
        .bind(json_text(&role.permissions)?)
        .bind(at)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(role)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn list_portal_roles(&self, actor: &Actor) -> Result<Page<PortalRole>> {
        require_admin(actor, "see portal roles")?;
        let mut tx = self.pools.read().await?;
        let rows = tx.query("SELECT * FROM portal_roles ORDER BY name").fetch_all().await?;
        tx.commit().await?;
        let items: Vec<PortalRole> = rows.iter().map(portal_role_from_row).collect::<Result<_>>()?;
        Ok(Page { total: items.len() as i64, items })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_portal_role(&self, actor: &Actor, id: &str) -> Result<PortalRole> {
        require_admin(actor, "see portal roles")?;
        let mut tx = self.pools.read().await?;
        let role = load_portal_role(&mut tx, id, false).await?;
        tx.commit().await?;
        Ok(role)
    }

    /// Replaces a portal role's name and permissions.
    #[instrument(level = "debug", skip_all)]
    pub async fn update_portal_role(&self, actor: &Actor, id: &str, input: PortalRoleInput) -> Result<PortalRole> {
        require_admin(actor, "manage portal roles")?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        let current = load_portal_role(&mut tx, id, true).await?;
        check_version(input.version, current.version)?;
        check_role_name_free(&mut tx, &input.name, Some(id)).await?;
        let at = now();
        tx.query(
            "UPDATE portal_roles SET name = $1, permissions = $2, modified_at = $3, version = version + 1 WHERE id = $4",
        )
        .bind(input.name.as_str())
        .bind(json_text(&input.permissions)?)
        .bind(at)
        .bind(id)
        .execute()
        .await?;
        reconcile_role_holders(&mut tx, id).await?;
        tx.commit().await?;
        Ok(PortalRole {
            name: input.name,
            permissions: input.permissions,
            modified_at: at,
            version: current.version + 1,
            ..current
        })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_portal_role(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage portal roles")?;
        let mut tx = self.pools.write().await?;
        load_portal_role(&mut tx, id, true).await?;
        // Who it reached, before the links go with it.
        let holders = role_holders(&mut tx, id).await?;
        let on_default = on_default_portal(&mut tx, id).await?;
        tx.query("DELETE FROM portal_roles WHERE id = $1").bind(id).execute().await?;
        for user_id in holders {
            reconcile_user_follows(&mut tx, &user_id).await?;
        }
        if on_default {
            reconcile_portal_users(&mut tx).await?;
        }
        tx.commit().await
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn create_portal(&self, actor: &Actor, input: PortalInput) -> Result<Portal> {
        require_admin(actor, "manage portals")?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        check_exist(&mut tx, "portal_roles", "role_ids", &input.role_ids).await?;
        check_exist(&mut tx, "teams", "web_form.team_ids", &input.web_form.team_ids).await?;
        check_slug_free(&mut tx, &input.slug, None).await?;
        if input.is_default {
            unset_default(&mut tx).await?;
        }
        let at = now();
        let portal = Portal {
            id: new_id(),
            name: input.name,
            slug: input.slug,
            is_active: input.is_active,
            is_default: input.is_default,
            role_ids: input.role_ids,
            branding: input.branding,
            web_form: input.web_form,
            created_at: at,
            modified_at: at,
            version: 1,
        };
        tx.query(&format!("INSERT INTO portals ({PORTAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1)"))
            .bind(portal.id.as_str())
            .bind(portal.name.as_str())
            .bind(portal.slug.as_str())
            .bind(portal.is_active)
            .bind(portal.is_default)
            .bind(json_text(&portal.branding)?)
            .bind(json_text(&portal.web_form)?)
            .bind(at)
            .execute()
            .await?;
        write_portal_roles(&mut tx, &portal.id, &portal.role_ids).await?;
        if portal.is_default {
            reconcile_portal_users(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(portal)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn list_portals(&self, actor: &Actor) -> Result<Page<Portal>> {
        require_admin(actor, "see portals")?;
        let mut tx = self.pools.read().await?;
        let rows = tx.query(&format!("SELECT {PORTAL_COLUMNS} FROM portals ORDER BY name, id")).fetch_all().await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(portal_from_row(&mut tx, row).await?);
        }
        tx.commit().await?;
        Ok(Page { total: items.len() as i64, items })
    }

    /// An active portal for its own pages: the one at `slug`, or the
    /// default portal. Anyone may read it: its login page is public.
    #[instrument(level = "debug", skip_all)]
    pub async fn portal_site(&self, slug: Option<&str>) -> Result<Option<Portal>> {
        let mut tx = self.pools.read().await?;
        let which = if slug.is_some() { "slug = $2" } else { "is_default = $1" };
        let sql = format!("SELECT {PORTAL_COLUMNS} FROM portals WHERE is_active = $1 AND {which}");
        let mut query = tx.query(&sql).bind(true);
        if let Some(slug) = slug {
            query = query.bind(slug);
        }
        let portal = match query.fetch_optional().await? {
            Some(row) => Some(portal_from_row(&mut tx, &row).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(portal)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_portal(&self, actor: &Actor, id: &str) -> Result<Portal> {
        require_admin(actor, "see portals")?;
        let mut tx = self.pools.read().await?;
        let portal = load_portal(&mut tx, id, false).await?;
        tx.commit().await?;
        Ok(portal)
    }

    /// Replaces a portal's settings and roles.
    #[instrument(level = "debug", skip_all)]
    pub async fn update_portal(&self, actor: &Actor, id: &str, input: PortalInput) -> Result<Portal> {
        require_admin(actor, "manage portals")?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        let current = load_portal(&mut tx, id, true).await?;
        check_version(input.version, current.version)?;
        check_exist(&mut tx, "portal_roles", "role_ids", &input.role_ids).await?;
        check_exist(&mut tx, "teams", "web_form.team_ids", &input.web_form.team_ids).await?;
        check_slug_free(&mut tx, &input.slug, Some(id)).await?;
        if input.is_default && !current.is_default {
            unset_default(&mut tx).await?;
        }
        let at = now();
        tx.query(
            "UPDATE portals SET name = $1, slug = $2, is_active = $3, is_default = $4, branding = $5, web_form = $6, \
             modified_at = $7, version = version + 1 WHERE id = $8",
        )
        .bind(input.name.as_str())
        .bind(input.slug.as_str())
        .bind(input.is_active)
        .bind(input.is_default)
        .bind(json_text(&input.branding)?)
        .bind(json_text(&input.web_form)?)
        .bind(at)
        .bind(id)
        .execute()
        .await?;
        write_portal_roles(&mut tx, id, &input.role_ids).await?;
        // The default portal's roles are every portal user's outside a
        // portal: a change there may narrow what they reach.
        if current.is_default || input.is_default {
            reconcile_portal_users(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(Portal {
            name: input.name,
            slug: input.slug,
            is_active: input.is_active,
            is_default: input.is_default,
            role_ids: input.role_ids,
            branding: input.branding,
            web_form: input.web_form,
            modified_at: at,
            version: current.version + 1,
            ..current
        })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_portal(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage portals")?;
        let mut tx = self.pools.write().await?;
        let portal = load_portal(&mut tx, id, true).await?;
        tx.query("DELETE FROM portals WHERE id = $1").bind(id).execute().await?;
        if portal.is_default {
            reconcile_portal_users(&mut tx).await?;
        }
        tx.commit().await
    }

    /// A portal user's own portal roles (merged with their portal's).
    #[instrument(level = "debug", skip_all)]
    pub async fn user_portal_roles(&self, actor: &Actor, user_id: &str) -> Result<Vec<String>> {
        require_admin(actor, "see portal roles")?;
        let mut tx = self.pools.read().await?;
        portal_user(&mut tx, user_id).await?;
        let ids = user_role_ids(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Replaces a portal user's own portal roles.
    #[instrument(level = "debug", skip_all)]
    pub async fn set_user_portal_roles(
        &self,
        actor: &Actor,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<Vec<String>> {
        require_admin(actor, "manage portal roles")?;
        let mut errors = docket_domain::ValidationErrors::new();
        docket_domain::validation::id_list(&mut errors, "role_ids", role_ids);
        errors.into_result()?;
        let mut tx = self.pools.write().await?;
        portal_user(&mut tx, user_id).await?;
        check_exist(&mut tx, "portal_roles", "role_ids", role_ids).await?;
        replace_links(&mut tx, "user_portal_roles", "user_id", "role_id", user_id, role_ids, false).await?;
        reconcile_user_follows(&mut tx, user_id).await?;
        let ids = user_role_ids(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(ids)
    }
}

impl Store {
    /// The portals a portal user may use besides the default one.
    #[instrument(level = "debug", skip_all)]
    pub async fn user_portals(&self, actor: &Actor, user_id: &str) -> Result<Vec<String>> {
        require_admin(actor, "see portal users' portals")?;
        let mut tx = self.pools.read().await?;
        portal_user(&mut tx, user_id).await?;
        let ids = user_portal_ids(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Replaces the portals a portal user may use besides the default one.
    /// Their sessions at portals taken away stop working at once (sessions
    /// check membership on every request).
    #[instrument(level = "debug", skip_all)]
    pub async fn set_user_portals(&self, actor: &Actor, user_id: &str, portal_ids: &[String]) -> Result<Vec<String>> {
        require_admin(actor, "manage portal users' portals")?;
        let mut errors = docket_domain::ValidationErrors::new();
        docket_domain::validation::id_list(&mut errors, "portal_ids", portal_ids);
        errors.into_result()?;
        let mut tx = self.pools.write().await?;
        portal_user(&mut tx, user_id).await?;
        check_exist(&mut tx, "portals", "portal_ids", portal_ids).await?;
        replace_links(&mut tx, "user_portals", "user_id", "portal_id", user_id, portal_ids, false).await?;
        let ids = user_portal_ids(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(ids)
    }
}

/// Whether a portal user may use an active portal: the default one, or
/// one granted to them (the rule `auth::MAY_USE_PORTAL` also states).
pub(crate) async fn may_use_portal(tx: &mut Tx, user_id: &str, portal_id: &str) -> Result<bool> {
    let row = tx
        .query(
            "SELECT 1 AS one FROM portals p WHERE p.id = $1 AND p.is_active = $2 AND (p.is_default = $2 \
             OR EXISTS (SELECT 1 FROM user_portals up WHERE up.user_id = $3 AND up.portal_id = p.id))",
        )
        .bind(portal_id)
        .bind(true)
        .bind(user_id)
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

/// Lets a portal user use a portal (nothing when they already may).
pub(crate) async fn grant_portal(tx: &mut Tx, user_id: &str, portal_id: &str) -> Result<()> {
    tx.query("INSERT INTO user_portals (user_id, portal_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .bind(portal_id)
        .execute()
        .await?;
    Ok(())
}

async fn user_portal_ids(tx: &mut Tx, user_id: &str) -> Result<Vec<String>> {
    tx.query("SELECT portal_id FROM user_portals WHERE user_id = $1 ORDER BY portal_id")
        .bind(user_id)
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("portal_id"))
        .collect()
}

async fn check_role_name_free(tx: &mut Tx, name: &str, except: Option<&str>) -> Result<()> {
    let row = tx.query("SELECT id FROM portal_roles WHERE name = $1").bind(name).fetch_optional().await?;
    match row {
        Some(row) if except != Some(row.get::<String>("id")?.as_str()) => {
            Err(StoreError::invalid("name", "a portal role with this name exists"))
        }
        _ => Ok(()),
    }
}

async fn check_slug_free(tx: &mut Tx, slug: &str, except: Option<&str>) -> Result<()> {
    let row = tx.query("SELECT id FROM portals WHERE slug = $1").bind(slug).fetch_optional().await?;
    match row {
        Some(row) if except != Some(row.get::<String>("id")?.as_str()) => {
            Err(StoreError::invalid("slug", format!("another portal answers at /portal/{slug}")))
        }
        _ => Ok(()),
    }
}

async fn unset_default(tx: &mut Tx) -> Result<()> {
    tx.query("UPDATE portals SET is_default = $1 WHERE is_default = $2").bind(false).bind(true).execute().await?;
    Ok(())
}

async fn write_portal_roles(tx: &mut Tx, portal_id: &str, role_ids: &[String]) -> Result<()> {
    replace_links(tx, "portal_portal_roles", "portal_id", "role_id", portal_id, role_ids, false).await
}

async fn load_portal_role(tx: &mut Tx, id: &str, for_update: bool) -> Result<PortalRole> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if for_update { tx.for_update() } else { "" };
    let sql = format!("SELECT * FROM portal_roles WHERE id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    portal_role_from_row(&row)
}

fn portal_role_from_row(row: &Row) -> Result<PortalRole> {
    Ok(PortalRole {
        id: row.get("id")?,
        name: row.get("name")?,
        permissions: json_column(row, "permissions")?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}

async fn load_portal(tx: &mut Tx, id: &str, for_update: bool) -> Result<Portal> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if for_update { tx.for_update() } else { "" };
    let sql = format!("SELECT {PORTAL_COLUMNS} FROM portals WHERE id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    portal_from_row(tx, &row).await
}

async fn portal_from_row(tx: &mut Tx, row: &Row) -> Result<Portal> {
    let id: String = row.get("id")?;
    let role_ids: Vec<String> = tx
        .query("SELECT role_id FROM portal_portal_roles WHERE portal_id = $1 ORDER BY role_id")
        .bind(id.as_str())
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("role_id"))
        .collect::<Result<_>>()?;
    Ok(Portal {
        name: row.get("name")?,
        slug: row.get("slug")?,
        is_active: row.get("is_active")?,
        is_default: row.get("is_default")?,
        role_ids,
        branding: json_column(row, "branding")?,
        web_form: json_column(row, "web_form")?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
        id,
    })
}

/// Checks that `user_id` is a portal user.
async fn portal_user(tx: &mut Tx, user_id: &str) -> Result<()> {
    if !looks_like_id(user_id) {
        return Err(StoreError::NotFound);
    }
    let row = tx.query("SELECT user_type FROM users WHERE id = $1").bind(user_id).fetch_optional().await?;
    let user_type: String = row.ok_or(StoreError::NotFound)?.get("user_type")?;
    if user_type != UserType::Portal.as_str() {
        return Err(StoreError::invalid("user_id", "portal roles are for portal users"));
    }
    Ok(())
}

async fn user_role_ids(tx: &mut Tx, user_id: &str) -> Result<Vec<String>> {
    tx.query("SELECT role_id FROM user_portal_roles WHERE user_id = $1 ORDER BY role_id")
        .bind(user_id)
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("role_id"))
        .collect()
}

/// The users who hold a portal role themselves.
async fn role_holders(tx: &mut Tx, role_id: &str) -> Result<Vec<String>> {
    tx.query("SELECT user_id FROM user_portal_roles WHERE role_id = $1 ORDER BY user_id")
        .bind(role_id)
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("user_id"))
        .collect()
}

/// Whether the default portal has the role (and so every portal user).
async fn on_default_portal(tx: &mut Tx, role_id: &str) -> Result<bool> {
    let row = tx
        .query(
            "SELECT 1 AS one FROM portal_portal_roles pr JOIN portals p ON p.id = pr.portal_id \
             WHERE pr.role_id = $1 AND p.is_default = $2",
        )
        .bind(role_id)
        .bind(true)
        .fetch_optional()
        .await?;
    Ok(row.is_some())
}

/// Ends the follows a portal role's change took away: its holders', and
/// every portal user's when the default portal has it.
async fn reconcile_role_holders(tx: &mut Tx, role_id: &str) -> Result<()> {
    if on_default_portal(tx, role_id).await? {
        return reconcile_portal_users(tx).await;
    }
    for user_id in role_holders(tx, role_id).await? {
        reconcile_user_follows(tx, &user_id).await?;
    }
    Ok(())
}

/// Every portal user who follows a case: after the default portal changed.
async fn reconcile_portal_users(tx: &mut Tx) -> Result<()> {
    let users: Vec<String> = tx
        .query(
            "SELECT DISTINCT f.user_id FROM follows f JOIN users u ON u.id = f.user_id \
             WHERE u.user_type = 'portal' ORDER BY f.user_id",
        )
        .fetch_all()
        .await?
        .iter()
        .map(|row| row.get("user_id"))
        .collect::<Result<_>>()?;
    for user_id in users {
        reconcile_user_follows(tx, &user_id).await?;
    }
    Ok(())
}
