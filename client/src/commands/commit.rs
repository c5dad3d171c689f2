//! `rustupdate commit`, `rollback` and `guard`: the boot-time decisions.

use crate::config::Config;
use crate::device::Device;
use crate::exit;
use crate::sys::reboot::CommandReboot;
use crate::trust_store;
use anyhow::Result;
use rustupdate_core::report::BootReport;
use rustupdate_core::seams::Reboot;
use std::time::Duration;

pub fn commit(config: &Config) -> Result<u8> {
    let mut device = Device::open(config)?;
    let report = device.updater()?.boot_check()?;
    let status = device.updater()?.status()?;
    // The decision above is made and recorded whatever happens to the trust document here:
    // a failure is logged, and installs refuse to run until the document is sound.
    if let Some(store) = trust_store::TrustStore::from_config(config)
        && let Err(err) = store.refresh()
    {
        log::error!("trust document: {err:#}");
    }
    // Only once the decision is made: a trial that can still roll back changes no trust.
    if let Err(err) = trust_store::settle_carried(
        config,
        status.committed.as_ref().map(|r| r.version.as_str()),
        status.pending.as_ref().map(|p| p.release.version.as_str()),
    ) {
        log::error!("the trust document a release carries: {err:#}");
    }
    Ok(print_report(&report))
}

pub fn rollback(config: &Config) -> Result<u8> {
    let mut device = Device::open(config)?;
    let report = device.updater()?.rollback("requested by hand")?;
    print_report(&report);
    Ok(exit::OK)
}

pub fn guard(config: &Config) -> Result<u8> {
    let mut device = Device::open(config)?;
    let limit = Duration::from_secs(config.health.trial_timeout_secs);
    let report = device.updater()?.guard(limit)?;
    Ok(print_report(&report))
}

pub fn reboot(device: &Device) -> Result<()> {
    CommandReboot {
        command: device.config.system.reboot_command.clone(),
    }
    .reboot()?;
    Ok(())
}

/// Prints the report (its text is core's, the same names as `status --json`) and returns the
/// exit code for it.
fn print_report(report: &BootReport) -> u8 {
    println!("{report}");
    match report {
        BootReport::RollingBack { .. } => exit::ROLLED_BACK,
        _ => exit::OK,
    }
}
