//! What the client remembers between boots, persisted atomically on the data partition by a
//! [`StateStore`] adapter (JSON today; the `format` field allows changes later).

use crate::{Error, SlotId};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Outcome {
    pub transaction: String,
    pub version: String,
    pub result: OutcomeKind,
    pub detail: String,
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
    /// The install did not complete (error, interrupted, cancelled); the old slot stays.
    Failed,
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
