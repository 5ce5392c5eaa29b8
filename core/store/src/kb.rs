//! The knowledge base: articles and categories, full-text search (FTS5 on
//! SQLite, a `tsvector` column on PostgreSQL), articles related to cases
//! and suggested for them.
//!
//! Staff read and write every article. Portal users read, when their
//! `kb_article.read` level is `all`, the published articles of the default
//! portal that are in date (the portal's own pages will pass their portal).

use chrono::{NaiveDate, Utc};
use docket_domain::Actor;
use docket_domain::access::{Action, Scope};
use docket_domain::ids::{looks_like_id, new_id};
use docket_domain::kb::{Article, ArticleInput, ArticleStatus, Category, CategoryInput, search_terms};
use docket_domain::listing::{Page, Window};
use docket_domain::portal::PortalLevel;
use tracing::instrument;

use crate::cases::{AttachmentOwner, check_attachments, load_case, readable};
use crate::db::{Backend, Row, Sql, Tx};
use crate::rows::{check_exist, check_exists, check_version, enforce, load_links, parse_stored, replace_links};
use crate::{Result, Store, StoreError, now};

const ARTICLE_COLUMNS: &str = "a.id, a.name, a.status, a.language, a.publish_date, a.expiration_date, a.sort_order, \
     a.description, a.body, a.assigned_user_id, a.created_at, a.created_by_id, a.modified_at, a.version";

/// Search words taken from a query or a case.
const MAX_TERMS: usize = 12;

/// How deep categories nest.
const MAX_CATEGORY_DEPTH: usize = 100;

/// Which articles a list shows.
#[derive(Debug, Clone, Default)]
pub struct ArticleFilter {
    /// Full-text search: articles with every word.
    pub q: Option<String>,
    pub status: Option<ArticleStatus>,
    pub category_id: Option<String>,
    pub window: Window,
}

