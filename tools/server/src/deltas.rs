//! Delta patches made by the server: when an artifact is uploaded or a rollout created, a patch
//! of that artifact is queued from every earlier release (of a device type it is for) whose image
//! some device reports it runs, and from any base an operator names. Background jobs, at most
//! `delta-jobs` at once per process and claimed through the database (one builder per patch
//! across server processes), build them with `rustupdate-delta` into the content-addressed
//! artifact directory.
//!
//! The server needs no signing key: a patch only says where each chunk of the signed target
//! comes from, and the device checks every segment it rebuilds against the signed manifest.
//! A job holds its base image in memory (up to `delta-max-image-bytes`) plus the target's new
//! bytes, and keeps one core busy.

use crate::app_state::AppState;
use crate::artifact_files::{self, Upload, UploadError};
use crate::error::{ApiError, ApiResult};
use crate::store::{
    ActionWithRollout, ArtifactRow, DeviceRow, DownloadTotals, PatchFile, PatchRow,
};
use rustupdate_ddi::attributes as ddi_attributes;
use rustupdate_delta::{Base, BuildError, BuildOptions, build_patch};
use rustupdate_verify::{ChunkData, Keyring, SignaturePolicy, VerifiedArtifact};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a device's scheduled action is held back (not offered at poll) while the patch for
/// its base is queued or building; then it gets the full artifact, patch or not.
pub const WAIT_FOR_PATCH: Duration = Duration::from_secs(15 * 60);
/// A job whose builder has not finished in this long (its server died) is taken by another.
const STALE_AFTER: Duration = Duration::from_secs(3600);
/// How often an idle worker looks for jobs queued by another server process.
const IDLE_LOOK: Duration = Duration::from_secs(10);

/// The artifacts among `candidates` worth a patch of `target`: other `.rua` releases with
/// another image, made for a device type the target is for. Pure.
pub fn bases_for<'a>(target: &ArtifactRow, candidates: &'a [ArtifactRow]) -> Vec<&'a ArtifactRow> {
    candidates
        .iter()
        .filter(|base| {
            base.id != target.id
                && base.kind == "rua"
                && base.image_sha256.is_some()
                && base.image_sha256 != target.image_sha256
                && base
                    .device_types
                    .iter()
                    .any(|t| target.device_types.contains(t))
        })
        .collect()
}

/// Queues the patches of `target` from every base devices run now; how many are new.
pub async fn queue_for(app: &AppState, target: &ArtifactRow) -> anyhow::Result<usize> {
    if target.kind != "rua" {
        return Ok(0);
    }
    let candidates = app.store.running_base_artifacts().await?;
    let mut queued = 0;
    for base in bases_for(target, &candidates) {
        if app.store.queue_patch(target, base).await? {
            tracing::info!(
                event = %"delta-queued",
                artifact = target.id,
                base = base.id,
                base_image = %base.image_sha256.as_deref().unwrap_or(""),
            );
            queued += 1;
        }
    }
    if queued > 0 {
        app.inner.delta_wake.notify_waiters();
    }
    Ok(queued)
}

/// Queues a patch of `target` from a base the operator names; `false` if one exists already.
pub async fn queue_named(
    app: &AppState,
    target: &ArtifactRow,
    base: &ArtifactRow,
) -> ApiResult<bool> {
    if bases_for(target, std::slice::from_ref(base)).is_empty() {
        return Err(ApiError::BadRequest(format!(
            "artifact {} cannot be a patch base of artifact {}: both must be .rua releases with \
             different images and a device type in common",
            base.id, target.id
        )));
    }
    let queued = app.store.queue_patch(target, base).await?;
    if queued {
        app.inner.delta_wake.notify_waiters();
    }
    Ok(queued)
}

