//! `rustupdate install`: verify, check policy, write the inactive slot, arm the trial.

use crate::cli::InstallArgs;
use crate::config::Config;
use crate::device::{Device, keyring};
use crate::exit::{self, Rejected};
use crate::source;
use anyhow::{Context, Result};
use rustupdate_verify::{SignaturePolicy, VerifiedArtifact};
use std::io::BufReader;

pub fn run(config: &Config, args: &InstallArgs) -> Result<u8> {
    let ring = keyring(config)?;
    let policy = if args.danger_allow_unsigned {
        log::warn!("--danger-allow-unsigned: accepting an artifact without trusted signatures");
        SignaturePolicy::dangerous_accept_unsigned()
    } else {
        SignaturePolicy::threshold(config.keys.threshold)?
    };
    let mut device = Device::open(config)?;
    let mut updater = device.updater()?;
    let (reader, source_len) = source::open(&args.artifact)?;
    let reader = BufReader::with_capacity(1 << 20, reader);
    let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let opened =
        VerifiedArtifact::open(reader, &ring, &policy).and_then(|artifact| match source_len {
            Some(len) => artifact.check_source_len(len).map(|()| artifact),
            None => Ok(artifact),
        });
    let artifact = match opened {
        Ok(artifact) => artifact.with_parallel_image_hash(parallel),
        Err(err) if err.is_io() => {
            return Err(
                anyhow::Error::new(err).context(format!("reading artifact {}", args.artifact))
            );
        }
        Err(err) => {
            // On record for `status`, not only on stderr.
            updater.record_rejection(None, "unknown", &err)?;
            return Err(anyhow::Error::new(err)
                .context(Rejected)
                .context(format!("artifact {}", args.artifact)));
        }
    };
    log::info!(
        "artifact {} {} signed by {}",
        artifact.manifest().name,
        artifact.manifest().version,
        artifact
            .signers()
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut last_percent = 0;
    let report = updater.install(artifact, None, &mut |done, total| {
        let percent = done * 100 / total.max(1);
        if percent >= last_percent + 10 {
            last_percent = percent;
            log::info!("written {percent}% ({done} of {total} bytes)");
        }
        Ok(())
    });
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            let rejected = err.is_rejection();
            let err = anyhow::Error::new(err);
            return Err(if rejected { err.context(Rejected) } else { err })
                .context(format!("installing {}", args.artifact));
        }
    };
    println!(
        "installed {} into slot {} (transaction {}); reboot to try it",
        report.version, report.slot, report.transaction
    );
    drop(updater);
    if args.reboot {
        crate::commands::commit::reboot(&device)?;
    }
    Ok(exit::OK)
}