impl Store {
    #[instrument(level = "debug", skip_all)]
    pub async fn create_article(&self, actor: &Actor, input: ArticleInput) -> Result<Article> {
        require_staff(actor)?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        check_article_links(&mut tx, &input).await?;
        check_attachments(&mut tx, actor, &input.attachment_ids, AttachmentOwner::New).await?;
        let order = match input.order {
            Some(order) => order,
            // New articles go on top (orders are bounded by validation).
            None => {
                let highest: i64 = tx
                    .query("SELECT COALESCE(MAX(sort_order), 0) AS highest FROM kb_articles")
                    .fetch_one()
                    .await?
                    .get("highest")?;
                highest.saturating_add(1).min(docket_domain::kb::MAX_ORDER)
            }
        };
        let at = now();
        let article = Article {
            id: new_id(),
            name: input.name,
            status: input.status,
            language: input.language,
            portal_ids: input.portal_ids,
            category_ids: input.category_ids,
            publish_date: input.publish_date,
            expiration_date: input.expiration_date,
            order,
            description: input.description,
            body: input.body,
            assigned_user_id: input.assigned_user_id,
            attachment_ids: input.attachment_ids,
            created_at: at,
            created_by_id: Some(actor.user_id.clone()),
            modified_at: at,
            version: 1,
        };
        tx.query(
            "INSERT INTO kb_articles (id, name, status, language, publish_date, expiration_date, sort_order, \
             description, body, assigned_user_id, created_at, created_by_id, modified_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, 1)",
        )
        .bind(article.id.as_str())
        .bind(article.name.as_str())
        .bind(article.status.as_str())
        .bind(article.language.as_str())
        .bind(article.publish_date.map(|d| d.to_string()))
        .bind(article.expiration_date.map(|d| d.to_string()))
        .bind(article.order)
        .bind(article.description.as_deref())
        .bind(article.body.as_str())
        .bind(article.assigned_user_id.as_deref())
        .bind(at)
        .bind(actor.user_id.as_str())
        .execute()
        .await?;
        write_article_links(&mut tx, &article).await?;
        index_article(&mut tx, &article).await?;
        tx.commit().await?;
        Ok(article)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn get_article(&self, actor: &Actor, id: &str) -> Result<Article> {
        let mut tx = self.pools.read().await?;
        let mut article = load_article(&mut tx, actor, id, false).await?;
        tx.commit().await?;
        customer_view(actor, std::slice::from_mut(&mut article));
        Ok(article)
    }

    /// Replaces an article.
    #[instrument(level = "debug", skip_all)]
    pub async fn update_article(&self, actor: &Actor, id: &str, input: ArticleInput) -> Result<Article> {
        require_staff(actor)?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        let current = load_article(&mut tx, actor, id, true).await?;
        check_version(input.version, current.version)?;
        check_article_links(&mut tx, &input).await?;
        check_attachments(&mut tx, actor, &input.attachment_ids, AttachmentOwner::Article(id)).await?;
        let at = now();
        let article = Article {
            name: input.name,
            status: input.status,
            language: input.language,
            portal_ids: input.portal_ids,
            category_ids: input.category_ids,
            publish_date: input.publish_date,
            expiration_date: input.expiration_date,
            order: input.order.unwrap_or(current.order),
            description: input.description,
            body: input.body,
            assigned_user_id: input.assigned_user_id,
            attachment_ids: input.attachment_ids,
            modified_at: at,
            version: current.version + 1,
            ..current
        };
        tx.query(
            "UPDATE kb_articles SET name = $1, status = $2, language = $3, publish_date = $4, expiration_date = $5, \
             sort_order = $6, description = $7, body = $8, assigned_user_id = $9, modified_at = $10, \
             version = version + 1 WHERE id = $11",
        )
        .bind(article.name.as_str())
        .bind(article.status.as_str())
        .bind(article.language.as_str())
        .bind(article.publish_date.map(|d| d.to_string()))
        .bind(article.expiration_date.map(|d| d.to_string()))
        .bind(article.order)
        .bind(article.description.as_deref())
        .bind(article.body.as_str())
        .bind(article.assigned_user_id.as_deref())
        .bind(at)
        .bind(id)
        .execute()
        .await?;
        write_article_links(&mut tx, &article).await?;
        index_article(&mut tx, &article).await?;
        tx.commit().await?;
        Ok(article)
    }

    /// Deletes an article with its files; returns their storage keys so
    /// the caller can delete the files.
    #[instrument(level = "debug", skip_all)]
    pub async fn delete_article(&self, actor: &Actor, id: &str) -> Result<Vec<String>> {
        require_staff(actor)?;
        let mut tx = self.pools.write().await?;
        load_article(&mut tx, actor, id, true).await?;
        let keys: Vec<String> = tx
            .query("SELECT storage_key FROM attachments WHERE article_id = $1")
            .bind(id)
            .fetch_all()
            .await?
            .iter()
            .map(|row| row.get("storage_key"))
            .collect::<Result<_>>()?;
        tx.query("DELETE FROM kb_articles WHERE id = $1").bind(id).execute().await?;
        if tx.backend() == Backend::Sqlite {
            tx.query("DELETE FROM kb_search WHERE article_id = $1").bind(id).execute().await?;
        }
        tx.commit().await?;
        Ok(keys)
    }

    /// Articles the actor may read, best match first when searching, else
    /// in their order (new on top).
    #[instrument(level = "debug", skip_all)]
    pub async fn list_articles(&self, actor: &Actor, filter: &ArticleFilter) -> Result<Page<Article>> {
        let mut tx = self.pools.read().await?;
        let backend = tx.backend();
        let terms = filter.q.as_deref().map(|q| search_terms(q, MAX_TERMS)).unwrap_or_default();
        if filter.q.as_deref().is_some_and(|q| !q.trim().is_empty()) && terms.is_empty() {
            // Only short or common words: nothing to look for.
            return Ok(Page { items: Vec::new(), total: 0 });
        }
        let mut condition = Sql::new("");
        if !visibility_condition(&mut condition, actor) {
            return Ok(Page { items: Vec::new(), total: 0 });
        }
        if let Some(status) = filter.status {
            condition.push(" AND a.status = ").value(status.as_str());
        }
        if let Some(category_id) = &filter.category_id {
            condition.push(" AND EXISTS (SELECT 1 FROM kb_article_categories ac WHERE ac.article_id = a.id AND ");
            condition.push("ac.category_id = ").value(category_id.as_str()).push(")");
        }
        let ranked = !terms.is_empty();
        if ranked {
            match_condition(&mut condition, backend, &terms, " ");
        }
        let count = crate::cases::prefixed("SELECT COUNT(*) AS total FROM kb_articles a WHERE 1 = 1", &condition);
        let total: i64 = tx.built(&count).fetch_one().await?.get("total")?;
        let mut select =
            crate::cases::prefixed(&format!("SELECT {ARTICLE_COLUMNS} FROM kb_articles a WHERE 1 = 1"), &condition);
        if ranked {
            rank_order(&mut select, backend, &terms, " ");
        } else {
            select.push(" ORDER BY a.sort_order DESC, a.created_at DESC, a.id");
        }
        crate::cases::page_window(&mut select, filter.window);
        let rows = tx.built(&select).fetch_all().await?;
        let mut items = rows.iter().map(article_from_row).collect::<Result<Vec<_>>>()?;
        load_article_links(&mut tx, &mut items).await?;
        tx.commit().await?;
        customer_view(actor, &mut items);
        Ok(Page { items, total })
    }

    /// Published articles whose text matches a case's subject and
    /// description, best first (staff).
    #[instrument(level = "debug", skip_all)]
    pub async fn suggest_articles(&self, actor: &Actor, case_id: &str, limit: i64) -> Result<Vec<Article>> {
        require_staff(actor)?;
        let mut tx = self.pools.read().await?;
        let case = readable_case(&mut tx, actor, case_id).await?;
        let text = format!("{} {}", case.name, case.description.as_deref().unwrap_or(""));
        let terms = search_terms(&text, MAX_TERMS);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let backend = tx.backend();
        let mut select = Sql::new(&format!("SELECT {ARTICLE_COLUMNS} FROM kb_articles a WHERE 1 = 1"));
        // What customers could read too: published and in date.
        published_in_date(&mut select);
        // Any of the words: a case rarely says it the way an article does.
        match_condition(&mut select, backend, &terms, " OR ");
        select.push(" AND NOT EXISTS (SELECT 1 FROM kb_article_cases r WHERE r.article_id = a.id AND r.case_id = ");
        select.value(case.id.as_str()).push(")");
        rank_order(&mut select, backend, &terms, " OR ");
        select.push(" LIMIT ").value(limit.clamp(1, 20));
        let rows = tx.built(&select).fetch_all().await?;
        let mut items = rows.iter().map(article_from_row).collect::<Result<Vec<_>>>()?;
        load_article_links(&mut tx, &mut items).await?;
        tx.commit().await?;
        Ok(items)
    }

    /// The articles related to a case that the actor may read.
    #[instrument(level = "debug", skip_all)]
    pub async fn case_articles(&self, actor: &Actor, case_id: &str) -> Result<Vec<Article>> {
        let mut tx = self.pools.read().await?;
        let case = readable_case(&mut tx, actor, case_id).await?;
        let mut select = Sql::new(&format!(
            "SELECT {ARTICLE_COLUMNS} FROM kb_articles a JOIN kb_article_cases r ON r.article_id = a.id WHERE r.case_id = "
        ));
        select.value(case.id.as_str());
        if !visibility_condition(&mut select, actor) {
            return Ok(Vec::new());
        }
        select.push(" ORDER BY r.created_at, a.id");
        let rows = tx.built(&select).fetch_all().await?;
        let mut items = rows.iter().map(article_from_row).collect::<Result<Vec<_>>>()?;
        load_article_links(&mut tx, &mut items).await?;
        tx.commit().await?;
        customer_view(actor, &mut items);
        Ok(items)
    }

    /// Relates an article to a case: needs edit access to the case.
    #[instrument(level = "debug", skip_all)]
    pub async fn relate_article(&self, actor: &Actor, case_id: &str, article_id: &str) -> Result<()> {
        require_staff(actor)?;
        let mut tx = self.pools.write().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide(Scope::Case, Action::Edit, &case.ownership()), "edit this case")?;
        load_article(&mut tx, actor, article_id, false).await?;
        tx.query(
            "INSERT INTO kb_article_cases (case_id, article_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(case.id.as_str())
        .bind(article_id)
        .bind(now())
        .execute()
        .await?;
        tx.commit().await
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn unrelate_article(&self, actor: &Actor, case_id: &str, article_id: &str) -> Result<()> {
        require_staff(actor)?;
        if !looks_like_id(article_id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.write().await?;
        let case = load_case(&mut tx, "c.id = $1", case_id, false).await?;
        enforce(actor.decide(Scope::Case, Action::Edit, &case.ownership()), "edit this case")?;
        let removed = tx
            .query("DELETE FROM kb_article_cases WHERE case_id = $1 AND article_id = $2")
            .bind(case.id.as_str())
            .bind(article_id)
            .execute()
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await
    }

    /// Adds an uploaded file to an article (the agent pages' upload).
    #[instrument(level = "debug", skip_all)]
    pub async fn attach_to_article(&self, actor: &Actor, article_id: &str, attachment_id: &str) -> Result<Article> {
        require_staff(actor)?;
        let mut tx = self.pools.write().await?;
        let mut article = load_article(&mut tx, actor, article_id, true).await?;
        let ids = [attachment_id.to_string()];
        check_attachments(&mut tx, actor, &ids, AttachmentOwner::Article(article_id)).await?;
        tx.query("UPDATE attachments SET article_id = $1 WHERE id = $2")
            .bind(article_id)
            .bind(attachment_id)
            .execute()
            .await?;
        tx.commit().await?;
        if !article.attachment_ids.iter().any(|id| id == attachment_id) {
            article.attachment_ids.push(attachment_id.to_string());
        }
        Ok(article)
    }

    /// Archives published articles whose expiration date has passed;
    /// returns how many.
    #[instrument(level = "debug", skip_all)]
    pub async fn archive_expired_articles(&self, today: NaiveDate) -> Result<u64> {
        let mut tx = self.pools.write().await?;
        let archived = tx
            .query(
                "UPDATE kb_articles SET status = $1, modified_at = $2, version = version + 1 \
                 WHERE status = $3 AND expiration_date IS NOT NULL AND expiration_date < $4",
            )
            .bind(ArticleStatus::Archived.as_str())
            .bind(now())
            .bind(ArticleStatus::Published.as_str())
            .bind(today.to_string())
            .execute()
            .await?;
        tx.commit().await?;
        Ok(archived)
    }

    #[instrument(level = "debug", skip_all)]
    pub async fn create_category(&self, actor: &Actor, input: CategoryInput) -> Result<Category> {
        require_staff(actor)?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        check_exists(&mut tx, "kb_categories", "parent_id", input.parent_id.as_deref()).await?;
        let at = now();
        let category = Category {
            id: new_id(),
            name: input.name,
            parent_id: input.parent_id,
            order: input.order,
            description: input.description,
            created_at: at,
            modified_at: at,
            version: 1,
        };
        tx.query(
            "INSERT INTO kb_categories (id, name, parent_id, sort_order, description, created_at, modified_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, 1)",
        )
        .bind(category.id.as_str())
        .bind(category.name.as_str())
        .bind(category.parent_id.as_deref())
        .bind(category.order)
        .bind(category.description.as_deref())
        .bind(at)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(category)
    }

    /// Every category, parents before children, each level in its order.
    #[instrument(level = "debug", skip_all)]
    pub async fn list_categories(&self, actor: &Actor) -> Result<Vec<Category>> {
        let mut tx = self.pools.read().await?;
        let rows = tx.query("SELECT * FROM kb_categories ORDER BY sort_order, name, id").fetch_all().await?;
        let all: Vec<Category> = rows.iter().map(category_from_row).collect::<Result<_>>()?;
        if actor.is_staff() {
            tx.commit().await?;
            return Ok(tree_order(all));
        }
        // Customers see the categories that hold an article they may read,
        // and the categories above those: not the whole tree of every
        // portal.
        let mut condition = Sql::new("");
        if !visibility_condition(&mut condition, actor) {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let used = crate::cases::prefixed(
            "SELECT DISTINCT ac.category_id FROM kb_article_categories ac JOIN kb_articles a ON a.id = ac.article_id \
             WHERE 1 = 1",
            &condition,
        );
        let mut shown: std::collections::HashSet<String> =
            tx.built(&used).fetch_all().await?.iter().map(|row| row.get("category_id")).collect::<Result<_>>()?;
        tx.commit().await?;
        let parents: std::collections::HashMap<&str, Option<&str>> =
            all.iter().map(|c| (c.id.as_str(), c.parent_id.as_deref())).collect();
        for id in shown.clone() {
            let mut parent = parents.get(id.as_str()).copied().flatten();
            while let Some(up) = parent {
                if !shown.insert(up.to_string()) {
                    break;
                }
                parent = parents.get(up).copied().flatten();
            }
        }
        Ok(tree_order(all.into_iter().filter(|c| shown.contains(&c.id)).collect()))
    }

    /// Replaces a category; a category cannot move under itself.
    #[instrument(level = "debug", skip_all)]
    pub async fn update_category(&self, actor: &Actor, id: &str, input: CategoryInput) -> Result<Category> {
        require_staff(actor)?;
        let input = input.validate()?;
        let mut tx = self.pools.write().await?;
        let current = load_category(&mut tx, id, true).await?;
        check_version(input.version, current.version)?;
        check_exists(&mut tx, "kb_categories", "parent_id", input.parent_id.as_deref()).await?;
        // Walk up from the new parent: meeting this category is a cycle.
        // (The row lock above makes concurrent moves take turns.)
        let mut ancestor = input.parent_id.clone();
        let mut levels = 0;
        while let Some(parent) = ancestor {
            if parent == id {
                return Err(StoreError::invalid("parent_id", "a category cannot be inside itself"));
            }
            levels += 1;
            if levels > MAX_CATEGORY_DEPTH {
                return Err(StoreError::invalid(
                    "parent_id",
                    format!("categories nest {MAX_CATEGORY_DEPTH} deep at most"),
                ));
            }
            ancestor = load_category(&mut tx, &parent, false).await?.parent_id;
        }
        let at = now();
        tx.query(
            "UPDATE kb_categories SET name = $1, parent_id = $2, sort_order = $3, description = $4, modified_at = $5, \
             version = version + 1 WHERE id = $6",
        )
        .bind(input.name.as_str())
        .bind(input.parent_id.as_deref())
        .bind(input.order)
        .bind(input.description.as_deref())
        .bind(at)
        .bind(id)
        .execute()
        .await?;
        tx.commit().await?;
        Ok(Category {
            name: input.name,
            parent_id: input.parent_id,
            order: input.order,
            description: input.description,
            modified_at: at,
            version: current.version + 1,
            ..current
        })
    }

    /// Deletes a category and its subcategories; articles stay, unfiled.
    #[instrument(level = "debug", skip_all)]
    pub async fn delete_category(&self, actor: &Actor, id: &str) -> Result<()> {
        require_staff(actor)?;
        let mut tx = self.pools.write().await?;
        load_category(&mut tx, id, true).await?;
        tx.query("DELETE FROM kb_categories WHERE id = $1").bind(id).execute().await?;
        tx.commit().await
    }
}

fn require_staff(actor: &Actor) -> Result<()> {
    if actor.is_staff() { Ok(()) } else { Err(StoreError::Forbidden("the knowledge base is written by staff".into())) }
}

/// What customers see of articles: not who on the staff wrote or owns
/// them, nor which other portals show them.
fn customer_view(actor: &Actor, articles: &mut [Article]) {
    if actor.is_staff() {
        return;
    }
    for article in articles {
        article.assigned_user_id = None;
        article.created_by_id = None;
        article.portal_ids.retain(|id| actor.portal.portal_id.as_ref() == Some(id));
    }
}

/// Adds what the actor may read; `false` means nothing.
fn visibility_condition(sql: &mut Sql, actor: &Actor) -> bool {
    if actor.is_staff() {
        return true;
    }
    if actor.portal.permissions.kb_article.read == PortalLevel::No {
        return false;
    }
    published_in_date(sql);
    sql.push(
        " AND EXISTS (SELECT 1 FROM kb_article_portals ap JOIN portals p ON p.id = ap.portal_id \
         WHERE ap.article_id = a.id AND ",
    );
    match &actor.portal.portal_id {
        Some(portal_id) => sql.push("p.id = ").value(portal_id.as_str()),
        None => sql.push("p.is_default = ").value(true),
    };
    sql.push(" AND p.is_active = ").value(true).push(")");
    true
}

/// Published articles whose publish date has come and whose expiration
/// date has not passed.
fn published_in_date(sql: &mut Sql) {
    let today = Utc::now().date_naive().to_string();
    sql.push(" AND a.status = ").value(ArticleStatus::Published.as_str());
    sql.push(" AND (a.publish_date IS NULL OR a.publish_date <= ").value(today.as_str()).push(")");
    sql.push(" AND (a.expiration_date IS NULL OR a.expiration_date >= ").value(today.as_str()).push(")");
}

/// A case the actor may read, in this transaction (others are not found).
async fn readable_case(tx: &mut Tx, actor: &Actor, case_id: &str) -> Result<docket_domain::case::Case> {
    readable(actor, load_case(tx, "c.id = $1", case_id, false).await?)
}

/// The full-text query for the words, joined by `joiner` (" " for all of
/// them, " OR " for any). The words are letters and digits only, so no
/// search syntax reaches the engine.
fn fts_query(backend: Backend, terms: &[String], joiner: &str) -> String {
    match backend {
        Backend::Sqlite => {
            terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(if joiner == " " { " " } else { " OR " })
        }
        Backend::Postgres => terms.join(if joiner == " " { " & " } else { " | " }),
    }
}

fn match_condition(sql: &mut Sql, backend: Backend, terms: &[String], joiner: &str) {
    let query = fts_query(backend, terms, joiner);
    match backend {
        Backend::Sqlite => {
            sql.push(" AND a.id IN (SELECT article_id FROM kb_search WHERE kb_search MATCH ").value(query).push(")");
        }
        Backend::Postgres => {
            sql.push(" AND a.search @@ to_tsquery('simple', ").value(query).push(")");
        }
    }
}

/// Best match first: FTS5's bm25 (lower is better, name counted most) or
/// PostgreSQL's rank over the weighted vector.
fn rank_order(sql: &mut Sql, backend: Backend, terms: &[String], joiner: &str) {
    let query = fts_query(backend, terms, joiner);
    match backend {
        Backend::Sqlite => {
            sql.push(" ORDER BY (SELECT bm25(kb_search, 0.0, 10.0, 4.0, 1.0) FROM kb_search WHERE kb_search MATCH ");
            sql.value(query).push(" AND kb_search.article_id = a.id), a.sort_order DESC, a.id");
        }
        Backend::Postgres => {
            sql.push(" ORDER BY ts_rank(a.search, to_tsquery('simple', ").value(query);
            sql.push(")) DESC, a.sort_order DESC, a.id");
        }
    }
}

/// Keeps the FTS5 index in step with the article (PostgreSQL's column is
/// generated).
async fn index_article(tx: &mut Tx, article: &Article) -> Result<()> {
    if tx.backend() != Backend::Sqlite {
        return Ok(());
    }
    tx.query("DELETE FROM kb_search WHERE article_id = $1").bind(article.id.as_str()).execute().await?;
    tx.query("INSERT INTO kb_search (article_id, name, description, body) VALUES ($1, $2, $3, $4)")
        .bind(article.id.as_str())
        .bind(article.name.as_str())
        .bind(article.description.as_deref().unwrap_or(""))
        .bind(article.body.as_str())
        .execute()
        .await?;
    Ok(())
}

async fn check_article_links(tx: &mut Tx, input: &ArticleInput) -> Result<()> {
    check_exist(tx, "portals", "portal_ids", &input.portal_ids).await?;
    check_exist(tx, "kb_categories", "category_ids", &input.category_ids).await?;
    crate::rows::check_assignee(tx, "assigned_user_id", input.assigned_user_id.as_deref()).await
}

async fn write_article_links(tx: &mut Tx, article: &Article) -> Result<()> {
    replace_links(tx, "kb_article_portals", "article_id", "portal_id", &article.id, &article.portal_ids, false).await?;
    replace_links(tx, "kb_article_categories", "article_id", "category_id", &article.id, &article.category_ids, false)
        .await?;
    // Files left out go back to their uploaders, unlinked.
    tx.query("UPDATE attachments SET article_id = NULL WHERE article_id = $1")
        .bind(article.id.as_str())
        .execute()
        .await?;
    for id in &article.attachment_ids {
        tx.query("UPDATE attachments SET article_id = $1 WHERE id = $2")
            .bind(article.id.as_str())
            .bind(id.as_str())
            .execute()
            .await?;
    }
    Ok(())
}

async fn load_article_links(tx: &mut Tx, articles: &mut [Article]) -> Result<()> {
    let ids: Vec<String> = articles.iter().map(|a| a.id.clone()).collect();
    let mut portals = load_links(tx, "kb_article_portals", "article_id", "portal_id", "portal_id", &ids).await?;
    let mut categories =
        load_links(tx, "kb_article_categories", "article_id", "category_id", "category_id", &ids).await?;
    let mut attachments = load_links(tx, "attachments", "article_id", "id", "created_at, id", &ids).await?;
    for article in articles {
        article.portal_ids = portals.remove(&article.id).unwrap_or_default();
        article.category_ids = categories.remove(&article.id).unwrap_or_default();
        article.attachment_ids = attachments.remove(&article.id).unwrap_or_default();
    }
    Ok(())
}

/// One article the actor may read (others are not found).
async fn load_article(tx: &mut Tx, actor: &Actor, id: &str, for_update: bool) -> Result<Article> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let mut sql = Sql::new(&format!("SELECT {ARTICLE_COLUMNS} FROM kb_articles a WHERE a.id = "));
    sql.value(id);
    if !visibility_condition(&mut sql, actor) {
        return Err(StoreError::NotFound);
    }
    if for_update {
        sql.push(tx.for_update());
    }
    let row = tx.built(&sql).fetch_optional().await?.ok_or(StoreError::NotFound)?;
    let mut articles = vec![article_from_row(&row)?];
    load_article_links(tx, &mut articles).await?;
    Ok(articles.remove(0))
}

fn article_from_row(row: &Row) -> Result<Article> {
    let status: String = row.get("status")?;
    let date = |column: &str| -> Result<Option<NaiveDate>> {
        let text: Option<String> = row.get(column)?;
        text.map(|t| t.parse().map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))).transpose()
    };
    Ok(Article {
        id: row.get("id")?,
        name: row.get("name")?,
        status: parse_stored(&status, ArticleStatus::parse)?,
        language: row.get("language")?,
        portal_ids: Vec::new(),
        category_ids: Vec::new(),
        publish_date: date("publish_date")?,
        expiration_date: date("expiration_date")?,
        order: row.get("sort_order")?,
        description: row.get("description")?,
        body: row.get("body")?,
        assigned_user_id: row.get("assigned_user_id")?,
        attachment_ids: Vec::new(),
        created_at: row.get("created_at")?,
        created_by_id: row.get("created_by_id")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}

async fn load_category(tx: &mut Tx, id: &str, for_update: bool) -> Result<Category> {
    if !looks_like_id(id) {
        return Err(StoreError::NotFound);
    }
    let lock = if for_update { tx.for_update() } else { "" };
    let sql = format!("SELECT * FROM kb_categories WHERE id = $1{lock}");
    let row = tx.query(&sql).bind(id).fetch_optional().await?;
    category_from_row(&row.ok_or(StoreError::NotFound)?)
}

fn category_from_row(row: &Row) -> Result<Category> {
    Ok(Category {
        id: row.get("id")?,
        name: row.get("name")?,
        parent_id: row.get("parent_id")?,
        order: row.get("sort_order")?,
        description: row.get("description")?,
        created_at: row.get("created_at")?,
        modified_at: row.get("modified_at")?,
        version: row.get("version")?,
    })
}

/// Parents before their children, depth first, siblings in their order.
fn tree_order(all: Vec<Category>) -> Vec<Category> {
    fn visit(parent: Option<&str>, all: &[Category], out: &mut Vec<Category>) {
        for category in all.iter().filter(|c| c.parent_id.as_deref() == parent) {
            out.push(category.clone());
            visit(Some(&category.id), all, out);
        }
    }
    let mut out = Vec::with_capacity(all.len());
    visit(None, &all, &mut out);
    out
}
