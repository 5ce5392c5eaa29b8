//! Contacts: people, with several email addresses and accounts.

use docket_domain::contact::{Contact, ContactPatch, NewContact, display_name};
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::{Page, SimpleFilter, like_pattern, simple_order};
use docket_domain::{Action, Actor, Scope};
use tracing::instrument;

use crate::cases::{page_window, prefixed};
use crate::db::{Row, Sql, Tx};
use crate::rows::{
    check_assignee, check_exist, check_version, enforce, load_links, owned_scope_condition, replace_links,
};
use crate::{Result, Store, StoreError, now};

const CONTACT_COLUMNS: &str = "k.id, k.first_name, k.last_name, k.phone, k.assigned_user_id, k.created_at, \
     k.created_by_id, k.modified_at, k.modified_by_id, k.version";

impl Store {
    #[instrument(level = "debug", skip_all)]
    pub async fn create_contact(&self, actor: &Actor, new: &NewContact) -> Result<Contact> {
        if !actor.may_create(Scope::Contact) {
            return Err(StoreError::Forbidden("you may not create contacts".into()));
        }
        let mut new = new.clone();
        new.validate()?;
        let mut tx = self.pools.write().await?;
        check_assignee(&mut tx, "assigned_user_id", new.assigned_user_id.as_deref()).await?;
        check_exist(&mut tx, "accounts", "account_ids", &new.account_ids).await?;
        check_exist(&mut tx, "teams", "team_ids", &new.team_ids).await?;
        let at = now();
        let first_name = new.first_name.map(|f| f.trim().to_string()).filter(|f| !f.is_empty());
        let last_name = new.last_name.trim().to_string();
        let contact = Contact {
            id: new_id(),
            name: display_name(first_name.as_deref(), &last_name),
            first_name,
            last_name,
            emails: new.emails,
            phone: new.phone,
            account_ids: new.account_ids,
            assigned_user_id: new.assigned_user_id,
            team_ids: new.team_ids,
            created_at: at,
            created_by_id: Some(actor.user_id.clone()),
            modified_at: at,
            modified_by_id: Some(actor.user_id.clone()),
            version: 1,
        };
        insert_contact_row(&mut tx, &contact).await?;
        write_contact_links(&mut tx, &contact).await?;
        tx.commit().await?;
        Ok(contact)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_contact(&self, actor: &Actor, id: &str) -> Result<Contact> {
        let mut tx = self.pools.read().await?;
        let contact = load_contact(&mut tx, id, false).await?;
        tx.commit().await?;
        enforce(actor.decide(Scope::Contact, Action::Read, &contact.ownership()), "read this contact")?;
        Ok(contact)
    }

    /// Contacts the actor may read, by text (name, email) or account.
    #[instrument(level = "debug", skip_all)]
    pub async fn list_contacts(&self, actor: &Actor, filter: &SimpleFilter) -> Result<Page<Contact>> {
        let mut tx = self.pools.read().await?;
        let mut condition = Sql::new(" WHERE 1 = 1");
        if !owned_scope_condition(&mut condition, &actor.list_scope(Scope::Contact), "k", "contact_teams", "contact_id")
        {
            tx.commit().await?;
            return Ok(Page { items: Vec::new(), total: 0 });
        }
        if let Some(account_id) = &filter.account_id {
            condition
                .push(" AND EXISTS (SELECT 1 FROM contact_accounts ca WHERE ca.contact_id = k.id AND ca.account_id = ");
            condition.value(account_id.as_str()).push(")");
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = like_pattern(q);
            let ilike = tx.ilike();
            condition.push(&format!(" AND (k.last_name {ilike} ")).value(pattern.as_str()).push(" ESCAPE '\\'");
            condition.push(&format!(" OR k.first_name {ilike} ")).value(pattern.as_str()).push(" ESCAPE '\\'");
            condition.push(" OR EXISTS (SELECT 1 FROM contact_emails ce WHERE ce.contact_id = k.id AND ce.email ");
            condition.push(&format!("{ilike} ")).value(pattern).push(" ESCAPE '\\'))");
        }
        let total: i64 = tx
            .built(&prefixed("SELECT COUNT(*) AS total FROM contacts k", &condition))
            .fetch_one()
            .await?
            .get("total")?;
        let mut select = prefixed(&format!("SELECT {CONTACT_COLUMNS} FROM contacts k"), &condition);
        select.push(&simple_order(filter.sort, "k", &["last_name", "first_name"]));
        page_window(&mut select, filter.window);
        let mut contacts: Vec<Contact> =
            tx.built(&select).fetch_all().await?.iter().map(contact_from_row).collect::<Result<_>>()?;
        load_contact_links(&mut tx, &mut contacts).await?;
        tx.commit().await?;
        Ok(Page { items: contacts, total })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn update_contact(&self, actor: &Actor, id: &str, patch: &ContactPatch) -> Result<Contact> {
        let mut tx = self.pools.write().await?;
        let current = load_contact(&mut tx, id, true).await?;
        enforce(actor.decide(Scope::Contact, Action::Edit, &current.ownership()), "edit this contact")?;
        check_version(patch.version, current.version)?;
        let next = patch.apply(&current)?;
        if next.assigned_user_id != current.assigned_user_id {
            check_assignee(&mut tx, "assigned_user_id", next.assigned_user_id.as_deref()).await?;
        }
        check_exist(&mut tx, "accounts", "account_ids", &next.account_ids).await?;
        check_exist(&mut tx, "teams", "team_ids", &next.team_ids).await?;
        let at = now();
        tx.query(
            "UPDATE contacts SET first_name = $1, last_name = $2, phone = $3, assigned_user_id = $4, modified_at = $5, \
             modified_by_id = $6, version = version + 1 WHERE id = $7",
        )
        .bind(next.first_name.as_deref())
        .bind(next.last_name.as_str())
        .bind(next.phone.as_deref())
        .bind(next.assigned_user_id.as_deref())
        .bind(at)
        .bind(actor.user_id.as_str())
        .bind(id)
        .execute()
        .await?;
        write_contact_links(&mut tx, &next).await?;
        // The contact's accounts are its portal users' `account` level.
        if next.account_ids != current.account_ids {
            for user_id in crate::stream::contact_portal_users(&mut tx, id).await? {
                crate::stream::reconcile_user_follows(&mut tx, &user_id).await?;
            }
        }
        tx.commit().await?;
        Ok(Contact {
            modified_at: at,
            modified_by_id: Some(actor.user_id.clone()),
            version: current.version + 1,
            ..next
        })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_contact(&self, actor: &Actor, id: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        let current = load_contact(&mut tx, id, true).await?;
        enforce(actor.decide(Scope::Contact, Action::Delete, &current.ownership()), "delete this contact")?;
        // Its portal users lose the contact (and its accounts): what they
        // followed through it, they stop following.
        let portal_users = crate::stream::contact_portal_users(&mut tx, id).await?;
        tx.query("DELETE FROM contacts WHERE id = $1").bind(id).execute().await?;
        for user_id in portal_users {
            crate::stream::reconcile_user_follows(&mut tx, &user_id).await?;
        }
        tx.commit().await
    }
}

/// Writes a new contact's own row (its links are written apart).
pub(crate) async fn insert_contact_row(tx: &mut Tx, contact: &Contact) -> Result<()> {
    tx.query(
        "INSERT INTO contacts (id, first_name, last_name, phone, assigned_user_id, created_at, created_by_id, \
         modified_at, modified_by_id, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7, 1)",
    )
    .bind(contact.id.as_str())
    .bind(contact.first_name.as_deref())
    .bind(contact.last_name.as_str())
    .bind(contact.phone.as_deref())
    .bind(contact.assigned_user_id.as_deref())
    .bind(contact.created_at)
    .bind(contact.created_by_id.as_deref())
    .execute()
    .await?;
    Ok(())
}

async fn write_contact_links(tx: &mut Tx, contact: &Contact) -> Result<()> {
    replace_links(tx, "contact_emails", "contact_id", "email", &contact.id, &contact.emails, true).await?;
    replace_links(tx, "contact_accounts", "contact_id", "account_id", &contact.id, &contact.account_ids, false).await?;
    replace_links(tx, "contact_teams", "contact_id", "team_id", &contact.id, &contact.team_ids, false).await
}

pub(crate) async fn load_contact(tx: &mut Tx, id: &str, lock: bool) -> Result<Contact> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if lock { tx.for_update() } else { "" };
    let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts k WHERE k.id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut contacts = vec![contact_from_row(&row)?];
    load_contact_links(tx, &mut contacts).await?;
    Ok(contacts.remove(0))
}

async fn load_contact_links(tx: &mut Tx, contacts: &mut [Contact]) -> Result<()> {
    let ids: Vec<String> = contacts.iter().map(|c| c.id.clone()).collect();
    let mut emails = load_links(tx, "contact_emails", "contact_id", "email", "position", &ids).await?;
    let mut accounts = load_links(tx, "contact_accounts", "contact_id", "account_id", "account_id", &ids).await?;
    let mut teams = load_links(tx, "contact_teams", "contact_id", "team_id", "team_id", &ids).await?;
    for contact in contacts {
        contact.emails = emails.remove(&contact.id).unwrap_or_default();
        contact.account_ids = accounts.remove(&contact.id).unwrap_or_default();
        contact.team_ids = teams.remove(&contact.id).unwrap_or_default();
    }
    Ok(())
}

fn contact_from_row(row: &Row) -> Result<Contact> {
    let first_name: Option<String> = row.get("first_name")?;
    let last_name: String = row.get("last_name")?;
    Ok(Contact {
        id: row.get("id")?,
        name: display_name(first_name.as_deref(), &last_name),
        first_name,
        last_name,
        emails: Vec::new(),
        phone: row.get("phone")?,
        account_ids: Vec::new(),
        assigned_user_id: row.get("assigned_user_id")?,
        team_ids: Vec::new(),
        created_at: row.get("created_at")?,
        created_by_id: row.get("created_by_id")?,
        modified_at: row.get("modified_at")?,
        modified_by_id: row.get("modified_by_id")?,
        version: row.get("version")?,
    })
}
