//! `rustupdate status [--json]`.

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::device::Device;
use crate::exit;
use anyhow::Result;

pub fn run(config: &Config, args: &StatusArgs) -> Result<u8> {
    let mut device = Device::open(config)?;
    let status = device.updater()?.status()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(exit::OK);
    }
    let env = &status.bootloader;
    println!("device type:   {}", status.device_type);
    println!("booted slot:   {}", status.booted_slot);
    println!(
        "bootloader:    slot {} upgrade_available={} bootcount={} bootlimit={}",
        env.slot,
        u8::from(env.upgrade_available),
        env.bootcount,
        env.bootlimit
    );
    println!("situation:     {}", status.situation);
    match &status.committed {
        Some(r) => println!("committed:     {} {} in slot {}", r.name, r.version, r.slot),
        None => println!("committed:     (no update committed yet: factory image)"),
    }
    println!("security ver.: {}", status.security_version);
    if let Some(store) = crate::trust_store::TrustStore::from_config(config) {
        match store.current() {
            Ok(trusted) => println!("trust:         document version {}", trusted.version()),
            Err(err) => println!("trust:         NO TRUSTED DOCUMENT: {err:#}"),
        }
    }
    if let Some(p) = &status.pending {
        println!(
            "pending:       {} {} in slot {} ({}), transaction {}",
            p.release.name, p.release.version, p.release.slot, p.stage, p.transaction
        );
    }
    if let Some(o) = &status.last_result {
        println!("last result:   {} {}: {}", o.version, o.result, o.detail);
    }
    if let Some(why) = &status.recovered_from {
        println!("WARNING:       state was rebuilt: {why}");
    }
    Ok(exit::OK)
}