/// The base image a device's inventory says it runs, if it takes known-base patches. Pure.
pub fn base_of(attributes: &BTreeMap<String, String>) -> Option<&str> {
    let takes = attributes
        .get(ddi_attributes::ACCEPTS_DELTA)
        .is_some_and(|v| {
            v.split(',')
                .any(|kind| kind.trim() == ddi_attributes::DELTA_KNOWN_BASE)
        });
    let base = attributes.get(ddi_attributes::RUNNING_IMAGE_SHA256)?;
    let hex = base.len() == 64 && base.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (takes && hex).then_some(base.as_str())
}

/// Queues, for a base image a device just reported, the patches of every running rollout's
/// artifact from the stored release of that image.
pub async fn queue_for_base(app: &AppState, base_sha256: &str) -> anyhow::Result<usize> {
    let bases = app.store.artifacts_with_image(base_sha256).await?;
    if bases.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    for rollout in app.store.running_rollouts().await?.iter() {
        if rollout.download_url.is_some() {
            continue;
        }
        let Some(target) = app.store.artifact(rollout.artifact_id).await? else {
            continue;
        };
        for base in bases_for(&target, &bases) {
            if app.store.queue_patch(&target, base).await? {
                queued += 1;
            }
        }
    }
    if queued > 0 {
        tracing::info!(event = %"delta-queued", base_image = %base_sha256, patches = queued);
        app.inner.delta_wake.notify_waiters();
    }
    Ok(queued)
}

/// Whether the device's action waits for its patch: one from the device's base is queued or
/// building, and was queued less than [`WAIT_FOR_PATCH`] ago.
pub async fn patch_coming(
    app: &AppState,
    device: &DeviceRow,
    work: &ActionWithRollout,
) -> ApiResult<bool> {
    let Some(base) = base_of(&device.attributes) else {
        return Ok(false);
    };
    if work.download_url.is_some() || app.inner.settings.delta_jobs == 0 {
        return Ok(false);
    }
    let since = crate::store::now_ms() - WAIT_FOR_PATCH.as_millis() as i64;
    Ok(app
        .store
        .patch_pending(work.artifact_id, base, since)
        .await?)
}

/// The ready patch a device is offered beside the artifact: made from the image the device
/// reports it runs, for a rollout served by this server.
pub async fn patch_for(
    app: &AppState,
    device: &DeviceRow,
    work: &ActionWithRollout,
    artifact: &ArtifactRow,
) -> ApiResult<Option<PatchRow>> {
    let Some(base) = base_of(&device.attributes) else {
        return Ok(None);
    };
    if work.download_url.is_some() || artifact.image_sha256.as_deref() == Some(base) {
        return Ok(None);
    }
    Ok(app.store.ready_patch(artifact.id, base).await?)
}

/// A patch as the deployment offers it (our DDI extension, `rustupdate_ddi::delta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

/// The offer of a ready patch of `artifact`: named after the artifact and the base it is made
/// from. Pure.
pub fn offer(artifact: &ArtifactRow, patch: &PatchRow) -> Option<Offer> {
    let stem = artifact
        .filename
        .strip_suffix(".rua")
        .unwrap_or(&artifact.filename);
    let base = patch.base_sha256.get(..12)?;
    Some(Offer {
        filename: format!("{stem}.from-{base}{}", rustupdate_ddi::delta::PATCH_SUFFIX),
        size: u64::try_from(patch.size?).ok()?,
        sha256: patch.sha256.clone()?,
        sha1: patch.sha1.clone()?,
        md5: patch.md5.clone()?,
    })
}

/// One line on what a rollout's devices downloaded and what the patches saved, for `rollout
/// status` and the dashboard. Pure.
pub fn downloads_summary(totals: &DownloadTotals, artifact_size: i64) -> String {
    if totals.actions == 0 {
        return "nothing downloaded yet".into();
    }
    let served = totals.full_bytes + totals.delta_bytes;
    let as_full = totals.actions.saturating_mul(artifact_size).max(1);
    let saved = 100.0 - served as f64 * 100.0 / as_full as f64;
    let mut line = format!(
        "{} devices downloaded {} bytes ({} of delta patches by {} devices, {} of full \
         artifacts): {saved:.0} % less than the full artifact each",
        totals.actions, served, totals.delta_bytes, totals.delta_actions, totals.full_bytes
    );
    if totals.fallbacks > 0 {
        let reasons: Vec<String> = totals
            .fallback_reasons
            .iter()
            .map(|(why, n)| format!("{n}x {why}"))
            .collect();
        line += &format!(
            "; {} fell back to the full artifact ({})",
            totals.fallbacks,
            reasons.join("; ")
        );
    }
    line
}

