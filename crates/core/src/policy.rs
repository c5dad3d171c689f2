//! Device policy on a verified artifact, decided before anything is written.

use crate::{Error, SlotId};
use rustupdate_format::{Manifest, Payload, PayloadType};

/// Everything needed to install, checked up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    pub target: SlotId,
    pub payload_index: usize,
    pub size: u64,
}

/// Checks device type, security version and payloads; picks the inactive slot.
pub fn plan_install(
    manifest: &Manifest,
    device_type: &str,
    device_security_version: u64,
    booted: SlotId,
) -> Result<InstallPlan, Error> {
    if !manifest.compatible.iter().any(|t| t == device_type) {
        return Err(Error::IncompatibleDevice {
            device_type: device_type.into(),
            compatible: manifest.compatible.join(", "),
        });
    }
    let artifact_security = manifest.security_version.unwrap_or(0);
    if artifact_security < device_security_version {
        return Err(Error::SecurityDowngrade {
            artifact: artifact_security,
            device: device_security_version,
        });
    }
    let rootfs: Vec<(usize, &Payload)> = manifest
        .payloads
        .iter()
        .enumerate()
        .filter(|(_, p)| p.payload_type == PayloadType::RootfsImage && p.target == "rootfs")
        .collect();
    // Exactly one rootfs image: other payload types are for later format versions.
    let [(payload_index, payload)] = rootfs.as_slice() else {
        return Err(Error::NoRootfsPayload);
    };
    if manifest.payloads.len() != 1 {
        return Err(Error::NoRootfsPayload);
    }
    Ok(InstallPlan {
        target: booted.other(),
        payload_index: *payload_index,
        size: payload.size,
    })
}
