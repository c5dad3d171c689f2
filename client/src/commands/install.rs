//! `rustupdate install`: verify, check policy, write the inactive slot, arm the trial. With
//! `--delta`, rebuild the image from the active slot and a patch first, and fall back to the full
//! artifact when the patch cannot be used.

use crate::cli::InstallArgs;
use crate::config::Config;
use crate::delta_install::{self, DeltaOutcome, DeltaRequest};
use crate::delta_source;
use crate::device::Device;
use crate::exit::{self, Rejected};
use crate::source;
use crate::trust_store::{release_keys, stage_carried};
use anyhow::Result;
use rustupdate_core::report::InstallReport;
use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};
use std::io::BufReader;

pub fn run(config: &Config, args: &InstallArgs) -> Result<u8> {
    let (ring, policy) = release_keys(config)?;
    let policy = if args.danger_allow_unsigned {
        log::warn!("--danger-allow-unsigned: accepting an artifact without trusted signatures");
        SignaturePolicy::dangerous_accept_unsigned()
    } else {
        policy
    };
    let mut device = Device::open(config)?;
    let delta_report = match &args.delta {
        Some(patch) => install_delta(&mut device, &ring, &policy, &args.artifact, patch)?,
        None => None,
    };
    let report = match delta_report {
        Some(report) => report,
        None => install_full(&mut device, &ring, &policy, &args.artifact)?,
    };
    println!(
        "installed {} into slot {} (transaction {}); reboot to try it",
        report.version, report.slot, report.transaction
    );
    if args.reboot {
        crate::commands::commit::reboot(&device)?;
    }
    Ok(exit::OK)
}

fn install_full(
    device: &mut Device,
    ring: &Keyring,
    policy: &SignaturePolicy,
    location: &str,
) -> Result<InstallReport> {
    let config = device.config.clone();
    let mut updater = device.updater()?;
    let (reader, source_len) = source::open(location)?;
    // Small: a version 2 body is read in 128 KiB pieces by the frame decoder anyway.
    let reader = BufReader::with_capacity(128 << 10, reader);
    let opened =
        VerifiedArtifact::open(reader, ring, policy).and_then(|artifact| match source_len {
            Some(len) => artifact.check_source_len(len).map(|()| artifact),
            None => Ok(artifact),
        });
    let artifact = match opened {
        Ok(artifact) => artifact.with_parallel_image_hash(parallel()),
        Err(err) if err.is_io() => {
            return Err(anyhow::Error::new(err).context(format!("reading artifact {location}")));
        }
        Err(err) => {
            // On record for `status`, not only on stderr.
            updater.record_rejection(None, "unknown", &err)?;
            return Err(anyhow::Error::new(err)
                .context(Rejected)
                .context(format!("artifact {location}")));
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
    if let Err(err) = stage_carried(&config, artifact.manifest()) {
        updater.record_rejection(None, &artifact.manifest().version, &err)?;
        return Err(anyhow::Error::new(err)
            .context(Rejected)
            .context(format!("artifact {location}")));
    }
    let mut progress = progress_logger();
    updater
        .install(artifact, None, &mut progress)
        .map_err(|err| install_error(err, location))
}

/// The delta path. `Ok(None)` means "use the full artifact" (the reason is logged); nothing is
/// armed in that case.
fn install_delta(
    device: &mut Device,
    ring: &Keyring,
    policy: &SignaturePolicy,
    location: &str,
    patch_location: &str,
) -> Result<Option<InstallReport>> {
    let request = DeltaRequest {
        artifact: location,
        patch: patch_location,
        action: None,
        parallel: parallel(),
    };
    let mut progress = progress_logger();
    let open = delta_source::open_plain;
    match delta_install::install(device, ring, policy, request, &open, &mut progress)? {
        DeltaOutcome::Installed { report, .. } => Ok(Some(report)),
        DeltaOutcome::FellBack(why) => {
            log::warn!("{why}; falling back to the full artifact {location}");
            Ok(None)
        }
        DeltaOutcome::Failed(err) => Err(install_error(err, location)),
    }
}

fn parallel() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

fn progress_logger() -> impl FnMut(u64, u64) -> Result<(), String> {
    let mut last_percent = 0;
    move |done, total| {
        let percent = done * 100 / total.max(1);
        if percent >= last_percent + 10 {
            last_percent = percent;
            log::info!("written {percent}% ({done} of {total} bytes)");
        }
        Ok(())
    }
}

fn install_error(err: rustupdate_core::Error, location: &str) -> anyhow::Error {
    let rejected = err.is_rejection();
    let err = anyhow::Error::new(err);
    let err = if rejected { err.context(Rejected) } else { err };
    err.context(format!("installing {location}"))
}
