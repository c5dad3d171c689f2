//! Fleet-wide counts for `/metrics`: one aggregate query per table, over indexes where there
//! are any, so a scrape stays cheap at 100,000 devices.

use super::database::Store;
use anyhow::Result;
use sqlx::Row;

/// What the fleet holds, counted at one moment (each count in its own query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub devices: i64,
    pub artifacts: i64,
    /// (state, count), ordered by state; states no action holds are absent.
    pub actions_by_state: Vec<(String, i64)>,
    /// (state, count), ordered by state; states no rollout holds are absent.
    pub rollouts_by_state: Vec<(String, i64)>,
    /// (state, count) of delta patches.
    pub patches_by_state: Vec<(String, i64)>,
    /// Bytes served to devices for their actions: of full artifacts, of delta patches.
    pub served_full_bytes: i64,
    pub served_delta_bytes: i64,
    /// Actions whose device fell back from a patch to the full artifact.
    pub delta_fallbacks: i64,
}

impl Store {
    pub async fn fleet_counts(&self) -> Result<FleetCounts> {
        Ok(FleetCounts {
            devices: self.count("SELECT COUNT(*) AS n FROM devices").await?,
            artifacts: self.count("SELECT COUNT(*) AS n FROM artifacts").await?,
            actions_by_state: self
                .count_by_state(
                    "SELECT state, COUNT(*) AS n FROM actions GROUP BY state ORDER BY state",
                )
                .await?,
            rollouts_by_state: self
                .count_by_state(
                    "SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state ORDER BY state",
                )
                .await?,
            patches_by_state: self
                .count_by_state(
                    "SELECT state, COUNT(*) AS n FROM delta_patches GROUP BY state ORDER BY state",
                )
                .await?,
            served_full_bytes: self
                .count("SELECT CAST(COALESCE(SUM(full_bytes), 0) AS BIGINT) AS n FROM actions")
                .await?,
            served_delta_bytes: self
                .count("SELECT CAST(COALESCE(SUM(delta_bytes), 0) AS BIGINT) AS n FROM actions")
                .await?,
            delta_fallbacks: self
                .count("SELECT COUNT(*) AS n FROM actions WHERE delta_fallback IS NOT NULL")
                .await?,
        })
    }

    async fn count(&self, query: &'static str) -> Result<i64> {
        Ok(sqlx::query(query)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    async fn count_by_state(&self, query: &'static str) -> Result<Vec<(String, i64)>> {
        sqlx::query(query)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
            .collect()
    }
}
