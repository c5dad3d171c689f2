//! `rustupdate show-artifact`: the manifest, and whether this device would accept the signatures.

use crate::cli::ShowArgs;
use crate::config::Config;
use crate::device::keyring;
use crate::{exit, source};
use anyhow::{Context, Result};
use rustupdate_verify::{SignaturePolicy, check_signatures};
use std::io::BufReader;

pub fn run(config: &Config, args: &ShowArgs) -> Result<u8> {
    let mut reader = BufReader::new(source::open(&args.artifact)?);
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
    let compatible = m.compatible.contains(&config.device_type);
    println!(
        "device type:  {} ({})",
        config.device_type,
        if compatible {
            "compatible"
        } else {
            "NOT compatible"
        }
    );
    let policy = SignaturePolicy::threshold(config.keys.threshold)?;
    match check_signatures(&head, &keyring(config)?, &policy) {
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
    Ok(if compatible { exit::OK } else { exit::REJECTED })
}
