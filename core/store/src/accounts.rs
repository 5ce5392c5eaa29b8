//! Accounts: customer organisations.

use docket_domain::account::{Account, AccountPatch, NewAccount};
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

const ACCOUNT_COLUMNS: &str = "a.id, a.name, a.email, a.phone, a.website, a.assigned_user_id, a.created_at, \
     a.created_by_id, a.modified_at, a.modified_by_id, a.version";

impl Store {
    #[instrument(level = "debug", skip_all)]
    pub async fn create_account(&self, actor: &Actor, new: &NewAccount) -> Result<Account> {
        if !actor.may_create(Scope::Account) {
            return Err(StoreError::Forbidden("you may not create accounts".into()));
        }
        new.validate()?;
        let mut tx = self.pools.write().await?;
        check_assignee(&mut tx, "assigned_user_id", new.assigned_user_id.as_deref()).await?;
        check_exist(&mut tx, "teams", "team_ids", &new.team_ids).await?;
        let at = now();
        let account = Account {
            id: new_id(),
            name: new.name.trim().to_string(),
            email: new.email.clone(),
            phone: new.phone.clone(),
            website: new.website.clone(),
            assigned_user_id: new.assigned_user_id.clone(),
            team_ids: new.team_ids.clone(),
            created_at: at,
            created_by_id: Some(actor.user_id.clone()),
            modified_at: at,
            modified_by_id: Some(actor.user_id.clone()),
            version: 1,
        };
        tx.query(
            "INSERT INTO accounts (id, name, email, phone, website, assigned_user_id, created_at, created_by_id, \
             modified_at, modified_by_id, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $8, 1)",
        )
        .bind(account.id.as_str())
        .bind(account.name.as_str())
        .bind(account.email.as_deref())
        .bind(account.phone.as_deref())
        .bind(account.website.as_deref())
        .bind(account.assigned_user_id.as_deref())
        .bind(at)
        .bind(actor.user_id.as_str())
        .execute()
        .await?;
        replace_links(&mut tx, "account_teams", "account_id", "team_id", &account.id, &account.team_ids, false).await?;
        tx.commit().await?;
        Ok(account)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_account(&self, actor: &Actor, id: &str) -> Result<Account> {
        let mut tx = self.pools.read().await?;
        let account = load_account(&mut tx, id, false).await?;
        tx.commit().await?;
        enforce(actor.decide(Scope::Account, Action::Read, &account.ownership()), "read this account")?;
        Ok(account)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn list_accounts(&self, actor: &Actor, filter: &SimpleFilter) -> Result<Page<Account>> {
        let mut tx = self.pools.read().await?;
        let mut condition = Sql::new(" WHERE 1 = 1");
        if !owned_scope_condition(&mut condition, &actor.list_scope(Scope::Account), "a", "account_teams", "account_id")
        {
            tx.commit().await?;
            return Ok(Page { items: Vec::new(), total: 0 });
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = like_pattern(q);
            let ilike = tx.ilike();
            condition.push(&format!(" AND (a.name {ilike} ")).value(pattern.as_str()).push(" ESCAPE '\\'");
            condition.push(&format!(" OR a.email {ilike} ")).value(pattern).push(" ESCAPE '\\')");
        }
        let total: i64 = tx
            .built(&prefixed("SELECT COUNT(*) AS total FROM accounts a", &condition))
            .fetch_one()
            .await?
            .get("total")?;
        let mut select = prefixed(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a"), &condition);
        select.push(&simple_order(filter.sort, "a", &["name"]));
        page_window(&mut select, filter.window);
        let mut accounts: Vec<Account> =
            tx.built(&select).fetch_all().await?.iter().map(account_from_row).collect::<Result<_>>()?;
        let ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
        let mut teams = load_links(&mut tx, "account_teams", "account_id", "team_id", "team_id", &ids).await?;
        for account in &mut accounts {
            account.team_ids = teams.remove(&account.id).unwrap_or_default();
        }
        tx.commit().await?;
        Ok(Page { items: accounts, total })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn update_account(&self, actor: &Actor, id: &str, patch: &AccountPatch) -> Result<Account> {
        let mut tx = self.pools.write().await?;
        let current = load_account(&mut tx, id, true).await?;
        enforce(actor.decide(Scope::Account, Action::Edit, &current.ownership()), "edit this account")?;
        check_version(patch.version, current.version)?;
        let next = patch.apply(&current)?;
        if next.assigned_user_id != current.assigned_user_id {
            check_assignee(&mut tx, "assigned_user_id", next.assigned_user_id.as_deref()).await?;
        }
        check_exist(&mut tx, "teams", "team_ids", &next.team_ids).await?;
        let at = now();
        tx.query(
            "UPDATE accounts SET name = $1, email = $2, phone = $3, website = $4, assigned_user_id = $5, \
             modified_at = $6, modified_by_id = $7, version = version + 1 WHERE id = $8",
        )
        .bind(next.name.as_str())
        .bind(next.email.as_deref())
        .bind(next.phone.as_deref())
        .bind(next.website.as_deref())
        .bind(next.assigned_user_id.as_deref())
        .bind(at)
        .bind(actor.user_id.as_str())
        .bind(id)
        .execute()
        .await?;
        if next.team_ids != current.team_ids {
            replace_links(&mut tx, "account_teams", "account_id", "team_id", id, &next.team_ids, false).await?;
        }
        tx.commit().await?;
        Ok(Account {
            modified_at: at,
            modified_by_id: Some(actor.user_id.clone()),
            version: current.version + 1,
            ..next
        })
    }

    /// Deletes an account; its cases and contacts stay, unlinked.
    #[instrument(level = "debug", skip_all)]
    pub async fn delete_account(&self, actor: &Actor, id: &str) -> Result<()> {
        let mut tx = self.pools.write().await?;
        let current = load_account(&mut tx, id, true).await?;
        enforce(actor.decide(Scope::Account, Action::Delete, &current.ownership()), "delete this account")?;
        // Portal users who followed its cases through their `account` level
        // lose them with it.
        let portal_followers: Vec<String> = tx
            .query(
                "SELECT DISTINCT f.user_id FROM follows f JOIN cases c ON c.id = f.case_id \
                 JOIN users u ON u.id = f.user_id WHERE c.account_id = $1 AND u.user_type = 'portal'",
            )
            .bind(id)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("user_id"))
            .collect::<Result<_>>()?;
        tx.query("DELETE FROM accounts WHERE id = $1").bind(id).execute().await?;
        for user_id in portal_followers {
            crate::stream::reconcile_user_follows(&mut tx, &user_id).await?;
        }
        tx.commit().await
    }
}

async fn load_account(tx: &mut Tx, id: &str, lock: bool) -> Result<Account> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if lock { tx.for_update() } else { "" };
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut account = account_from_row(&row)?;
    let mut teams = load_links(tx, "account_teams", "account_id", "team_id", "team_id", &[id.to_string()]).await?;
    account.team_ids = teams.remove(id).unwrap_or_default();
    Ok(account)
}

fn account_from_row(row: &Row) -> Result<Account> {
    Ok(Account {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        phone: row.get("phone")?,
        website: row.get("website")?,
        assigned_user_id: row.get("assigned_user_id")?,
        team_ids: Vec::new(),
        created_at: row.get("created_at")?,
        created_by_id: row.get("created_by_id")?,
        modified_at: row.get("modified_at")?,
        modified_by_id: row.get("modified_by_id")?,
        version: row.get("version")?,
    })
}