/// Starts this process's patch workers (none with `delta-jobs = 0`).
pub fn spawn_workers(app: &AppState) {
    let jobs = app.inner.settings.delta_jobs;
    if jobs == 0 {
        return;
    }
    let first = app.clone();
    tokio::spawn(async move {
        if let Err(e) = backfill_image_hashes(&first).await {
            tracing::warn!(event = %"image-hash-backfill-failed", error = %format_args!("{e:#}"));
        }
    });
    for _ in 0..jobs {
        let app = app.clone();
        tokio::spawn(async move { worker(app).await });
    }
}

async fn worker(app: AppState) {
    loop {
        let stale_before = crate::store::now_ms() - STALE_AFTER.as_millis() as i64;
        match app.store.claim_patch_job(stale_before).await {
            Ok(Some(job)) => run_job(&app, job).await,
            Ok(None) => {
                let _ = tokio::time::timeout(IDLE_LOOK, app.inner.delta_wake.notified()).await;
            }
            Err(e) => {
                tracing::warn!(event = %"delta-claim-failed", error = %format_args!("{e:#}"));
                tokio::time::sleep(IDLE_LOOK).await;
            }
        }
    }
}

async fn run_job(app: &AppState, job: PatchRow) {
    let outcome = match job_inputs(app, &job).await {
        Ok((target, base)) => {
            let inputs = JobFiles::of(app);
            let keyring = app.inner.settings.keyring();
            tokio::task::spawn_blocking(move || {
                let keyring = keyring.map_err(|e| format!("reading the trusted keys: {e:#}"))?;
                inputs.build(&target, &base, &keyring)
            })
            .await
            .unwrap_or_else(|e| Err(format!("patch job stopped: {e}")))
        }
        Err(why) => Err(why),
    };
    let finished = match &outcome {
        Ok(file) => {
            tracing::info!(
                event = %"delta-ready",
                id = job.id,
                artifact = job.target_artifact_id,
                base_image = %job.base_sha256,
                bytes = file.size,
            );
            app.store.finish_patch_job(job.id, Ok(file)).await
        }
        Err(why) => {
            tracing::warn!(
                event = %"delta-failed",
                id = job.id,
                artifact = job.target_artifact_id,
                base_image = %job.base_sha256,
                reason = ?why,
            );
            app.store.finish_patch_job(job.id, Err(why)).await
        }
    };
    if let Err(e) = finished {
        // The job stays `building` and is taken again once stale.
        tracing::warn!(event = %"delta-finish-failed", id = job.id, error = %format_args!("{e:#}"));
    }
}

async fn job_inputs(app: &AppState, job: &PatchRow) -> Result<(ArtifactRow, ArtifactRow), String> {
    let missing = |what: &str| format!("the {what} artifact is no longer stored");
    let target = app
        .store
        .artifact(job.target_artifact_id)
        .await
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| missing("target"))?;
    let base_id = job
        .base_artifact_id
        .ok_or("the server holds no artifact of the base image")?;
    let base = app
        .store
        .artifact(base_id)
        .await
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| missing("base"))?;
    Ok((target, base))
}

/// Where a job reads and writes.
pub struct JobFiles {
    pub artifacts_dir: PathBuf,
    pub scratch_dir: PathBuf,
    pub max_image_bytes: u64,
}

impl JobFiles {
    pub fn of(app: &AppState) -> JobFiles {
        JobFiles {
            artifacts_dir: app.inner.artifacts_dir.clone(),
            scratch_dir: app.inner.settings.upload_dir(),
            max_image_bytes: app.inner.settings.delta_max_image_bytes,
        }
    }
}

