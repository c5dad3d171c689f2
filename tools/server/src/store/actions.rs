//! Actions (one device's part in one rollout) and the feedback devices send about them.
//!
//! Feedback is bounded per action, as hawkBit bounds status entries per action: at most
//! [`FEEDBACK_ENTRIES_PER_ACTION`] entries and [`FEEDBACK_BYTES_PER_ACTION`] bytes of details are
//! kept. Each entry's details are cut to [`FEEDBACK_BYTES_PER_ENTRY`] (leading lines kept, then one
//! line saying what was cut). When a new entry would exceed a bound, the oldest entries are dropped,
//! except the first one: what is kept is how the action began and its latest history, which ends
//! with the outcome. `ActionRow::feedback_dropped` counts the dropped entries. Every feedback still
//! moves the action; only what is stored about it is bounded.

use super::database::{Store, now_ms};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRow {
    pub id: i64,
    pub rollout_id: i64,
    pub device_id: i64,
    pub state: String,
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Feedback entries dropped to keep the action within the feedback bounds.
    #[serde(default)]
    pub feedback_dropped: i64,
    /// Bytes served to the device for this action: of the full artifact, of a delta patch.
    #[serde(default)]
    pub full_bytes: i64,
    #[serde(default)]
    pub delta_bytes: i64,
    /// Why the device left the patch it was offered for the full artifact (its feedback).
    #[serde(default)]
    pub delta_fallback: Option<String>,
}

/// Most feedback entries kept per action.
pub const FEEDBACK_ENTRIES_PER_ACTION: i64 = 100;
/// Most bytes of details (as stored, JSON) kept per action.
pub const FEEDBACK_BYTES_PER_ACTION: i64 = 64 * 1024;
/// Most bytes of details (as stored, JSON) kept of one entry: a quarter of the action's bound,
/// so the first entry and the newest always fit together.
pub const FEEDBACK_BYTES_PER_ENTRY: usize = 16 * 1024;

/// An action with what the device needs to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionWithRollout {
    pub action: ActionRow,
    pub artifact_id: i64,
    pub download_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackRow {
    pub received_at: i64,
    /// `deployment` or `cancel`: which feedback resource the device posted to.
    pub channel: String,
    pub execution: String,
    pub finished: String,
    pub progress: Option<(i64, i64)>,
    pub code: Option<i64>,
    pub details: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NewFeedback<'a> {
    pub channel: &'a str,
    pub execution: &'a str,
    pub finished: &'a str,
    pub progress: Option<(i64, i64)>,
    pub code: Option<i64>,
    pub details: &'a [String],
}

/// See [`Store::poll_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSummary {
    pub has_open_action: bool,
    pub last_succeeded: Option<i64>,
}

const COLUMNS: &str = "a.id AS id, a.rollout_id AS rollout_id, a.device_id AS device_id, \
    a.state AS state, a.reason AS reason, a.created_at AS created_at, a.updated_at AS updated_at, \
    a.feedback_dropped AS feedback_dropped, a.full_bytes AS full_bytes, \
    a.delta_bytes AS delta_bytes, a.delta_fallback AS delta_fallback";

/// States in which an action is still the device's business.
pub const OPEN_STATES: &str = "('scheduled', 'running', 'downloaded', 'cancel-requested')";

fn action(row: &AnyRow) -> Result<ActionRow> {
    Ok(ActionRow {
        id: row.try_get("id")?,
        rollout_id: row.try_get("rollout_id")?,
        device_id: row.try_get("device_id")?,
        state: row.try_get("state")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        feedback_dropped: row.try_get("feedback_dropped")?,
        full_bytes: row.try_get("full_bytes")?,
        delta_bytes: row.try_get("delta_bytes")?,
        delta_fallback: row.try_get("delta_fallback")?,
    })
}

