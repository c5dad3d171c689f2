//! Device policy on a verified artifact, decided before anything is written: the device type, the
//! security version, the payloads and the target slot's capacity. [`plan_install`] turns a
//! manifest into an [`InstallPlan`] or the first refusal; [`device_checks`] gives every verdict,
//! for `show-artifact`. It does not check signatures (`rustupdate-verify` does, before the manifest
//! is even parsed) and writes nothing.

use crate::{Error, SlotId};
use rustupdate_format::{Manifest, Payload, PayloadType};

/// What the policy needs to know about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts<'a> {
    pub device_type: &'a str,
    /// The highest security version committed on the device (anti-downgrade floor).
    pub security_version: u64,
    pub booted: SlotId,
}

/// Everything needed to install, checked up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    pub target: SlotId,
    pub payload_index: usize,
    pub size: u64,
}

/// One policy check and its verdict.
#[derive(Debug)]
pub struct Check {
    /// What was checked: `device type`, `security version` or `payloads`.
    pub what: &'static str,
    pub verdict: Result<(), Error>,
}

/// The checks that need no slot, in the order an install makes them.
pub fn device_checks(manifest: &Manifest, device_type: &str, security_version: u64) -> [Check; 3] {
    [
        Check {
            what: "device type",
            verdict: check_device_type(manifest, device_type),
        },
        Check {
            what: "security version",
            verdict: check_security_version(manifest, security_version),
        },
        Check {
            what: "payloads",
            verdict: rootfs_payload(manifest).map(|_| ()),
        },
    ]
}

/// Checks device type, security version and payloads, picks the inactive slot and checks that
/// the image fits it (`capacity` gives a slot's size).
pub fn plan_install(
    manifest: &Manifest,
    device: &DeviceFacts<'_>,
    capacity: impl FnOnce(SlotId) -> Result<u64, Error>,
) -> Result<InstallPlan, Error> {
    check_device_type(manifest, device.device_type)?;
    check_security_version(manifest, device.security_version)?;
    let (payload_index, payload) = rootfs_payload(manifest)?;
    let target = device.booted.other();
    let capacity = capacity(target)?;
    if payload.size > capacity {
        return Err(Error::SlotTooSmall {
            slot: target,
            size: payload.size,
            capacity,
        });
    }
    Ok(InstallPlan {
        target,
        payload_index,
        size: payload.size,
    })
}

fn check_device_type(manifest: &Manifest, device_type: &str) -> Result<(), Error> {
    if manifest.compatible.iter().any(|t| t == device_type) {
        return Ok(());
    }
    Err(Error::IncompatibleDevice {
        device_type: device_type.into(),
        compatible: manifest.compatible.join(", "),
    })
}

fn check_security_version(manifest: &Manifest, device_security_version: u64) -> Result<(), Error> {
    // No security version counts as 0.
    let artifact = manifest.security_version.unwrap_or(0);
    if artifact < device_security_version {
        return Err(Error::SecurityDowngrade {
            artifact,
            device: device_security_version,
        });
    }
    Ok(())
}

/// Exactly one rootfs image and nothing else: other payload types are for later format versions.
fn rootfs_payload(manifest: &Manifest) -> Result<(usize, &Payload), Error> {
    match manifest.payloads.as_slice() {
        [payload]
            if payload.payload_type == PayloadType::RootfsImage && payload.target == "rootfs" =>
        {
            Ok((0, payload))
        }
        _ => Err(Error::NoRootfsPayload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustupdate_testkit::sample_manifest;

    fn manifest(compatible: &[&str], security_version: Option<u64>) -> Manifest {
        Manifest {
            compatible: compatible.iter().map(|s| s.to_string()).collect(),
            security_version,
            ..sample_manifest()
        }
    }

    fn facts(security_version: u64, booted: SlotId) -> DeviceFacts<'static> {
        DeviceFacts {
            device_type: "board",
            security_version,
            booted,
        }
    }

    const ROOMY: fn(SlotId) -> Result<u64, Error> = |_| Ok(1 << 30);

    #[test]
    fn plans_the_inactive_slot() {
        let m = manifest(&["x", "board"], Some(3));
        let plan = plan_install(&m, &facts(3, SlotId::A), ROOMY).unwrap();
        assert_eq!(
            plan,
            InstallPlan {
                target: SlotId::B,
                payload_index: 0,
                size: m.payloads[0].size
            }
        );
        let m = manifest(&["board"], None);
        assert_eq!(
            plan_install(&m, &facts(0, SlotId::B), ROOMY)
                .unwrap()
                .target,
            SlotId::A
        );
    }

    #[test]
    fn refuses_other_devices_downgrades_and_small_slots() {
        let plan = |m: &Manifest, sv| plan_install(m, &facts(sv, SlotId::A), ROOMY);
        let err = plan(&manifest(&["other"], None), 0).unwrap_err();
        assert!(matches!(err, Error::IncompatibleDevice { .. }), "{err}");
        let err = plan(&manifest(&["board"], Some(2)), 3).unwrap_err();
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
        assert!(plan(&manifest(&["board"], None), 1).is_err());
        let mut m = manifest(&["board"], None);
        m.payloads[0].target = "bootloader".into();
        assert!(matches!(plan(&m, 0), Err(Error::NoRootfsPayload)));
        let m = manifest(&["board"], None);
        let err = plan_install(&m, &facts(0, SlotId::A), |_| Ok(10)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SlotTooSmall {
                    slot: SlotId::B,
                    capacity: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_rejection());
    }

    #[test]
    fn device_checks_give_every_verdict() {
        let checks = device_checks(&manifest(&["other"], Some(1)), "board", 2);
        let failed: Vec<_> = checks
            .iter()
            .filter(|c| c.verdict.is_err())
            .map(|c| c.what)
            .collect();
        assert_eq!(failed, ["device type", "security version"]);
    }
}
