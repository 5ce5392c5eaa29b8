//! Teams and their members.

use docket_domain::access::ListScope;
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::listing::{Page, SimpleFilter, like_pattern, simple_order};
use docket_domain::team::{NewTeam, Team, TeamMember, TeamPatch, validate_team};
use docket_domain::{Actor, Scope};
use tracing::instrument;

use crate::cases::{page_window, prefixed};
use crate::db::{Row, Sql, Tx};
use crate::rows::{check_exist, check_version};
use crate::users::require_admin;
use crate::{Result, Store, StoreError, now};

impl Store {
    #[instrument(level = "debug", skip_all)]
    pub async fn create_team(&self, actor: &Actor, new: &NewTeam) -> Result<Team> {
        require_admin(actor, "manage teams")?;
        validate_team(Some(&new.name), Some(&new.members))?;
        let mut tx = self.pools.write().await?;
        let name = new.name.trim();
        check_name_free(&mut tx, name, None).await?;
        let at = now();
        let team = Team {
            id: new_id(),
            name: name.to_string(),
            members: new.members.clone(),
            created_at: at,
            modified_at: at,
            version: 1,
        };
        tx.query("INSERT INTO teams (id, name, created_at, modified_at, version) VALUES ($1, $2, $3, $3, 1)")
            .bind(team.id.as_str())
            .bind(team.name.as_str())
            .bind(at)
            .execute()
            .await?;
        write_members(&mut tx, &team.id, &team.members).await?;
        tx.commit().await?;
        Ok(team)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_team(&self, actor: &Actor, id: &str) -> Result<Team> {
        let mut tx = self.pools.read().await?;
        let team = load_team(&mut tx, id, false).await?;
        tx.commit().await?;
        if visible(actor, &team) { Ok(team) } else { Err(StoreError::NotFound) }
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn list_teams(&self, actor: &Actor, filter: &SimpleFilter) -> Result<Page<Team>> {
        let mut tx = self.pools.read().await?;
        let mut condition = Sql::new(" WHERE 1 = 1");
        match actor.list_scope(Scope::Team) {
            ListScope::All => {}
            ListScope::Nothing | ListScope::Portal { .. } => {
                tx.commit().await?;
                return Ok(Page { items: Vec::new(), total: 0 });
            }
            ListScope::Own { user_id } | ListScope::OwnOrTeams { user_id, .. } => {
                condition.push(" AND EXISTS (SELECT 1 FROM team_members tm WHERE tm.team_id = t.id AND tm.user_id = ");
                condition.value(user_id).push(")");
            }
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let ilike = tx.ilike();
            condition.push(&format!(" AND t.name {ilike} ")).value(like_pattern(q)).push(" ESCAPE '\\'");
        }
        let total: i64 =
            tx.built(&prefixed("SELECT COUNT(*) AS total FROM teams t", &condition)).fetch_one().await?.get("total")?;
        let mut select =
            prefixed("SELECT t.id, t.name, t.created_at, t.modified_at, t.version FROM teams t", &condition);
        select.push(&simple_order(filter.sort, "t", &["name"]));
        page_window(&mut select, filter.window);
        let mut teams: Vec<Team> =
            tx.built(&select).fetch_all().await?.iter().map(team_from_row).collect::<Result<_>>()?;
        for team in &mut teams {
            team.members = load_members(&mut tx, &team.id).await?;
        }
        tx.commit().await?;
        Ok(Page { items: teams, total })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn update_team(&self, actor: &Actor, id: &str, patch: &TeamPatch) -> Result<Team> {
        require_admin(actor, "manage teams")?;
        validate_team(patch.name.as_deref(), patch.members.as_deref())?;
        let mut tx = self.pools.write().await?;
        let current = load_team(&mut tx, id, true).await?;
        check_version(patch.version, current.version)?;
        let name = patch.name.as_deref().map(str::trim).unwrap_or(&current.name).to_string();
        if name != current.name {
            check_name_free(&mut tx, &name, Some(id)).await?;
        }
        let at = now();
        tx.query("UPDATE teams SET name = $1, modified_at = $2, version = version + 1 WHERE id = $3")
            .bind(name.as_str())
            .bind(at)
            .bind(id)
            .execute()
            .await?;
        let members = match &patch.members {
            Some(members) => {
                tx.query("DELETE FROM team_members WHERE team_id = $1").bind(id).execute().await?;
                write_members(&mut tx, id, members).await?;
                members.clone()
            }
            None => current.members.clone(),
        };
        tx.commit().await?;
        Ok(Team { name, members, modified_at: at, version: current.version + 1, ..current })
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn delete_team(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor, "manage teams")?;
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        if tx.query("DELETE FROM teams WHERE id = $1").bind(id).execute().await? == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }
}

/// Members see their teams at `own`/`team` level; `all` sees every team.
fn visible(actor: &Actor, team: &Team) -> bool {
    match actor.list_scope(Scope::Team) {
        ListScope::All => true,
        ListScope::Own { .. } | ListScope::OwnOrTeams { .. } => actor.team_ids.contains(&team.id),
        ListScope::Nothing | ListScope::Portal { .. } => false,
    }
}

async fn check_name_free(tx: &mut Tx, name: &str, except: Option<&str>) -> Result<()> {
    let row = tx.query("SELECT id FROM teams WHERE name = $1").bind(name).fetch_optional().await?;
    match row {
        Some(row) if Some(row.get::<String>("id")?.as_str()) != except => {
            Err(StoreError::invalid("name", format!("a team named `{name}` exists")))
        }
        _ => Ok(()),
    }
}

async fn write_members(tx: &mut Tx, team_id: &str, members: &[TeamMember]) -> Result<()> {
    let user_ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    check_exist(tx, "users", "members", &user_ids).await?;
    for member in members {
        tx.query("INSERT INTO team_members (team_id, user_id, position) VALUES ($1, $2, $3)")
            .bind(team_id)
            .bind(member.user_id.as_str())
            .bind(member.position.as_deref().map(str::trim).filter(|p| !p.is_empty()))
            .execute()
            .await?;
    }
    Ok(())
}

async fn load_members(tx: &mut Tx, team_id: &str) -> Result<Vec<TeamMember>> {
    tx.query("SELECT user_id, position FROM team_members WHERE team_id = $1 ORDER BY user_id")
        .bind(team_id)
        .fetch_all()
        .await?
        .iter()
        .map(|row| Ok(TeamMember { user_id: row.get("user_id")?, position: row.get("position")? }))
        .collect()
}

async fn load_team(tx: &mut Tx, id: &str, lock: bool) -> Result<Team> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if lock { tx.for_update() } else { "" };
    let sql = format!("SELECT id, name, created_at, modified_at, version FROM teams t WHERE id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut team = team_from_row(&row)?;
    team.members = load_members(tx, id).await?;
    Ok(team)
}

fn team_from_row(row: &Row) -> Result<Team> {
    Ok(Team {
        id: row.get("id")?,
        name: row.get("name")?,
        members: Vec::new(),
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}