impl JobFiles {
    /// Builds the patch of `target` from `base` into the artifact directory. Blocking.
    fn build(
        &self,
        target: &ArtifactRow,
        base: &ArtifactRow,
        keyring: &Keyring,
    ) -> Result<PatchFile, String> {
        let image = read_image(&self.artifacts_dir.join(&base.sha256), self.max_image_bytes)?;
        let file = std::fs::File::open(self.artifacts_dir.join(&target.sha256))
            .map_err(|e| format!("opening the target artifact: {e}"))?;
        let policy = SignaturePolicy::threshold(1).map_err(|e| e.to_string())?;
        let mut artifact =
            VerifiedArtifact::open(BufReader::with_capacity(1 << 20, file), keyring, &policy)
                .map_err(|e| format!("target artifact: {e}"))?;
        if artifact.head().is_encrypted() {
            return Err(ENCRYPTED.replace("{}", "target"));
        }
        let head = artifact.head().clone();
        let mut payload = artifact
            .next_payload()
            .map_err(|e| format!("target artifact: {e}"))?
            .ok_or("the target artifact has no payload")?;
        // A patch as large as the artifact saves nothing: the limit stops the job there.
        let mut out =
            Upload::new(&self.scratch_dir, target.size as u64).map_err(|e| format!("{e:#}"))?;
        let built = build_patch(
            &head,
            &mut payload,
            Base::Image(&image),
            &BuildOptions::default(),
            &mut HashingWriter(&mut out),
            &mut |_, _| {},
        );
        drop(image);
        match built {
            Ok(_) => {}
            Err(BuildError::Write(e)) if is_too_large(&e) => {
                return Err(format!(
                    "the patch would be no smaller than the artifact ({} bytes)",
                    target.size
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        let (file, digests) = out.finish().map_err(|e| format!("{e:#}"))?;
        artifact_files::keep(file, &self.artifacts_dir, &digests.sha256)
            .map_err(|e| format!("{e:#}"))?;
        Ok(PatchFile {
            sha256: digests.sha256,
            sha1: digests.sha1,
            md5: digests.md5,
            size: digests.size as i64,
        })
    }
}

/// Whether the patch writer stopped at its size limit ([`UploadError::TooLarge`], carried inside
/// the `io::Error` that `build_patch` passes on).
fn is_too_large(err: &std::io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<UploadError>())
        .is_some_and(|inner| matches!(inner, UploadError::TooLarge { .. }))
}

/// The image of a `.rua` as raw bytes, each chunk checked against its table (the artifact's
/// signatures were checked at upload).
/// Why the server builds no patch of an encrypted release: it holds no recipient key.
const ENCRYPTED: &str = "the {} artifact is encrypted: the server cannot read it to build a \
                         patch (docs/encryption.md); devices download the full artifact unless \
                         the release pipeline uploads its sealed patch";

pub(crate) fn read_image(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening the base artifact: {e}"))?;
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut artifact = VerifiedArtifact::open(
        BufReader::with_capacity(1 << 20, file),
        &Keyring::new(),
        &policy,
    )
    .map_err(|e| format!("base artifact: {e}"))?;
    if artifact.head().is_encrypted() {
        return Err(ENCRYPTED.replace("{}", "base"));
    }
    let size = artifact.manifest().payloads.first().map_or(0, |p| p.size);
    if size > max_bytes {
        return Err(format!(
            "the base image has {size} bytes, more than delta-max-image-bytes ({max_bytes})"
        ));
    }
    let mut payload = artifact
        .next_payload()
        .map_err(|e| format!("base artifact: {e}"))?
        .ok_or("the base artifact has no payload")?;
    let mut image = Vec::with_capacity(size as usize);
    while let Some(chunk) = payload
        .next_chunk()
        .map_err(|e| format!("base artifact: {e}"))?
    {
        match chunk.data {
            ChunkData::Bytes(data) => image.extend_from_slice(data),
            ChunkData::Zeros(n) => image.resize(image.len() + n as usize, 0),
        }
        if image.len() as u64 > max_bytes {
            return Err(format!(
                "the base image is larger than delta-max-image-bytes ({max_bytes})"
            ));
        }
    }
    Ok(image)
}

/// Writes into an [`Upload`] (hashed as written, bounded).
struct HashingWriter<'a>(&'a mut Upload);

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(|e| match e {
            UploadError::Io(io) => io,
            // The typed error stays inside, for `is_too_large`.
            other => std::io::Error::other(other),
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Learns the image hash of `.rua` artifacts stored before the server kept it.
async fn backfill_image_hashes(app: &AppState) -> anyhow::Result<()> {
    for artifact in app.store.artifacts().await? {
        if artifact.kind != "rua" || artifact.image_sha256.is_some() {
            continue;
        }
        let path = app.inner.artifacts_dir.join(&artifact.sha256);
        let image = tokio::task::spawn_blocking(move || image_sha256_of(&path)).await??;
        app.store.set_image_sha256(artifact.id, &image).await?;
    }
    Ok(())
}

fn image_sha256_of(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::new(file);
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let (head, _) = rustupdate_verify::read_verified_head(&mut reader, &Keyring::new(), &policy)?;
    head.manifest
        .payloads
        .first()
        .map(|p| p.sha256.to_string())
        .ok_or_else(|| anyhow::anyhow!("{} has no payload", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rua(id: i64, image: &str, types: &[&str]) -> ArtifactRow {
        ArtifactRow {
            id,
            sha256: format!("{id:064}"),
            sha1: String::new(),
            md5: String::new(),
            size: 1000,
            filename: format!("r{id}.rua"),
            name: "os".into(),
            version: format!("{id}"),
            device_types: types.iter().map(|t| (*t).to_owned()).collect(),
            security_version: None,
            kind: "rua".into(),
            signers: Vec::new(),
            created_at: 0,
            image_sha256: Some(image.into()),
        }
    }

    #[test]
    fn the_summary_says_what_was_downloaded_and_saved() {
        assert_eq!(
            downloads_summary(&DownloadTotals::default(), 100),
            "nothing downloaded yet"
        );
        let totals = DownloadTotals {
            actions: 4,
            full_bytes: 100,
            delta_bytes: 30,
            delta_actions: 3,
            fallbacks: 1,
            fallback_reasons: vec![("patch damaged".into(), 1)],
        };
        assert_eq!(
            downloads_summary(&totals, 100),
            "4 devices downloaded 130 bytes (30 of delta patches by 3 devices, 100 of full \
             artifacts): 68 % less than the full artifact each; 1 fell back to the full artifact \
             (1x patch damaged)"
        );
    }

    #[test]
    fn bases_are_other_images_of_a_shared_device_type() {
        let target = rua(3, "i3", &["board-a", "board-b"]);
        let mut foreign = rua(4, "i4", &["board-a"]);
        foreign.kind = "foreign".into();
        let candidates = vec![
            rua(1, "i1", &["board-a"]),
            rua(2, "i2", &["board-c"]),
            rua(3, "i3", &["board-a"]),
            rua(5, "i3", &["board-b"]),
            foreign,
            rua(6, "i6", &["board-b"]),
        ];
        let ids: Vec<i64> = bases_for(&target, &candidates)
            .iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, [1, 6]);
    }

    #[test]
    fn a_patch_over_the_writer_limit_is_told_from_other_write_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut upload = Upload::new(dir.path(), 4).unwrap();
        let mut writer = HashingWriter(&mut upload);
        writer.write_all(b"1234").unwrap();
        let over = writer.write_all(b"5").unwrap_err();
        assert!(is_too_large(&over), "{over}");
        assert!(!is_too_large(&std::io::Error::other("disk full")));
        assert!(!is_too_large(&std::io::ErrorKind::BrokenPipe.into()));
    }
}
