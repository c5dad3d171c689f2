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

#[cfg(test)]
mod tests {
    use super::*;
    use rustupdate_format::{Chunking, Compression, Segment, Sha256Hex};

    fn manifest(compatible: &[&str], security_version: Option<u64>) -> Manifest {
        Manifest {
            format_version: 1,
            name: "img".into(),
            version: "2".into(),
            compatible: compatible.iter().map(|s| s.to_string()).collect(),
            security_version,
            created: 0,
            payloads: vec![Payload {
                name: "rootfs".into(),
                payload_type: PayloadType::RootfsImage,
                target: "rootfs".into(),
                size: 4096,
                sha256: Sha256Hex([0; 32]),
                compression: Compression::Zstd,
                chunking: Chunking::default(),
                segments: vec![Segment {
                    entries: 1,
                    table_sha256: Sha256Hex([0; 32]),
                    data_size: 10,
                }],
            }],
        }
    }

    #[test]
    fn plans_the_inactive_slot() {
        let plan =
            plan_install(&manifest(&["x", "board"], Some(3)), "board", 3, SlotId::A).unwrap();
        assert_eq!(
            plan,
            InstallPlan {
                target: SlotId::B,
                payload_index: 0,
                size: 4096
            }
        );
        assert_eq!(
            plan_install(&manifest(&["board"], None), "board", 0, SlotId::B)
                .unwrap()
                .target,
            SlotId::A
        );
    }

    #[test]
    fn refuses_other_devices_and_downgrades() {
        let err = plan_install(&manifest(&["other"], None), "board", 0, SlotId::A).unwrap_err();
        assert!(matches!(err, Error::IncompatibleDevice { .. }), "{err}");
        let err = plan_install(&manifest(&["board"], Some(2)), "board", 3, SlotId::A).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SecurityDowngrade {
                    artifact: 2,
                    device: 3
                }
            ),
            "{err}"
        );
        // No security version counts as 0.
        assert!(plan_install(&manifest(&["board"], None), "board", 1, SlotId::A).is_err());
        let mut m = manifest(&["board"], None);
        m.payloads[0].target = "bootloader".into();
        assert!(matches!(
            plan_install(&m, "board", 0, SlotId::A),
            Err(Error::NoRootfsPayload)
        ));
    }
}
