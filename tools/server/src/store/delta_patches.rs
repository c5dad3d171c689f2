//! Delta patches: one row per (target artifact, base image), made by the server's patch jobs
//! (`deltas.rs`) or uploaded by a release pipeline; the patch file itself is content-addressed
//! beside the artifacts. And what each action downloaded of a patch and of a full artifact.

use super::artifacts::ArtifactRow;
use super::database::{Store, now_ms};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A patch (`state`: `queued`, `building`, `ready` or `failed`; a failed one keeps its reason and
/// is not retried by itself: the same inputs would fail the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRow {
    pub id: i64,
    pub target_artifact_id: i64,
    /// sha256 of the base image the patch rebuilds the target from (what devices report in
    /// `running_image_sha256`).
    pub base_sha256: String,
    pub base_artifact_id: Option<i64>,
    /// `built` by this server or `uploaded`.
    pub origin: String,
    pub state: String,
    pub reason: Option<String>,
    /// The patch file's hashes and size, once ready.
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub size: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A finished patch file, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFile {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub size: i64,
}

/// What a rollout's devices downloaded, and how much the patches saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadTotals {
    /// Actions that downloaded anything.
    pub actions: i64,
    pub full_bytes: i64,
    pub delta_bytes: i64,
    /// Actions that downloaded a patch.
    pub delta_actions: i64,
    /// Actions whose device fell back from its patch to the full artifact, by reason (most
    /// frequent first, at most 10 reasons).
    pub fallbacks: i64,
    pub fallback_reasons: Vec<(String, i64)>,
}

/// What a device's download is, for the bytes an action counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKind {
    Full,
    Delta,
}

const COLUMNS: &str = "id, target_artifact_id, base_sha256, base_artifact_id, origin, state, \
    reason, sha256, sha1, md5, size, created_at, started_at, finished_at";

