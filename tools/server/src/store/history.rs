//! What the dashboard's charts draw: devices per running version over time (sampled into
//! `version_samples` once per [`VERSION_SAMPLE_INTERVAL_MS`] by the sweep), a rollout's finished
//! actions over time, and failures by reason.

use super::database::{Store, now_ms};
use anyhow::Result;
use rustupdate_ddi::attributes::RUNNING_VERSION;
use sqlx::Row;
use std::collections::BTreeMap;

/// One sample of devices per running version an hour.
pub const VERSION_SAMPLE_INTERVAL_MS: i64 = 3_600_000;
/// The name of devices that have not reported a version.
pub const UNKNOWN_VERSION: &str = "unknown";

impl Store {
    /// Devices per running version now (read from every device's attributes).
    pub async fn devices_per_version(&self) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT attributes FROM devices")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = BTreeMap::new();
        for row in &rows {
            let text: String = row.try_get("attributes")?;
            let attributes: BTreeMap<String, String> =
                serde_json::from_str(&text).unwrap_or_default();
            let version = attributes
                .get(RUNNING_VERSION)
                .map_or(UNKNOWN_VERSION, String::as_str);
            *counts.entry(version.to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Records this interval's sample unless one exists (the first process to reach an interval
    /// writes it; the others' inserts do nothing). Whether it wrote one.
    pub async fn sample_versions(&self) -> Result<bool> {
        let bucket = now_ms() / VERSION_SAMPLE_INTERVAL_MS * VERSION_SAMPLE_INTERVAL_MS;
        let exists = sqlx::query("SELECT bucket FROM version_samples WHERE bucket = $1 LIMIT 1")
            .bind(bucket)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if exists {
            return Ok(false);
        }
        let counts = self.devices_per_version().await?;
        let mut tx = self.pool.begin().await?;
        for (version, devices) in &counts {
            sqlx::query(
                "INSERT INTO version_samples (bucket, version, devices) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket, version) DO NOTHING",
            )
            .bind(bucket)
            .bind(version)
            .bind(devices)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Samples since `since` (epoch ms): (time, version, devices), oldest first.
    pub async fn version_samples(&self, since: i64) -> Result<Vec<(i64, String, i64)>> {
        let rows = sqlx::query(
            "SELECT bucket, version, devices FROM version_samples WHERE bucket >= $1 \
             ORDER BY bucket, version",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("bucket")?,
                    r.try_get("version")?,
                    r.try_get("devices")?,
                ))
            })
            .collect()
    }

    /// A rollout's actions that ended as succeeded or failed: (when, phase, state), oldest first.
    pub async fn finished_actions(&self, rollout_id: i64) -> Result<Vec<(i64, i64, String)>> {
        let rows = sqlx::query(
            "SELECT updated_at, phase, state FROM actions WHERE rollout_id = $1 \
             AND state IN ('succeeded', 'failed') ORDER BY updated_at, id",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("updated_at")?,
                    r.try_get("phase")?,
                    r.try_get("state")?,
                ))
            })
            .collect()
    }

    /// Failed actions by reason, most frequent first, of one rollout or (None) of all.
    pub async fn failure_reasons(
        &self,
        rollout_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT COALESCE(reason, '') AS reason, COUNT(*) AS n FROM actions \
             WHERE state = 'failed' AND ($1 < 0 OR rollout_id = $1) \
             GROUP BY COALESCE(reason, '') ORDER BY n DESC, reason LIMIT $2",
        )
        .bind(rollout_id.unwrap_or(-1))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("reason")?, r.try_get("n")?)))
            .collect()
    }
}
