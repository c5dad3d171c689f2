//! What the [`Updater`](crate::Updater) reports back: the result of a boot-time step, of an
//! install, and the device status. Each is one typed value serialized for `--json` and displayed
//! for people with the same names (see [`crate::state`] and [`crate::lifecycle`] for the names).
//! It decides nothing and maps nothing to exit codes (the client does).

use crate::SlotId;
use crate::lifecycle::SituationKind;
use crate::state::{Outcome, Pending, Release};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
#[non_exhaustive]
pub enum BootReport {
    /// Nothing was pending.
    Nothing,
    /// The new slot is installed and armed; reboot to try it.
    AwaitingReboot { version: String },
    /// The trial passed; the new slot is committed.
    Committed { version: String },
    /// The trial failed; the device was switched back and a reboot was requested.
    RollingBack { reason: String },
    /// A finished update was recorded (fallback, rollback, interrupted install).
    Recorded { outcome: Outcome },
    /// A fleet install was interrupted before its slot was armed; the daemon redoes or drops it.
    Interrupted { version: String },
    /// The rollback guard ran before its time limit: nothing was looked at.
    GuardNotDue { uptime_secs: u64, limit_secs: u64 },
}

impl fmt::Display for BootReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootReport::Nothing => write!(f, "nothing to do: no update pending"),
            BootReport::AwaitingReboot { version } => {
                write!(f, "{version} is installed and armed; reboot to try it")
            }
            BootReport::Committed { version } => write!(f, "committed {version}"),
            BootReport::Interrupted { version } => write!(
                f,
                "the install of {version} was interrupted; the daemon resumes it"
            ),
            BootReport::RollingBack { reason } => write!(f, "rolled back: {reason}"),
            BootReport::Recorded { outcome } => write!(
                f,
                "update {} {}: {}",
                outcome.version, outcome.result, outcome.detail
            ),
            BootReport::GuardNotDue {
                uptime_secs,
                limit_secs,
            } => write!(
                f,
                "rollback guard: uptime {uptime_secs} s is below health.trial-timeout-secs \
                 {limit_secs}; nothing to do"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstallReport {
    pub transaction: String,
    pub slot: SlotId,
    pub version: String,
    pub bytes: u64,
}

/// The state of the device for `rustupdate status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    pub device_type: String,
    pub booted_slot: SlotId,
    pub bootloader: BootEnvStatus,
    pub situation: SituationKind,
    pub committed: Option<Release>,
    pub security_version: u64,
    pub pending: Option<Pending>,
    pub last_result: Option<Outcome>,
    pub recovered_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BootEnvStatus {
    pub slot: SlotId,
    pub upgrade_available: bool,
    pub bootcount: u32,
    pub bootlimit: u32,
}
