//! `rustupdate commit`, `rollback` and `guard`: the boot-time decisions.

use crate::config::Config;
use crate::device::Device;
use crate::exit;
use crate::sys::reboot::CommandReboot;
use anyhow::{Context, Result};
use rustupdate_core::Reboot;
use rustupdate_core::updater::BootReport;

pub fn commit(config: &Config) -> Result<u8> {
    let mut device = Device::open(config)?;
    let report = device.updater()?.boot_check()?;
    Ok(print_report(&report))
}

pub fn rollback(config: &Config) -> Result<u8> {
    let mut device = Device::open(config)?;
    let report = device.updater()?.rollback("requested by hand")?;
    print_report(&report);
    Ok(exit::OK)
}

pub fn guard(config: &Config) -> Result<u8> {
    let uptime = std::fs::read_to_string("/proc/uptime").context("reading /proc/uptime")?;
    let uptime: f64 = uptime
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let limit = config.health.trial_timeout_secs;
    if uptime < limit as f64 {
        println!(
            "rollback guard: uptime {uptime:.0} s is below health.trial-timeout-secs {limit}; nothing to do"
        );
        return Ok(exit::OK);
    }
    let mut device = Device::open(config)?;
    let reason = format!("rollback guard: trial still undecided after {limit} s");
    let report = device.updater()?.guard(&reason)?;
    Ok(print_report(&report))
}

pub fn reboot(device: &Device) -> Result<()> {
    CommandReboot {
        command: device.config.system.reboot_command.clone(),
    }
    .reboot()?;
    Ok(())
}

fn print_report(report: &BootReport) -> u8 {
    match report {
        BootReport::Nothing => {
            println!("nothing to do: no update pending");
            exit::OK
        }
        BootReport::AwaitingReboot { version } => {
            println!("{version} is installed and armed; reboot to try it");
            exit::OK
        }
        BootReport::Committed { version } => {
            println!("committed {version}");
            exit::OK
        }
        BootReport::RollingBack { reason } => {
            println!("rolled back: {reason}");
            exit::ROLLED_BACK
        }
        BootReport::Recorded { outcome } => {
            println!(
                "update {} {:?}: {}",
                outcome.version, outcome.result, outcome.detail
            );
            exit::OK
        }
    }
}
