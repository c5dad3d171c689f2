//! Dashboard sessions: the sha256 of a random session key, the account it belongs to and when it
//! expires. The key itself is only in the operator's cookie, so a copy of the database opens no
//! session. The account's role is read at every request, so a changed role applies at once.

use super::database::{Store, now_ms};
use super::users::Holder;
use anyhow::{Result, anyhow};
use sqlx::Row;

impl Store {
    /// Stores a new session of `user_id`, and forgets expired ones.
    pub async fn add_session(&self, key_hash: &str, user_id: i64, expires_at: i64) -> Result<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (key_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(key_hash)
        .bind(user_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account of a live session, if the session exists and has not expired.
    pub async fn session_holder(&self, key_hash: &str) -> Result<Option<Holder>> {
        let row = sqlx::query(
            "SELECT u.name, u.role FROM dashboard_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.key_hash = $1 AND s.expires_at > $2",
        )
        .bind(key_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.try_get("role")?;
        Ok(Some(Holder {
            user: row.try_get("name")?,
            role: role.parse().map_err(|e: String| anyhow!(e))?,
        }))
    }

    pub async fn remove_session(&self, key_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE key_hash = $1")
            .bind(key_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
