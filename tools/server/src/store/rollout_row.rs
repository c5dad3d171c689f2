//! A rollout as stored: what [`super::rollouts`] reads and writes, and what the running rollouts'
//! cache ([`super::running_rollouts`]) holds.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRow {
    pub id: i64,
    pub name: String,
    pub artifact_id: i64,
    pub device_type: String,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    /// Cumulative percentages, as `rustupdate_rollout::Phases` prints them ("1,10,50,100").
    /// Named `phase_percents` in JSON: the API's rollout view has a `phases` list beside it.
    #[serde(rename = "phase_percents")]
    pub phases: String,
    pub success_threshold: i64,
    pub error_threshold: String,
    pub download_url: Option<String>,
    pub state: String,
    pub current_phase: i64,
    pub pause_reason: Option<String>,
    /// Failures of the current phase the operator accepted by resuming (see
    /// `rustupdate_rollout::PhaseCounts::accepted_failures`).
    pub accepted_failures: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
}