/// The details as stored: JSON, cut after the leading lines that fit in `max` bytes, with a last
/// line saying how much was cut. Pure.
pub fn stored_details(details: &[String], max: usize) -> Result<String> {
    let whole = serde_json::to_string(details)?;
    if whole.len() <= max {
        return Ok(whole);
    }
    // Room for the note line (its numbers have at most 20 digits each).
    let note_room = 160;
    let mut kept: Vec<String> = Vec::new();
    let mut used = 2; // the brackets
    for line in details {
        let cost = serde_json::to_string(line)?.len() + 1;
        if used + cost + note_room > max {
            break;
        }
        used += cost;
        kept.push(line.clone());
    }
    let dropped_lines = details.len() - kept.len();
    let dropped_bytes: usize = details[kept.len()..].iter().map(String::len).sum();
    kept.push(format!(
        "[rustupdate-server: {dropped_lines} more lines ({dropped_bytes} bytes) not kept; at most {max} bytes of details are kept per feedback]"
    ));
    Ok(serde_json::to_string(&kept)?)
}

fn with_rollout(row: &AnyRow) -> Result<ActionWithRollout> {
    Ok(ActionWithRollout {
        action: action(row)?,
        artifact_id: row.try_get("artifact_id")?,
        download_url: row.try_get("download_url")?,
    })
}

