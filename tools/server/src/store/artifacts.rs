//! Artifacts: metadata of the content-addressed files under `DATA_DIR/artifacts/`.

use super::database::{Store, now_ms};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An uploaded artifact. `kind` is `rua` (signature verified at upload, metadata from the signed
/// manifest) or `foreign` (another updater's format, metadata given by the operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRow {
    pub id: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub size: i64,
    pub filename: String,
    pub name: String,
    pub version: String,
    pub device_types: Vec<String>,
    pub security_version: Option<i64>,
    pub kind: String,
    pub signers: Vec<String>,
    pub created_at: i64,
    /// sha256 of the image the artifact installs (`.rua` only): what a delta patch's base names
    /// and what devices report they run. `None` for foreign artifacts.
    pub image_sha256: Option<String>,
}

pub type NewArtifact = ArtifactRow;

const COLUMNS: &str = "id, sha256, sha1, md5, size, filename, name, version, device_types, \
                       security_version, kind, signers, created_at, image_sha256";

fn artifact(row: &AnyRow) -> Result<ArtifactRow> {
    let device_types: String = row.try_get("device_types")?;
    let signers: String = row.try_get("signers")?;
    Ok(ArtifactRow {
        id: row.try_get("id")?,
        sha256: row.try_get("sha256")?,
        sha1: row.try_get("sha1")?,
        md5: row.try_get("md5")?,
        size: row.try_get("size")?,
        filename: row.try_get("filename")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        device_types: serde_json::from_str(&device_types)?,
        security_version: row.try_get("security_version")?,
        kind: row.try_get("kind")?,
        signers: serde_json::from_str(&signers)?,
        created_at: row.try_get("created_at")?,
        image_sha256: row.try_get("image_sha256")?,
    })
}

impl Store {
    /// Records an artifact; the same content uploaded twice yields the first record and `false`.
    pub async fn add_artifact(&self, new: &NewArtifact) -> Result<(ArtifactRow, bool)> {
        let inserted = sqlx::query(
            "INSERT INTO artifacts (sha256, sha1, md5, size, filename, name, version, device_types, \
             security_version, kind, signers, created_at, image_sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&new.sha256)
        .bind(&new.sha1)
        .bind(&new.md5)
        .bind(new.size)
        .bind(&new.filename)
        .bind(&new.name)
        .bind(&new.version)
        .bind(serde_json::to_string(&new.device_types)?)
        .bind(new.security_version)
        .bind(&new.kind)
        .bind(serde_json::to_string(&new.signers)?)
        .bind(now_ms())
        .bind(&new.image_sha256)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM artifacts WHERE sha256 = $1"))
            .bind(&new.sha256)
            .fetch_one(&self.pool)
            .await?;
        Ok((artifact(&row)?, inserted))
    }

    pub async fn artifact(&self, id: i64) -> Result<Option<ArtifactRow>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM artifacts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(artifact).transpose()
    }

    pub async fn artifacts(&self) -> Result<Vec<ArtifactRow>> {
        let rows = sqlx::query(sql!("SELECT {COLUMNS} FROM artifacts ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(artifact).collect()
    }

    /// Artifacts (`.rua`) whose image some device reports it runs: the bases worth a patch.
    pub async fn running_base_artifacts(&self) -> Result<Vec<ArtifactRow>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM artifacts WHERE kind = 'rua' AND image_sha256 IN \
             (SELECT value FROM device_attributes WHERE key = 'running_image_sha256') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(artifact).collect()
    }

    /// The `.rua` artifacts that install the image `image_sha256`.
    pub async fn artifacts_with_image(&self, image_sha256: &str) -> Result<Vec<ArtifactRow>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM artifacts WHERE kind = 'rua' AND image_sha256 = $1 ORDER BY id"
        ))
        .bind(image_sha256)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(artifact).collect()
    }
}
