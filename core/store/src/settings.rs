//! Installation-wide settings and one-time markers (demo data loaded).

use tracing::instrument;

use crate::{Result, Store};

impl Store {
    #[instrument(level = "debug", skip_all)]
    pub async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let mut tx = self.pools.read().await?;
        let row = tx.query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional().await?;
        tx.commit().await?;
        match row {
            Some(row) => {
                let text: String = row.get("value")?;
                Ok(Some(serde_json::from_str(&text).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?))
            }
            None => Ok(None),
        }
    }

    /// Sets a value only if the key is new; returns whether it was set.
    /// Used as a once-only marker (several nodes may try at once).
    #[instrument(level = "debug", skip_all)]
    pub async fn set_setting_once(&self, key: &str, value: &serde_json::Value) -> Result<bool> {
        let mut tx = self.pools.write().await?;
        let inserted = tx
            .query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value.to_string())
            .execute()
            .await?;
        tx.commit().await?;
        Ok(inserted == 1)
    }
}

impl Store {
    /// Sets a value, replacing the old one (admins only).
    #[instrument(level = "debug", skip_all)]
    pub async fn set_setting(&self, actor: &docket_domain::Actor, key: &str, value: &serde_json::Value) -> Result<()> {
        crate::users::require_admin(actor, "change settings")?;
        let mut tx = self.pools.write().await?;
        tx.query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2")
            .bind(key)
            .bind(value.to_string())
            .execute()
            .await?;
        tx.commit().await?;
        // The business calendar is cached with the rules.
        self.forget_rules();
        Ok(())
    }
}
