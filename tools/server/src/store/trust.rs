//! The tenant's current trust document (docs/trust.md): one row, replaced compare-and-set on the
//! version it replaces, so that two operators (or two server processes) uploading at once cannot
//! both win. Whether a document may replace another is decided by `rustupdate_trust` in
//! `admin_api/trust.rs`; this module only reads and writes.

use super::database::{Store, now_ms};
use anyhow::Result;
use sqlx::Row;

/// The only row's key.
const ROW: i64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRow {
    pub version: i64,
    /// The document as uploaded (JSON).
    pub document: String,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

impl Store {
    /// The current document, if the operator set one.
    pub async fn trust_document(&self) -> Result<Option<TrustRow>> {
        let row =
            sqlx::query("SELECT version, document, updated_at FROM trust_document WHERE id = $1")
                .bind(ROW)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(TrustRow {
                version: r.try_get("version")?,
                document: r.try_get("document")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// The current document's version only (every poll asks).
    pub async fn trust_version(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT version FROM trust_document WHERE id = $1")
            .bind(ROW)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("version")).transpose()?)
    }

    /// Stores `document` (of `version`) in place of the one of version `replaces` (`None`: there
    /// was none); `false` when the stored one is no longer that (someone else replaced it).
    pub async fn replace_trust_document(
        &self,
        replaces: Option<i64>,
        version: i64,
        document: &str,
    ) -> Result<bool> {
        let done = match replaces {
            None => {
                sqlx::query(
                    "INSERT INTO trust_document (id, version, document, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                )
                .bind(ROW)
                .bind(version)
                .bind(document)
                .bind(now_ms())
                .execute(&self.pool)
                .await?
            }
            Some(old) => {
                sqlx::query(
                    "UPDATE trust_document SET version = $1, document = $2, updated_at = $3 \
                 WHERE id = $4 AND version = $5",
                )
                .bind(version)
                .bind(document)
                .bind(now_ms())
                .bind(ROW)
                .bind(old)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }
}
