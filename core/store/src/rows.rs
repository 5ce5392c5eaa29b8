//! Helpers shared by the record modules: loading link tables in batches
//! and checking that referenced records exist.

use std::collections::HashMap;

use docket_domain::ids::looks_like_id;

use crate::db::{Sql, Tx};
use crate::{Result, StoreError};

/// Turns a stored enum value back into the enum; a value this version does
/// not know is corrupt data, not user error.
pub(crate) fn parse_stored<T>(value: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<T> {
    parse(value).map_err(StoreError::Corrupt)
}

/// A JSON text column, read back into its type; unreadable JSON is
/// corrupt data.
/// A value as JSON text for a column (the reverse of [`json_column`]).
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An update's expected version against the stored one: a stale client
/// gets a conflict naming the current version.
pub(crate) fn check_version(expected: Option<i64>, current: i64) -> Result<()> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::VersionConflict { current }),
        _ => Ok(()),
    }
}

pub(crate) fn json_column<T: serde::de::DeserializeOwned>(row: &crate::db::Row, column: &str) -> Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Loads `SELECT owner, value FROM table WHERE owner IN (...) ORDER BY ...`
/// and groups the values by owner, keeping order.
pub(crate) async fn load_links(
    tx: &mut Tx,
    table: &str,
    owner_column: &str,
    value_column: &str,
    order: &str,
    owner_ids: &[String],
) -> Result<HashMap<String, Vec<String>>> {
    let mut grouped: HashMap<String, Vec<String>> = HashMap::new();
    if owner_ids.is_empty() {
        return Ok(grouped);
    }
    let mut sql = Sql::new(&format!(
        "SELECT {owner_column} AS owner, {value_column} AS value FROM {table} WHERE {owner_column} IN "
    ));
    sql.list(owner_ids).push(&format!(" ORDER BY {order}"));
    for row in tx.built(&sql).fetch_all().await? {
        grouped.entry(row.get("owner")?).or_default().push(row.get("value")?);
    }
    Ok(grouped)
}

/// Replaces the links of one owner: deletes the old rows, inserts the new
/// ones in order (a `position` column keeps it where the table has one).
pub(crate) async fn replace_links(
    tx: &mut Tx,
    table: &str,
    owner_column: &str,
    value_column: &str,
    owner_id: &str,
    values: &[String],
    with_position: bool,
) -> Result<()> {
    let delete = format!("DELETE FROM {table} WHERE {owner_column} = $1");
    tx.query(&delete).bind(owner_id).execute().await?;
    let insert = if with_position {
        format!("INSERT INTO {table} ({owner_column}, {value_column}, position) VALUES ($1, $2, $3)")
    } else {
        format!("INSERT INTO {table} ({owner_column}, {value_column}) VALUES ($1, $2)")
    };
    for (position, value) in values.iter().enumerate() {
        let mut query = tx.query(&insert).bind(owner_id).bind(value.as_str());
        if with_position {
            query = query.bind(position as i64);
        }
        query.execute().await?;
    }
    Ok(())
}

/// The ids that name a row of `table`, in the order given.
pub(crate) async fn existing_ids(tx: &mut Tx, table: &str, ids: &[String]) -> Result<Vec<String>> {
    // Strings that cannot be ids are missing without asking the database
    // (PostgreSQL refuses some, such as text with NUL characters).
    let candidates: Vec<String> = ids.iter().filter(|id| looks_like_id(id)).cloned().collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(&format!("SELECT id FROM {table} WHERE id IN "));
    sql.list(&candidates);
    let found: Vec<String> =
        tx.built(&sql).fetch_all().await?.iter().map(|row| row.get("id")).collect::<Result<_>>()?;
    Ok(ids.iter().filter(|id| found.contains(id)).cloned().collect())
}

/// Checks that every id names a row of `table`; reports the missing ones
/// against `field`.
pub(crate) async fn check_exist(tx: &mut Tx, table: &str, field: &str, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = existing_ids(tx, table, ids).await?;
    let missing: Vec<&str> = ids.iter().filter(|id| !found.contains(id)).map(String::as_str).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::invalid(field, format!("no such record: {}", missing.join(", "))))
    }
}

/// Checks one optional reference.
pub(crate) async fn check_exists(tx: &mut Tx, table: &str, field: &str, id: Option<&str>) -> Result<()> {
    match id {
        Some(id) => check_exist(tx, table, field, &[id.to_string()]).await,
        None => Ok(()),
    }
}

/// Checks that an assignee is an active staff user.
pub(crate) async fn check_assignee(tx: &mut Tx, field: &str, user_id: Option<&str>) -> Result<()> {
    let Some(user_id) = user_id else {
        return Ok(());
    };
    if !looks_like_id(user_id) {
        return Err(StoreError::invalid(field, format!("no such user: {user_id}")));
    }
    let row = tx.query("SELECT user_type, is_active FROM users WHERE id = $1").bind(user_id).fetch_optional().await?;
    match row {
        None => Err(StoreError::invalid(field, format!("no such user: {user_id}"))),
        Some(row) => {
            let user_type: String = row.get("user_type")?;
            let is_active: bool = row.get("is_active")?;
            if user_type == "portal" {
                Err(StoreError::invalid(field, "portal users cannot be assigned"))
            } else if !is_active {
                Err(StoreError::invalid(field, "this user is deactivated"))
            } else {
                Ok(())
            }
        }
    }
}

/// Adds the actor's reach over records with an assignee, a creator and a
/// team link table (accounts, contacts). `false`: the actor sees none.
pub(crate) fn owned_scope_condition(
    sql: &mut Sql,
    scope: &docket_domain::access::ListScope,
    alias: &str,
    team_table: &str,
    team_owner_column: &str,
) -> bool {
    use docket_domain::access::ListScope;
    match scope {
        ListScope::All => true,
        ListScope::Nothing | ListScope::Portal { .. } => false,
        ListScope::Own { user_id } | ListScope::OwnOrTeams { user_id, .. } => {
            sql.push(&format!(" AND ({alias}.assigned_user_id = ")).value(user_id.as_str());
            sql.push(&format!(" OR {alias}.created_by_id = ")).value(user_id.as_str());
            if let ListScope::OwnOrTeams { team_ids, .. } = scope
                && !team_ids.is_empty()
            {
                sql.push(&format!(
                    " OR EXISTS (SELECT 1 FROM {team_table} lt WHERE lt.{team_owner_column} = {alias}.id AND lt.team_id IN "
                ));
                sql.list(team_ids).push(")");
            }
            sql.push(")");
            true
        }
    }
}

/// Maps an access decision to the store's answer.
pub(crate) fn enforce(decision: docket_domain::access::Decision, what: &str) -> Result<()> {
    use docket_domain::access::Decision;
    match decision {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(StoreError::Forbidden(format!("you may not {what}"))),
        Decision::Hidden => Err(StoreError::NotFound),
    }
}
