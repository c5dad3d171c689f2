//! The errors of the update logic. What each means for the user (a rejected artifact or a failure
//! to act) is decided here, once: [`Error::is_rejection`]. It does not map errors to exit codes
//! (the client does).

use crate::SlotId;
use thiserror::Error;

/// An adapter's error, kept whole so that its source chain reaches the user.
pub type AdapterError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the update logic. Adapter failures arrive as `Adapter`, with the adapter's error
/// (which names the file or device) as the source.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Artifact(#[from] rustupdate_verify::Error),
    #[error("artifact is for device types [{compatible}], this device is {device_type:?}")]
    IncompatibleDevice {
        device_type: String,
        compatible: String,
    },
    #[error(
        "artifact security version {artifact} is lower than the device's committed security version {device}"
    )]
    SecurityDowngrade { artifact: u64, device: u64 },
    #[error("artifact has no rootfs-image payload for slot class \"rootfs\"")]
    NoRootfsPayload,
    #[error("payload of {size} bytes does not fit slot {slot} ({capacity} bytes)")]
    SlotTooSmall {
        slot: SlotId,
        size: u64,
        capacity: u64,
    },
    #[error("an update is already pending ({version} in slot {slot}): commit or roll back first")]
    UpdatePending { version: String, slot: SlotId },
    #[error(
        "the device booted slot {booted}, but the bootloader environment selects {env}: reboot first"
    )]
    BootMismatch { booted: SlotId, env: SlotId },
    #[error("nothing to {action}: no update is on trial")]
    NoTrial { action: &'static str },
    /// `reason` names the hook script that refused and how.
    #[error("a {event} hook refused: {reason}")]
    HookRefused {
        event: &'static str,
        reason: crate::hooks::HookError,
    },
    /// The install was stopped on request while it wrote the inactive slot (the fleet server
    /// cancelled the action); nothing was armed.
    #[error("install stopped: {reason}")]
    Stopped { reason: String },
    /// An interrupted install cannot continue where it stopped; the caller starts it afresh.
    #[error("cannot resume the interrupted install: {reason}")]
    CannotResume { reason: String },
    /// The configured decryption key cannot be used (not the artifact's fault).
    #[error("keys.decryption-key: {0}")]
    DecryptionKey(String),
    #[error("{what}")]
    Adapter {
        what: &'static str,
        #[source]
        source: AdapterError,
    },
}

impl Error {
    pub fn adapter(what: &'static str, err: impl Into<AdapterError>) -> Error {
        Error::Adapter {
            what,
            source: err.into(),
        }
    }

    /// A delta that cannot rebuild the image on this device; a full download may still work.
    pub fn is_delta(&self) -> bool {
        matches!(self, Error::Artifact(err) if err.is_delta())
    }

    /// A verdict on the artifact (its content, or this device's policy for it), as opposed to a
    /// failure to read it or to act on the device. The client exits with "rejected" for these.
    pub fn is_rejection(&self) -> bool {
        match self {
            Error::Artifact(err) => !err.is_io() && !err.is_delta(),
            Error::IncompatibleDevice { .. }
            | Error::SecurityDowngrade { .. }
            | Error::NoRootfsPayload
            | Error::SlotTooSmall { .. } => true,
            Error::UpdatePending { .. }
            | Error::BootMismatch { .. }
            | Error::NoTrial { .. }
            | Error::HookRefused { .. }
            | Error::Stopped { .. }
            | Error::CannotResume { .. }
            | Error::DecryptionKey(_)
            | Error::Adapter { .. } => false,
        }
    }
}

/// An error with its sources, `a: b: c`, for text that is stored (an outcome's detail) rather than
/// printed through `anyhow`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_errors_keep_their_source() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::adapter("state file", io);
        assert_eq!(err.to_string(), "state file");
        assert_eq!(chain(&err), "state file: disk on fire");
        assert!(!err.is_rejection());
        assert!(Error::NoRootfsPayload.is_rejection());
    }
}
