//! Rollouts, their members (device -> phase) and their event log.

use super::database::{Store, now_ms};
use super::rollout_row::RolloutRow;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct NewRollout {
    pub name: String,
    pub artifact_id: i64,
    pub device_type: String,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub phases: String,
    pub success_threshold: i64,
    pub error_threshold: String,
    pub download_url: Option<String>,
    pub state: String,
}

/// One phase's members and how their actions ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseCountsRow {
    pub members: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    /// Members whose action exists and has not ended.
    pub in_progress: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub at: i64,
    pub event: String,
    pub phase: i64,
    pub detail: String,
}

const COLUMNS: &str = "id, name, artifact_id, device_type, tags, attributes, phases, \
    success_threshold, error_threshold, download_url, state, current_phase, pause_reason, \
    accepted_failures, created_at, started_at";

fn rollout(row: &AnyRow) -> Result<RolloutRow> {
    let tags: String = row.try_get("tags")?;
    let attributes: String = row.try_get("attributes")?;
    Ok(RolloutRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        artifact_id: row.try_get("artifact_id")?,
        device_type: row.try_get("device_type")?,
        tags: serde_json::from_str(&tags)?,
        attributes: serde_json::from_str(&attributes)?,
        phases: row.try_get("phases")?,
        success_threshold: row.try_get("success_threshold")?,
        error_threshold: row.try_get("error_threshold")?,
        download_url: row.try_get("download_url")?,
        state: row.try_get("state")?,
        current_phase: row.try_get("current_phase")?,
        pause_reason: row.try_get("pause_reason")?,
        accepted_failures: row.try_get("accepted_failures")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
    })
}

impl Store {
    pub async fn add_rollout(&self, new: &NewRollout) -> Result<RolloutRow> {
        let row = sqlx::query(sql!(
            "INSERT INTO rollouts (name, artifact_id, device_type, tags, attributes, phases, \
             success_threshold, error_threshold, download_url, state, current_phase, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11) RETURNING {COLUMNS}"
        ))
        .bind(&new.name)
        .bind(new.artifact_id)
        .bind(&new.device_type)
        .bind(serde_json::to_string(&new.tags)?)
        .bind(serde_json::to_string(&new.attributes)?)
        .bind(&new.phases)
        .bind(new.success_threshold)
        .bind(&new.error_threshold)
        .bind(&new.download_url)
        .bind(&new.state)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        self.running.forget();
        rollout(&row)
    }

    pub async fn rollout(&self, id: i64) -> Result<Option<RolloutRow>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM rollouts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rollout).transpose()
    }

    pub async fn rollouts(&self) -> Result<Vec<RolloutRow>> {
        let rows = sqlx::query(sql!("SELECT {COLUMNS} FROM rollouts ORDER BY id DESC"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rollout).collect()
    }

    /// Rollouts in `state`, newest first.
    pub async fn rollouts_in_state(&self, state: &str) -> Result<Vec<RolloutRow>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM rollouts WHERE state = $1 ORDER BY id DESC"
        ))
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout).collect()
    }

    /// Compare-and-set of the rollout's state and phase. `true` if this call changed the row;
    /// then (and only then) `event` is recorded, so every transition is logged exactly once
    /// however many server processes race for it.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_rollout(
        &self,
        id: i64,
        from: (&str, i64),
        to: (&str, i64),
        pause_reason: Option<&str>,
        accepted_failures: i64,
        event: &str,
        detail: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE rollouts SET state = $1, current_phase = $2, pause_reason = $3, \
             started_at = COALESCE(started_at, $4), accepted_failures = $8 \
             WHERE id = $5 AND state = $6 AND current_phase = $7",
        )
        .bind(to.0)
        .bind(to.1)
        .bind(pause_reason)
        .bind((to.0 == "running").then(now_ms))
        .bind(id)
        .bind(from.0)
        .bind(from.1)
        .bind(accepted_failures)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            sqlx::query(
                "INSERT INTO rollout_events (rollout_id, at, event, phase, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(now_ms())
            .bind(event)
            .bind(to.1)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if changed {
            self.running.forget();
        }
        Ok(changed)
    }

    pub async fn events(&self, rollout_id: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT at, event, phase, detail FROM rollout_events WHERE rollout_id = $1 ORDER BY id",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    phase: r.try_get("phase")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

    /// Adds members; a device already in the rollout keeps its phase.
    pub async fn add_members(
        &self,
        rollout_id: i64,
        members: &[(i64, i64)],
        late: bool,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (device_id, phase) in members {
            sqlx::query(
                "INSERT INTO rollout_members (rollout_id, device_id, phase, late) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (rollout_id, device_id) DO NOTHING",
            )
            .bind(rollout_id)
            .bind(device_id)
            .bind(phase)
            .bind(i64::from(late))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The device's phase in the rollout, if it is a member.
    pub async fn member_phase(&self, rollout_id: i64, device_id: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT phase FROM rollout_members WHERE rollout_id = $1 AND device_id = $2",
        )
        .bind(rollout_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("phase")).transpose()?)
    }

    /// Counts per phase (index = phase), for `phases` phases: two counts over indexes
    /// (members by phase, actions by phase and state), not a join over the whole rollout, so a
    /// feedback of a 10,000-device phase stays cheap.
    pub async fn phase_counts(
        &self,
        rollout_id: i64,
        phases: usize,
    ) -> Result<Vec<PhaseCountsRow>> {
        let mut counts = vec![PhaseCountsRow::default(); phases];
        let slot = |phase: i64| usize::try_from(phase).ok().filter(|p| *p < phases);
        let members = sqlx::query(
            "SELECT phase, COUNT(*) AS n FROM rollout_members WHERE rollout_id = $1 GROUP BY phase",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        for row in &members {
            if let Some(p) = slot(row.try_get("phase")?) {
                counts[p].members = row.try_get("n")?;
            }
        }
        let actions = sqlx::query(
            "SELECT phase, state, COUNT(*) AS n FROM actions WHERE rollout_id = $1 \
             GROUP BY phase, state",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        for row in &actions {
            let Some(p) = slot(row.try_get("phase")?) else {
                continue;
            };
            let n: i64 = row.try_get("n")?;
            let state: String = row.try_get("state")?;
            match state.as_str() {
                "succeeded" => counts[p].succeeded += n,
                "failed" => counts[p].failed += n,
                "canceled" => counts[p].canceled += n,
                _ => counts[p].in_progress += n,
            }
        }
        Ok(counts)
    }
}

impl Store {
    /// The running rollouts, newest first, at most
    /// [`RUNNING_ROLLOUTS_TTL`](super::running_rollouts::RUNNING_ROLLOUTS_TTL) old.
    pub async fn running_rollouts(&self) -> Result<Arc<Vec<RolloutRow>>> {
        let asked = Instant::now();
        let generation = match self.running.fresh(asked) {
            Ok(rows) => return Ok(rows),
            Err(generation) => generation,
        };
        let rows = Arc::new(self.rollouts_in_state("running").await?);
        // Stamped with the time of asking, and kept only if no local change ran meanwhile.
        self.running.keep(generation, asked, rows.clone());
        Ok(rows)
    }
}
