//! Attachment records. The bytes live under the data directory; the
//! server writes the file first and the row second, so a row always has
//! its file (a crash between the two leaves only an orphan file).

use chrono::{DateTime, Utc};
use docket_domain::Actor;
use docket_domain::access::Decision;
use docket_domain::ids::{looks_like_id, new_id};
use serde::Serialize;
use tracing::instrument;

use crate::db::{Row, Tx};
use crate::{Result, Store, StoreError, now};

/// What the server knows about an uploaded file.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentRecord {
    pub id: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub case_id: Option<String>,
    /// The knowledge-base article it belongs to.
    pub article_id: Option<String>,
    #[serde(skip)]
    pub storage_key: String,
    pub created_by_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl AttachmentRecord {
    /// A new file's record, linked to nothing yet.
    pub(crate) fn unlinked(new: &NewAttachment, creator_id: &str, at: DateTime<Utc>) -> AttachmentRecord {
        AttachmentRecord {
            id: new_id(),
            name: new.name.clone(),
            size: new.size,
            content_type: new.content_type.clone(),
            sha256: new.sha256.clone(),
            case_id: None,
            article_id: None,
            storage_key: new.storage_key.clone(),
            created_by_id: Some(creator_id.to_string()),
            created_at: at,
        }
    }
}

impl Store {
    /// Records an uploaded file, not yet linked to anything.
    #[instrument(level = "debug", skip_all)]
    pub async fn create_attachment(&self, actor: &Actor, new: &NewAttachment) -> Result<AttachmentRecord> {
        let record = AttachmentRecord::unlinked(new, &actor.user_id, now());
        let mut tx = self.pools.write().await?;
        insert_attachment(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// An attachment the actor may read: one linked to a case they may
    /// read (for portal users, never one on an internal note), or an
    /// unlinked one they uploaded.
    #[instrument(level = "debug", skip_all)]
    pub async fn get_attachment(&self, actor: &Actor, id: &str) -> Result<AttachmentRecord> {
        if !looks_like_id(id) {
            return Err(StoreError::NotFound);
        }
        let mut tx = self.pools.read().await?;
        let row = tx
            .query(
                "SELECT a.*, n.case_id AS note_case_id, n.is_internal AS note_internal FROM attachments a \
                 LEFT JOIN notes n ON n.id = a.note_id WHERE a.id = $1",
            )
            .bind(id)
            .fetch_optional()
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        let record = attachment_from_row(&row)?;
        let note_case: Option<String> = row.get("note_case_id")?;
        let note_internal: Option<bool> = row.get("note_internal")?;
        if note_internal == Some(true) && !actor.is_staff() {
            return Err(StoreError::NotFound);
        }
        let on_note = note_case.is_some();
        match record.case_id.clone().or(note_case) {
            Some(case_id) => {
                // Reading the case checks every rule that applies to it;
                // a note's attachment is part of the stream, which a portal
                // user's level may not reach.
                let case = self.get_case(actor, &case_id).await?;
                if on_note && actor.decide_stream(&case.ownership()) != Decision::Allow {
                    return Err(StoreError::NotFound);
                }
                Ok(record)
            }
            // An article's file: whoever may read the article.
            None if record.article_id.is_some() => {
                self.get_article(actor, record.article_id.as_deref().unwrap_or_default()).await?;
                Ok(record)
            }
            None if actor.is_admin() || record.created_by_id.as_deref() == Some(actor.user_id.as_str()) => Ok(record),
            None => Err(StoreError::NotFound),
        }
    }

    /// Removes an unlinked attachment (its uploader or an admin); returns
    /// its storage key so the caller can delete the file.
    #[instrument(level = "debug", skip_all)]
    pub async fn delete_unlinked_attachment(&self, actor: &Actor, id: &str) -> Result<String> {
        let record = self.get_attachment(actor, id).await?;
        if !actor.is_admin() && record.created_by_id.as_deref() != Some(actor.user_id.as_str()) {
            return Err(StoreError::Forbidden("only the uploader may remove an attachment".into()));
        }
        let mut tx = self.pools.write().await?;
        let deleted = tx
            .query(
                "DELETE FROM attachments WHERE id = $1 AND case_id IS NULL AND note_id IS NULL AND article_id IS NULL",
            )
            .bind(id)
            .execute()
            .await?;
        if deleted == 0 {
            return Err(StoreError::Forbidden("attachments linked to a case or an article are removed with it".into()));
        }
        tx.commit().await?;
        Ok(record.storage_key)
    }
}

fn attachment_from_row(row: &Row) -> Result<AttachmentRecord> {
    Ok(AttachmentRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        size: row.get("size")?,
        content_type: row.get("content_type")?,
        sha256: row.get("sha256")?,
        case_id: row.get("case_id")?,
        article_id: row.get("article_id")?,
        storage_key: row.get("storage_key")?,
        created_by_id: row.get("created_by_id")?,
        created_at: row.get("created_at")?,
    })
}

/// Writes an attachment's row, not yet linked to a case or note.
pub(crate) async fn insert_attachment(tx: &mut Tx, record: &AttachmentRecord) -> Result<()> {
    tx.query(
        "INSERT INTO attachments (id, name, content_type, size, sha256, storage_key, created_by_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(record.id.as_str())
    .bind(record.name.as_str())
    .bind(record.content_type.as_str())
    .bind(record.size)
    .bind(record.sha256.as_str())
    .bind(record.storage_key.as_str())
    .bind(record.created_by_id.as_deref())
    .bind(record.created_at)
    .execute()
    .await?;
    Ok(())
}
