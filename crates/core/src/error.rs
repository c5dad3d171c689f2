use crate::SlotId;
use thiserror::Error;

/// Errors of the update logic. Adapter failures arrive as `Adapter` with the adapter's message
/// (which names the file or device).
#[derive(Debug, Error)]
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
    /// `reason` names the hook script that refused.
    #[error("a {event} hook refused: {reason}")]
    HookRefused { event: &'static str, reason: String },
    #[error("{what}: {message}")]
    Adapter { what: &'static str, message: String },
}

impl Error {
    pub fn adapter(what: &'static str, err: impl std::fmt::Display) -> Error {
        Error::Adapter {
            what,
            message: err.to_string(),
        }
    }
}
