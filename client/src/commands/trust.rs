//! `rustupdate trust show [--json]` and `rustupdate trust update FILE|URL|-`.

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::exit::{self, Usage};
use crate::source;
use crate::trust_store::TrustStore;
use anyhow::{Context, Result};
use rustupdate_trust::Trusted;
use rustupdate_trust::document::MAX_DOCUMENT_BYTES;
use std::io::Read;

fn store(config: &Config) -> Result<TrustStore> {
    TrustStore::from_config(config)
        .context("keys.trust-document is not set: this device trusts fixed keys (keys.trusted-dir)")
        .map_err(|err| err.context(Usage))
}

pub fn show(config: &Config, args: &StatusArgs) -> Result<u8> {
    let trusted = store(config)?.current()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(trusted.document())?);
        return Ok(exit::OK);
    }
    print_summary(&trusted);
    Ok(exit::OK)
}

fn print_summary(trusted: &Trusted) {
    let signed = &trusted.document().signed;
    let ids = |role: &rustupdate_trust::Role, name: &'static str| -> String {
        role.public_keys(name)
            .map(|keys| {
                keys.iter()
                    .map(|k| k.id().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!("trust version: {}", signed.version);
    println!(
        "release keys:  {} of {}: {}",
        signed.release.threshold,
        signed.release.keys.len(),
        ids(&signed.release, "release")
    );
    println!(
        "root keys:     {} of {}: {}",
        signed.root.threshold,
        signed.root.keys.len(),
        ids(&signed.root, "root")
    );
    let revoked = if signed.revoked.is_empty() {
        "(none)".to_string()
    } else {
        signed.revoked.join(", ")
    };
    println!("revoked:       {revoked}");
}

pub fn update(config: &Config, location: &str) -> Result<u8> {
    let store = store(config)?;
    let (reader, _) = source::open(location)?;
    let mut bytes = Vec::new();
    // One byte more than allowed, so that a larger document is refused as such.
    reader
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {location}"))?;
    let before = store.current()?.version();
    let trusted = match store.update(&bytes) {
        Ok(trusted) => trusted,
        Err(err) => {
            // A verdict on the document, not a failure to run: the rejection exit code.
            log::error!("{err:#}; keeping trust document version {before}");
            return Ok(exit::REJECTED);
        }
    };
    log::info!(
        "trust document version {} replaces version {before}",
        trusted.version()
    );
    print_summary(&trusted);
    Ok(exit::OK)
}
