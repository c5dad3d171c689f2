//! What the client remembers between boots, persisted atomically on the data partition by a
//! [`StateStore`] adapter (JSON today; the `format` field allows changes later), and the names of
//! stages and outcomes, one for text and JSON. It does not decide transitions (the
//! [`Updater`](crate::Updater) does) or touch a file (the adapters do).

use crate::{Error, SlotId};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// The release the device falls back to: the last committed one.
    pub committed: Option<Release>,
    /// Highest security version ever committed (anti-downgrade floor).
    pub security_version: u64,
    /// An update in progress (writing, installed and waiting for reboot, on trial, rolling back).
    pub pending: Option<Pending>,
    /// How the last update ended.
    pub last_result: Option<Outcome>,
    /// Counter for transaction ids (no clock needed).
    pub transactions: u64,
    /// The last fleet action whose final result the server accepted. The result of
    /// `last_result.action` is still owed to the server while this differs (see [`crate::daemon`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_action: Option<u64>,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            committed: None,
            security_version: 0,
            pending: None,
            last_result: None,
            transactions: 0,
            reported_action: None,
        }
    }
}

/// An artifact installed in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Release {
    pub slot: SlotId,
    pub name: String,
    pub version: String,
    pub security_version: Option<u64>,
    /// sha256 of the image written to the slot (hex).
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Pending {
    pub transaction: String,
    pub release: Release,
    pub stage: Stage,
    /// The fleet server's action this install belongs to (`rustupdate daemon`); `None` for
    /// installs by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<u64>,
    /// While writing a fleet install: how far the image is durably written and verified, so an
    /// install interrupted by a power cut continues there instead of at byte 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// A segment boundary of the artifact's image up to which the slot holds verified, fsynced
/// data (see `rustupdate_verify::ResumePoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Checkpoint {
    pub segment: u64,
    pub image_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "stage")]
pub enum Stage {
    /// Bytes are going to the inactive slot; its content is not usable.
    Writing,
    /// Image written and verified; the bootloader is not switched yet.
    Written,
    /// The bootloader will try the new slot on the next boot.
    Activated,
    /// The trial failed; the bootloader was (or is being) switched back.
    RollingBack { reason: String },
}

impl Stage {
    /// The one name of the stage (the JSON `stage` tag).
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Writing => "writing",
            Stage::Written => "written",
            Stage::Activated => "activated",
            Stage::RollingBack { .. } => "rolling-back",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::RollingBack { reason } => write!(f, "{}: {reason}", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Outcome {
    pub transaction: String,
    pub version: String,
    pub result: OutcomeKind,
    pub detail: String,
    /// The fleet action it answers, carried over from [`Pending::action`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    /// The new slot passed its health checks and is the default now.
    Committed,
    /// The client rolled back (failed health check, refused hook, rollback guard, by hand).
    RolledBack,
    /// The bootloader gave up on the new slot by itself (it never came up far enough).
    FellBack,
    /// The install did not complete (error, interrupted, cancelled by hand); the old slot stays.
    Failed,
    /// The artifact was refused before a byte was written (signature, device type, security
    /// version, malformed).
    Rejected,
    /// The fleet server cancelled the action before the new slot was armed.
    Canceled,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 6] = [
        OutcomeKind::Committed,
        OutcomeKind::RolledBack,
        OutcomeKind::FellBack,
        OutcomeKind::Failed,
        OutcomeKind::Rejected,
        OutcomeKind::Canceled,
    ];

    /// The one name of the outcome, in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Committed => "committed",
            OutcomeKind::RolledBack => "rolled-back",
            OutcomeKind::FellBack => "fell-back",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::Canceled => "canceled",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of loading the state: a corrupt file is moved aside by the adapter and reported here.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub state: State,
    /// Set when the stored state was unreadable: what was wrong and where the old file went.
    pub recovered_from: Option<String>,
}

/// Persists [`State`]. `store` must be atomic and durable (temp file, fsync, rename, fsync dir).
pub trait StateStore {
    fn load(&mut self) -> Result<Loaded, Error>;
    fn store(&mut self, state: &State) -> Result<(), Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_names_agree() {
        for kind in OutcomeKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.name())
            );
            assert_eq!(kind.to_string(), kind.name());
        }
        let rolling = Stage::RollingBack {
            reason: "health".into(),
        };
        for stage in [Stage::Writing, Stage::Written, Stage::Activated, rolling] {
            assert_eq!(serde_json::to_value(&stage).unwrap()["stage"], stage.name());
            assert!(stage.to_string().starts_with(stage.name()));
        }
    }
}
