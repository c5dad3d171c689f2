//! Dashboard sessions: the sha256 of a random session key and when it expires. The key itself is
//! only in the operator's cookie, so a copy of the database opens no session.

use super::{Store, now_ms};
use anyhow::Result;

impl Store {
    /// Stores a new session, and forgets expired ones.
    pub async fn add_session(&self, key_hash: &str, expires_at: i64) -> Result<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (key_hash, created_at, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(key_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the session exists and has not expired.
    pub async fn session_valid(&self, key_hash: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT key_hash FROM dashboard_sessions WHERE key_hash = $1 AND expires_at > $2",
        )
        .bind(key_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub async fn remove_session(&self, key_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE key_hash = $1")
            .bind(key_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