impl Store {
    /// The device's open action, oldest first (a device works on one at a time).
    pub async fn open_action(&self, device_id: i64) -> Result<Option<ActionWithRollout>> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS}, r.artifact_id AS artifact_id, r.download_url AS download_url \
             FROM actions a JOIN rollouts r ON r.id = a.rollout_id \
             WHERE a.device_id = $1 AND a.state IN {OPEN_STATES} ORDER BY a.id LIMIT 1"
        ))
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(with_rollout).transpose()
    }

    /// One of the device's actions by id: another device's action is `None`, exactly as a
    /// missing one, so that a device learns nothing about others.
    pub async fn device_action(
        &self,
        device_id: i64,
        action_id: i64,
    ) -> Result<Option<ActionWithRollout>> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS}, r.artifact_id AS artifact_id, r.download_url AS download_url \
             FROM actions a JOIN rollouts r ON r.id = a.rollout_id \
             WHERE a.device_id = $1 AND a.id = $2"
        ))
        .bind(device_id)
        .bind(action_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(with_rollout).transpose()
    }

    /// Creates the device's action in the rollout unless it exists (in any state), and returns
    /// whether it is new. Unique on (rollout, device): however many polls race, one action.
    /// The action carries the device's phase, so that counting a phase reads one index.
    pub async fn ensure_action(&self, rollout_id: i64, device_id: i64, phase: i64) -> Result<bool> {
        let now = now_ms();
        // Only while the rollout runs and its phase has reached the device's, checked in the
        // same statement: the caller's view of the rollout may be a second old
        // (`running_rollouts`) or raced by a pause.
        let done = sqlx::query(
            "INSERT INTO actions (rollout_id, device_id, phase, state, created_at, updated_at) \
             SELECT $1, $2, $3, 'scheduled', $4, $4 WHERE EXISTS (SELECT 1 FROM rollouts \
             WHERE id = $1 AND state = 'running' AND current_phase >= $3) \
             ON CONFLICT (rollout_id, device_id) DO NOTHING",
        )
        .bind(rollout_id)
        .bind(device_id)
        .bind(phase)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Compare-and-set of an action's state, with the feedback that caused it (if any) stored in
    /// the same transaction. `false` if the state was no longer `from` (a concurrent change).
    pub async fn transition_action(
        &self,
        action_id: i64,
        from: &str,
        to: &str,
        reason: Option<&str>,
        feedback: Option<&NewFeedback<'_>>,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // The write comes first so SQLite takes its write lock at once (no read-then-upgrade).
        let changed = sqlx::query(
            "UPDATE actions SET state = $1, reason = COALESCE($2, reason), updated_at = $3 \
             WHERE id = $4 AND state = $5",
        )
        .bind(to)
        .bind(reason)
        .bind(now)
        .bind(action_id)
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(f) = feedback {
            let details = stored_details(f.details, FEEDBACK_BYTES_PER_ENTRY)?;
            let inserted: i64 = sqlx::query(
                "INSERT INTO feedback (action_id, received_at, channel, execution, finished, \
                 progress_cnt, progress_of, code, details, details_bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(action_id)
            .bind(now)
            .bind(f.channel)
            .bind(f.execution)
            .bind(f.finished)
            .bind(f.progress.map(|p| p.0))
            .bind(f.progress.map(|p| p.1))
            .bind(f.code)
            .bind(&details)
            .bind(details.len() as i64)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            // Bounded: each round drops one entry, and there are at most the bound + 1.
            for _ in 0..=FEEDBACK_ENTRIES_PER_ACTION {
                let kept = sqlx::query(
                    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(details_bytes), 0) AS BIGINT) AS bytes, \
                     MIN(id) AS first FROM feedback WHERE action_id = $1",
                )
                .bind(action_id)
                .fetch_one(&mut *tx)
                .await?;
                let (n, bytes, first): (i64, i64, i64) = (
                    kept.try_get("n")?,
                    kept.try_get("bytes")?,
                    kept.try_get("first")?,
                );
                if n <= FEEDBACK_ENTRIES_PER_ACTION && bytes <= FEEDBACK_BYTES_PER_ACTION {
                    break;
                }
                // The oldest entry but the first; never the one just stored.
                let dropped = sqlx::query(
                    "DELETE FROM feedback WHERE id = (SELECT MIN(id) FROM feedback \
                     WHERE action_id = $1 AND id > $2 AND id < $3)",
                )
                .bind(action_id)
                .bind(first)
                .bind(inserted)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if dropped == 0 {
                    break;
                }
                sqlx::query(
                    "UPDATE actions SET feedback_dropped = feedback_dropped + 1 WHERE id = $1",
                )
                .bind(action_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Open actions of a rollout (to cancel them).
    pub async fn open_actions_of_rollout(&self, rollout_id: i64) -> Result<Vec<ActionRow>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM actions a WHERE a.rollout_id = $1 AND a.state IN {OPEN_STATES}"
        ))
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action).collect()
    }

    /// A device's actions, newest first.
    pub async fn actions_of_device(&self, device_id: i64) -> Result<Vec<ActionRow>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM actions a WHERE a.device_id = $1 ORDER BY a.id DESC"
        ))
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action).collect()
    }

    /// What an idle poll needs of the device's actions, in one statement: whether one is open,
    /// and the newest succeeded one's id (hawkBit's installedBase).
    pub async fn poll_summary(&self, device_id: i64) -> Result<PollSummary> {
        let row = sqlx::query(sql!(
            "SELECT (SELECT a.id FROM actions a WHERE a.device_id = $1 \
             AND a.state IN {OPEN_STATES} ORDER BY a.id LIMIT 1) AS open_id, \
             (SELECT a.id FROM actions a WHERE a.device_id = $1 AND a.state = 'succeeded' \
             ORDER BY a.id DESC LIMIT 1) AS succeeded_id"
        ))
        .bind(device_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(PollSummary {
            has_open_action: row.try_get::<Option<i64>, _>("open_id")?.is_some(),
            last_succeeded: row.try_get("succeeded_id")?,
        })
    }

    pub async fn feedback(&self, action_id: i64) -> Result<Vec<FeedbackRow>> {
        let rows = sqlx::query(
            "SELECT received_at, channel, execution, finished, progress_cnt, progress_of, code, \
             details FROM feedback WHERE action_id = $1 ORDER BY id",
        )
        .bind(action_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let cnt: Option<i64> = r.try_get("progress_cnt")?;
                let of: Option<i64> = r.try_get("progress_of")?;
                let details: String = r.try_get("details")?;
                Ok(FeedbackRow {
                    received_at: r.try_get("received_at")?,
                    channel: r.try_get("channel")?,
                    execution: r.try_get("execution")?,
                    finished: r.try_get("finished")?,
                    progress: cnt.zip(of),
                    code: r.try_get("code")?,
                    details: serde_json::from_str(&details)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_details_are_stored_whole() {
        let details = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(stored_details(&details, 100).unwrap(), r#"["a","b"]"#);
    }

    #[test]
    fn long_details_keep_the_leading_lines_and_say_what_was_cut() {
        let details: Vec<String> = (0..100).map(|i| format!("{i:0>2000}")).collect();
        let stored = stored_details(&details, FEEDBACK_BYTES_PER_ENTRY).unwrap();
        assert!(stored.len() <= FEEDBACK_BYTES_PER_ENTRY, "{}", stored.len());
        let lines: Vec<String> = serde_json::from_str(&stored).unwrap();
        assert_eq!(lines[0], details[0]);
        let note = lines.last().unwrap();
        assert!(
            note.contains(&format!("{} more lines", 100 - (lines.len() - 1))),
            "{note}"
        );
    }
}
