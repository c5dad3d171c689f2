//! The management API's JSON bodies, shared by the handlers and the CLI so the two cannot drift.
//! Field names are snake_case; states use the kebab-case names of `rustupdate-rollout`.

use crate::store::{
    ActionRow, ArtifactRow, DownloadTotals, EventRow, FeedbackRow, PhaseCountsRow, RolloutRow,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDevice {
    pub controller_id: String,
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddedDevice {
    pub controller_id: String,
    /// The target token, shown once.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeTags {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub controller_id: String,
    pub device_type: Option<String>,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    /// `running_version` as the device reports it (attribute), if it does.
    pub running_version: Option<String>,
    /// The `device_type` the device reports in its inventory when it differs from
    /// `device_type` (the registered one, which rollouts target): shown, never obeyed.
    #[serde(default)]
    pub reported_device_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceDetail {
    pub device: Device,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    #[serde(flatten)]
    pub action: ActionRow,
    pub rollout_name: String,
    pub artifact_version: String,
    pub feedback: Vec<FeedbackRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRollout {
    pub name: String,
    pub artifact_id: i64,
    pub device_type: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// "1,10,50,100"
    pub phases: String,
    pub success_threshold: u8,
    /// "2" or "10%"
    pub error_threshold: String,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollout {
    #[serde(flatten)]
    pub rollout: RolloutRow,
    pub artifact: ArtifactRow,
    pub phases: Vec<Phase>,
    pub events: Vec<EventRow>,
    /// What its devices downloaded: full artifacts and delta patches, fallbacks and why.
    #[serde(default)]
    pub downloads: DownloadTotals,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// Cumulative percentage of the targeted devices this phase reaches.
    pub percent: u8,
    #[serde(flatten)]
    pub counts: PhaseCountsRow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub database: String,
}

/// `POST /api/v1/artifacts/{id}/deltas`: build a patch of the artifact from another one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDelta {
    pub base_artifact_id: i64,
}

/// `PUT /api/v1/trust` (the answer) and `GET /api/v1/trust/summary`: the tenant's current trust
/// document as devices will read it (docs/trust.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustSummary {
    pub version: u64,
    pub root_threshold: usize,
    /// Key ids (16 hex digits).
    pub root_keys: Vec<String>,
    pub release_threshold: usize,
    pub release_keys: Vec<String>,
    pub revoked: Vec<String>,
    /// Epoch milliseconds of the upload.
    pub updated_at: i64,
}