fn patch(row: &AnyRow) -> Result<PatchRow> {
    Ok(PatchRow {
        id: row.try_get("id")?,
        target_artifact_id: row.try_get("target_artifact_id")?,
        base_sha256: row.try_get("base_sha256")?,
        base_artifact_id: row.try_get("base_artifact_id")?,
        origin: row.try_get("origin")?,
        state: row.try_get("state")?,
        reason: row.try_get("reason")?,
        sha256: row.try_get("sha256")?,
        sha1: row.try_get("sha1")?,
        md5: row.try_get("md5")?,
        size: row.try_get("size")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Queues a patch of `target` from `base` unless one exists for that base image (in any
    /// state); whether it was queued now.
    pub async fn queue_patch(&self, target: &ArtifactRow, base: &ArtifactRow) -> Result<bool> {
        let Some(base_sha256) = &base.image_sha256 else {
            return Ok(false);
        };
        let done = sqlx::query(
            "INSERT INTO delta_patches (target_artifact_id, base_sha256, base_artifact_id, origin, \
             state, created_at) VALUES ($1, $2, $3, 'built', 'queued', $4) \
             ON CONFLICT (target_artifact_id, base_sha256) DO NOTHING",
        )
        .bind(target.id)
        .bind(base_sha256)
        .bind(base.id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a patch received ready-made (verified by the caller); replaces a queued or failed
    /// one for the same base. `false` if a ready or building one exists.
    pub async fn add_uploaded_patch(
        &self,
        target_artifact_id: i64,
        base_sha256: &str,
        base_artifact_id: Option<i64>,
        file: &PatchFile,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM delta_patches WHERE target_artifact_id = $1 AND base_sha256 = $2 \
             AND state IN ('queued', 'failed')",
        )
        .bind(target_artifact_id)
        .bind(base_sha256)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "INSERT INTO delta_patches (target_artifact_id, base_sha256, base_artifact_id, origin, \
             state, sha256, sha1, md5, size, created_at, started_at, finished_at) \
             VALUES ($1, $2, $3, 'uploaded', 'ready', $4, $5, $6, $7, $8, $8, $8) \
             ON CONFLICT (target_artifact_id, base_sha256) DO NOTHING",
        )
        .bind(target_artifact_id)
        .bind(base_sha256)
        .bind(base_artifact_id)
        .bind(&file.sha256)
        .bind(&file.sha1)
        .bind(&file.md5)
        .bind(file.size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes the oldest queued job (or one whose builder has not finished since `stale_before`,
    /// a server that died while building), so that of several server processes one builds it.
    pub async fn claim_patch_job(&self, stale_before: i64) -> Result<Option<PatchRow>> {
        // A few tries: another process may claim the job found first.
        for _ in 0..4 {
            let Some(row) = sqlx::query(sql!(
                "SELECT {COLUMNS} FROM delta_patches WHERE state = 'queued' \
                 OR (state = 'building' AND started_at < $1) ORDER BY id LIMIT 1"
            ))
            .bind(stale_before)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let job = patch(&row)?;
            let claimed = sqlx::query(
                "UPDATE delta_patches SET state = 'building', started_at = $1 \
                 WHERE id = $2 AND state = $3 AND COALESCE(started_at, 0) = $4",
            )
            .bind(now_ms())
            .bind(job.id)
            .bind(&job.state)
            .bind(job.started_at.unwrap_or(0))
            .execute(&self.pool)
            .await?
            .rows_affected()
                == 1;
            if claimed {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Ends a building job: ready with its file, or failed with the reason.
    pub async fn finish_patch_job(
        &self,
        id: i64,
        outcome: std::result::Result<&PatchFile, &str>,
    ) -> Result<()> {
        let query = match outcome {
            Ok(file) => sqlx::query(
                "UPDATE delta_patches SET state = 'ready', sha256 = $1, sha1 = $2, md5 = $3, \
                 size = $4, reason = NULL, finished_at = $5 WHERE id = $6 AND state = 'building'",
            )
            .bind(file.sha256.clone())
            .bind(file.sha1.clone())
            .bind(file.md5.clone())
            .bind(file.size),
            Err(reason) => sqlx::query(
                "UPDATE delta_patches SET state = 'failed', reason = $1, finished_at = $2 \
                 WHERE id = $3 AND state = 'building'",
            )
            .bind(reason.to_owned()),
        };
        query.bind(now_ms()).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// The patches of a target artifact (every state), oldest first.
    pub async fn patches_of(&self, target_artifact_id: i64) -> Result<Vec<PatchRow>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM delta_patches WHERE target_artifact_id = $1 ORDER BY id"
        ))
        .bind(target_artifact_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(patch).collect()
    }

    /// Every patch, newest first (the admin API's and dashboard's job list).
    pub async fn patches(&self) -> Result<Vec<PatchRow>> {
        let rows = sqlx::query(sql!("SELECT {COLUMNS} FROM delta_patches ORDER BY id DESC"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(patch).collect()
    }

    /// The ready patch that rebuilds `target_artifact_id` from the image `base_sha256`.
    pub async fn ready_patch(
        &self,
        target_artifact_id: i64,
        base_sha256: &str,
    ) -> Result<Option<PatchRow>> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM delta_patches WHERE target_artifact_id = $1 \
             AND base_sha256 = $2 AND state = 'ready'"
        ))
        .bind(target_artifact_id)
        .bind(base_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(patch).transpose()
    }

    /// The action a device's download of `sha256` counts for (its newest action whose rollout
    /// deploys that artifact, or has it as a ready patch), and which of the two it is. `None`:
    /// the device was given neither, and may not download it.
    pub async fn download_for(
        &self,
        device_id: i64,
        sha256: &str,
    ) -> Result<Option<(i64, DownloadKind)>> {
        let row = sqlx::query(
            "SELECT a.id AS id, f.sha256 AS artifact_sha256 FROM actions a \
             JOIN rollouts r ON r.id = a.rollout_id JOIN artifacts f ON f.id = r.artifact_id \
             WHERE a.device_id = $1 AND (f.sha256 = $2 OR EXISTS (SELECT 1 FROM delta_patches p \
             WHERE p.target_artifact_id = f.id AND p.sha256 = $2 AND p.state = 'ready')) \
             ORDER BY a.id DESC LIMIT 1",
        )
        .bind(device_id)
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let artifact_sha256: String = row.try_get("artifact_sha256")?;
        let kind = if artifact_sha256 == sha256 {
            DownloadKind::Full
        } else {
            DownloadKind::Delta
        };
        Ok(Some((row.try_get("id")?, kind)))
    }

    /// Adds bytes served to an action's count of its kind.
    pub async fn count_download(
        &self,
        action_id: i64,
        kind: DownloadKind,
        bytes: i64,
    ) -> Result<()> {
        let sql = match kind {
            DownloadKind::Full => "UPDATE actions SET full_bytes = full_bytes + $1 WHERE id = $2",
            DownloadKind::Delta => {
                "UPDATE actions SET delta_bytes = delta_bytes + $1 WHERE id = $2"
            }
        };
        sqlx::query(sql)
            .bind(bytes)
            .bind(action_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps why a device fell back from a patch to the full artifact (its feedback said so).
    pub async fn note_delta_fallback(&self, action_id: i64, why: &str) -> Result<()> {
        sqlx::query("UPDATE actions SET delta_fallback = $1 WHERE id = $2")
            .bind(why)
            .bind(action_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a patch of `target_artifact_id` from `base_sha256` is queued or building, queued
    /// after `since`.
    pub async fn patch_pending(
        &self,
        target_artifact_id: i64,
        base_sha256: &str,
        since: i64,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT id FROM delta_patches WHERE target_artifact_id = $1 AND base_sha256 = $2 \
             AND state IN ('queued', 'building') AND created_at > $3",
        )
        .bind(target_artifact_id)
        .bind(base_sha256)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// What the actions of a rollout downloaded.
    pub async fn download_totals(&self, rollout_id: i64) -> Result<DownloadTotals> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(full_bytes), 0) AS BIGINT) AS full_bytes, \
             CAST(COALESCE(SUM(delta_bytes), 0) AS BIGINT) AS delta_bytes, \
             COUNT(CASE WHEN full_bytes > 0 OR delta_bytes > 0 THEN 1 END) AS actions, \
             COUNT(CASE WHEN delta_bytes > 0 THEN 1 END) AS delta_actions, \
             COUNT(delta_fallback) AS fallbacks FROM actions WHERE rollout_id = $1",
        )
        .bind(rollout_id)
        .fetch_one(&self.pool)
        .await?;
        let reasons = sqlx::query(
            "SELECT delta_fallback AS reason, COUNT(*) AS n FROM actions \
             WHERE rollout_id = $1 AND delta_fallback IS NOT NULL \
             GROUP BY delta_fallback ORDER BY n DESC, reason LIMIT 10",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("reason")?, r.try_get("n")?)))
        .collect::<Result<_>>()?;
        Ok(DownloadTotals {
            actions: row.try_get("actions")?,
            full_bytes: row.try_get("full_bytes")?,
            delta_bytes: row.try_get("delta_bytes")?,
            delta_actions: row.try_get("delta_actions")?,
            fallbacks: row.try_get("fallbacks")?,
            fallback_reasons: reasons,
        })
    }

    /// Records the image hash of an artifact uploaded before the column existed.
    pub async fn set_image_sha256(&self, artifact_id: i64, image_sha256: &str) -> Result<()> {
        sqlx::query("UPDATE artifacts SET image_sha256 = $1 WHERE id = $2")
            .bind(image_sha256)
            .bind(artifact_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
