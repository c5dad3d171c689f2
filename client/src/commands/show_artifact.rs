//! `rustupdate show-artifact`: the manifest, and whether this device would accept it: the device
//! policy checks of an install (device type, security version, payloads) and the signatures.

use crate::cli::ShowArgs;
use crate::config::Config;
use crate::sys::state_file::StateFile;
use crate::{exit, source};
use anyhow::{Context, Result};
use rustupdate_core::chain;
use rustupdate_core::policy::device_checks;
use rustupdate_verify::check_signatures;
use std::io::BufReader;

pub fn run(config: &Config, args: &ShowArgs) -> Result<u8> {
    let mut reader = BufReader::new(source::open(&args.artifact)?.0);
    let head = rustupdate_format::read_head(&mut reader)
        .with_context(|| format!("reading {}", args.artifact))?;
    let m = &head.manifest;
    println!("name:         {}", m.name);
    println!("version:      {}", m.version);
    println!("compatible:   {}", m.compatible.join(", "));
    println!(
        "security ver: {}",
        m.security_version
            .map_or("(none)".into(), |v| v.to_string())
    );
    for p in &m.payloads {
        println!(
            "payload:      {} -> {} ({} bytes, sha256 {})",
            p.name, p.target, p.size, p.sha256
        );
    }
    // The device-policy checks of an install (core's, the same verdicts), against the security
    // version committed on this device.
    let state = StateFile {
        dir: config.data_dir.clone(),
    }
    .peek();
    let security_version = match &state {
        Ok(state) => state.security_version,
        Err(err) => {
            println!(
                "device state: unreadable ({}); security version 0 assumed",
                chain(err)
            );
            0
        }
    };
    let mut accepted = true;
    for check in device_checks(m, &config.device_type, security_version) {
        let verdict = match (&check.verdict, check.what) {
            (Ok(()), "device type") => format!("{} (compatible)", config.device_type),
            (Err(_), "device type") => format!("{} (NOT compatible)", config.device_type),
            (Ok(()), _) => "OK".to_string(),
            (Err(err), _) => format!("REJECTED: {err}"),
        };
        accepted &= check.verdict.is_ok();
        println!("{:<13} {verdict}", format!("{}:", check.what));
    }
    let (ring, policy) = crate::trust_store::release_keys(config)?;
    match check_signatures(&head, &ring, &policy) {
        Ok(signers) => println!(
            "signatures:   OK ({})",
            signers
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(err) => {
            println!("signatures:   REJECTED: {err}");
            return Ok(exit::REJECTED);
        }
    }
    Ok(if accepted { exit::OK } else { exit::REJECTED })
}
