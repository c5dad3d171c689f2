//! A delta install, shared by `install --delta` and the daemon: the artifact's signed head
//! fetched alone, the patch downloaded (resumed after a power cut), the image rebuilt from the
//! booted slot and written to the other one. Whenever the patch cannot be used (missing, made
//! for another base, damaged, larger than the artifact) the outcome says why and nothing is
//! armed: the caller installs the full artifact instead.

use crate::delta_source::{self, OpenUrl, SlotBase};
use crate::device::Device;
use anyhow::Result;
use rustupdate_core::report::InstallReport;
use rustupdate_delta::DeltaPayload;
use rustupdate_format::Sha256Hex;
use rustupdate_verify::{Keyring, SignaturePolicy, read_verified_head};

/// What to rebuild from what.
#[derive(Debug, Clone, Copy)]
pub struct DeltaRequest<'a> {
    /// The full artifact (file or URL): its signed head is read, its body only on fallback.
    pub artifact: &'a str,
    /// The patch (file or URL).
    pub patch: &'a str,
    /// The fleet action this install is for.
    pub action: Option<u64>,
    /// Whether the image hash is computed on a second thread.
    pub parallel: bool,
}

#[derive(Debug)]
pub enum DeltaOutcome {
    /// Written and armed, like a full install.
    Installed {
        report: InstallReport,
        /// Bytes of the patch and of the artifact's head read for it.
        patch_bytes: u64,
        head_bytes: u64,
        /// The full artifact's size, for comparison.
        artifact_bytes: u64,
    },
    /// The patch cannot be used (why); nothing was armed.
    FellBack(String),
    /// The install itself failed (as a full install would have: policy, slot, power).
    Failed(rustupdate_core::Error),
}

/// Installs `request` as a delta, or says why the full artifact must be used.
pub fn install(
    device: &mut Device,
    ring: &Keyring,
    policy: &SignaturePolicy,
    request: DeltaRequest,
    open: OpenUrl,
    progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
) -> Result<DeltaOutcome> {
    let (location, patch_location) = (request.artifact, request.patch);
    let fall_back = |why: String| Ok(DeltaOutcome::FellBack(why));
    if location == "-" {
        return fall_back("a delta needs the artifact as a file or URL, not stdin".into());
    }
    let head_bytes = match delta_source::fetch_head(location, open) {
        Ok(bytes) => bytes,
        Err(err) => return fall_back(format!("cannot read the head of {location}: {err:#}")),
    };
    let (head, signers) = match read_verified_head(&mut &head_bytes[..], ring, policy) {
        Ok(verified) => verified,
        Err(err) => return fall_back(format!("artifact {location}: {err}")),
    };
    // The full artifact's path rejects it, and records why.
    if let Err(err) = crate::trust_store::stage_carried(&device.config, &head.manifest) {
        return fall_back(format!("artifact {location}: {err}"));
    }
    // An encrypted release's patch is sealed under its content key. Without it (not a
    // recipient, no key), the full artifact's path refuses the install and records why.
    let content_key = match head.is_encrypted().then(|| device.content_key(&head)) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(why)) => return fall_back(format!("artifact {location}: {why}")),
    };
    let booted = device.booted;
    let base_path = device.slot_path(booted);
    let data_dir = device.config.data_dir.clone();
    let mut updater = device.updater()?;
    let key = content_key.as_ref();
    let patch = match delta_source::fetch_patch(patch_location, &data_dir, &head, key, open) {
        Ok(patch) => patch,
        Err(err) => return fall_back(format!("patch {patch_location}: {err:#}")),
    };
    let patch_bytes = patch.file.metadata().map_or(0, |m| m.len());
    let base = SlotBase::open(&base_path)?;
    let opened = DeltaPayload::open_with_key(&head, &patch.file, base, request.parallel, key);
    let mut delta = match opened {
        Ok(delta) => delta,
        Err(err) => return fall_back(format!("patch {patch_location}: {err}")),
    };
    // A known base: the release committed in the booted slot must be the one the patch was made
    // against (a device whose history is unknown, and a patch made from a block index, which
    // names no image, let the signed tables decide).
    let wanted = Sha256Hex(delta.header().base_sha256).to_string();
    let from_index = delta.header().base_sha256 == [0; 32];
    if let Some(committed) = updater.state().committed.as_ref()
        && !from_index
        && committed.slot == booted
        && committed.sha256 != wanted
    {
        return fall_back(format!(
            "patch {patch_location} was made for base image {wanted}, slot {booted} holds {} {} \
             ({})",
            committed.name, committed.version, committed.sha256
        ));
    }
    log::info!(
        "artifact {} {} signed by {}; rebuilding it from slot {booted} and patch {patch_location}",
        head.manifest.name,
        head.manifest.version,
        signers
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let result = updater.install_from(&head.manifest, &mut delta, request.action, progress);
    log_base_reads(booted, &delta);
    match result {
        Ok(report) => Ok(DeltaOutcome::Installed {
            report,
            patch_bytes,
            head_bytes: head_bytes.len() as u64,
            artifact_bytes: head.artifact_len(),
        }),
        Err(err) if err.is_delta() => fall_back(format!("patch {patch_location}: {err}")),
        Err(err) => Ok(DeltaOutcome::Failed(err)),
    }
}

/// What the delta read of the booted slot: the benchmark compares it with what the patch uses.
fn log_base_reads<P: std::io::Read + std::io::Seek>(
    booted: rustupdate_core::SlotId,
    delta: &DeltaPayload<P, SlotBase>,
) {
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let (stats, base) = (delta.stats(), delta.base());
    log::info!(
        "base slot {booted}: the patch copies {:.1} MiB and refers to {:.1} MiB in {} literal \
         frames; {:.1} MiB asked for in both passes, {:.1} MiB of it in {} reads past the page \
         cache ({} segments rebuilt past it)",
        mib(stats.copied),
        mib(stats.referenced),
        stats.frames,
        mib(base.requested),
        mib(base.direct_bytes),
        base.direct_reads,
        stats.segments_reread
    );
}
