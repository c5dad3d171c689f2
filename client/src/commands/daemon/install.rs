//! Writing an offered artifact into the inactive slot: continued at the checkpoint of an
//! interrupted install, rebuilt from a delta patch, or streamed in full; then the server is told
//! and the reboot step follows. A download that breaks off continues at the next cycles (up to
//! [`MAX_DOWNLOAD_ATTEMPTS`]); any other failure is in the state and reported at once.

use super::{Daemon, DaemonDevice};
use crate::ddi_transport::{ArtifactStream, DdiTransport};
use crate::delta_install::{DeltaOutcome, DeltaRequest};
use anyhow::{Context, Result, bail};
use rustupdate_core::state::{Checkpoint, OutcomeKind};
use rustupdate_ddi::{self as ddi, ActionFeedback, Execution, Finished};
use rustupdate_verify::{
    Keyring, ResumePoint, SignaturePolicy, VerifiedArtifact, read_verified_head,
};
use std::io::BufReader;

/// Cycles in a row whose download may break off (each after its own reconnects) before the
/// update is reported as failed.
const MAX_DOWNLOAD_ATTEMPTS: u32 = 10;

/// An artifact being read from the server and verified as it arrives.
type Download = VerifiedArtifact<BufReader<Box<dyn ArtifactStream>>>;

/// The artifact a deployment offers, checked, and how to verify it.
pub(super) struct Offer<'a> {
    pub action: u64,
    /// Its download link.
    pub href: &'a str,
    pub filename: &'a str,
    pub version: &'a str,
    pub ring: &'a Keyring,
    pub policy: &'a SignaturePolicy,
    /// Whether the image hash is computed on a second thread.
    pub parallel: bool,
}

/// Where the bytes of an install come from.
enum Source {
    Fresh(Download),
    /// Continuing an interrupted install at its checkpoint.
    Resumed(Download),
}

impl<T: DdiTransport> Daemon<T> {
    /// Continues the interrupted install of the offer at `checkpoint`. `None` when it cannot
    /// (nothing was written): the caller downloads from the start.
    pub(super) fn resume(
        &mut self,
        device: &mut dyn DaemonDevice,
        offer: &Offer,
        checkpoint: Checkpoint,
    ) -> Option<Result<String>> {
        let resumed = match self.open_resumed(offer.href, offer.ring, offer.policy, checkpoint) {
            Ok(resumed) => resumed.with_parallel_image_hash(offer.parallel),
            Err(err) => {
                log::warn!("cannot resume the download ({err:#}); downloading from the start");
                return None;
            }
        };
        match self.write(device, offer.action, Source::Resumed(resumed)) {
            Err(err) if cannot_resume(&err) => {
                log::warn!("{err:#}; downloading from the start");
                None
            }
            other => Some(other.map_err(|err| offer.installing(err))),
        }
    }

    /// Streams the whole artifact into the inactive slot. A rejected artifact is in the state and
    /// reported at once; a download that fails before any write is tried again next cycle.
    pub(super) fn install_full(
        &mut self,
        device: &mut dyn DaemonDevice,
        offer: &Offer,
    ) -> Result<String> {
        let (action, href) = (offer.action, offer.href);
        let reader = self.transport.artifact(href)?;
        let verified = VerifiedArtifact::open(
            BufReader::with_capacity(1 << 20, reader),
            offer.ring,
            offer.policy,
        )
        .and_then(|artifact| match artifact.source().get_ref().total() {
            Some(len) => artifact.check_source_len(len).map(|()| artifact),
            None => Ok(artifact),
        });
        let verified = match verified {
            Ok(verified) => verified,
            Err(err) if err.is_io() => {
                // Nothing written; the next cycle tries again.
                return Err(anyhow::Error::new(err).context(format!("downloading {href}")));
            }
            Err(err) => {
                device
                    .updater()?
                    .record_rejection(Some(action), offer.version, &err)?;
                self.send_owed(device)?;
                bail!("action {action}: artifact rejected: {err}");
            }
        };
        if let Err(err) = crate::trust_store::stage_carried(&self.config, verified.manifest()) {
            device
                .updater()?
                .record_rejection(Some(action), offer.version, &err)?;
            self.send_owed(device)?;
            bail!("action {action}: artifact rejected: {err}");
        }
        let verified = verified.with_parallel_image_hash(offer.parallel);
        self.write(device, action, Source::Fresh(verified))
            .map_err(|err| offer.installing(err))
    }

    /// Opens the artifact to continue at `checkpoint`: the head read (and its signatures checked)
    /// anew, the body from the checkpoint's segment with a `Range` request. Fails (and the caller
    /// downloads from the start) when the server cannot serve the range.
    fn open_resumed(
        &self,
        href: &str,
        ring: &Keyring,
        policy: &SignaturePolicy,
        checkpoint: Checkpoint,
    ) -> Result<Download> {
        let mut head_reader = BufReader::with_capacity(64 << 10, self.transport.artifact(href)?);
        let (head, signers) = read_verified_head(&mut head_reader, ring, policy)?;
        drop(head_reader);
        let point = ResumePoint {
            segment: usize::try_from(checkpoint.segment).context("checkpoint segment")?,
            image_offset: checkpoint.image_offset,
        };
        let offset = head
            .segment_offset(0, point.segment)
            .with_context(|| format!("the artifact has no segment {}", point.segment))?;
        let body = self.transport.artifact_from(href, offset)?;
        log::info!(
            "resuming the download at byte {offset} (segment {}, image byte {})",
            point.segment,
            point.image_offset
        );
        let total = body.total();
        let artifact = VerifiedArtifact::resume(
            head,
            signers,
            BufReader::with_capacity(1 << 20, body),
            point,
        )?;
        if let Some(len) = total {
            artifact.check_source_len(len)?;
        }
        Ok(artifact)
    }

    /// Rebuilds the release from a delta patch the deployment offers. `Some(summary)` when that
    /// installed it (or the install failed as a full one would have); `None` when the device
    /// must download the full artifact instead: the reason goes to the server, which counts it.
    pub(super) fn install_delta(
        &mut self,
        device: &mut dyn DaemonDevice,
        request: DeltaRequest,
        ring: &Keyring,
        policy: &SignaturePolicy,
    ) -> Result<Option<String>> {
        let action = request.action.unwrap_or_default();
        log::info!(
            "action {action}: the server offers a delta patch, {}",
            request.patch
        );
        let transport = &self.transport;
        let open = |url: &str| transport.download(url);
        let mut on_progress = self.reporter(action);
        let outcome = device.install_delta(ring, policy, request, &open, &mut on_progress);
        drop(on_progress);
        match outcome? {
            DeltaOutcome::Installed {
                report,
                patch_bytes,
                head_bytes,
                artifact_bytes,
            } => {
                let note = format!(
                    "installed {} into slot {} from a delta patch: downloaded {} bytes (patch \
                     {patch_bytes}, artifact head {head_bytes}) instead of the artifact's \
                     {artifact_bytes}",
                    report.version,
                    report.slot,
                    patch_bytes + head_bytes
                );
                self.installed(device, action, note).map(Some)
            }
            DeltaOutcome::FellBack(why) => {
                log::warn!("action {action}: {why}; downloading the full artifact");
                let feedback = ActionFeedback::new(
                    Execution::Proceeding,
                    Finished::None,
                    vec![ddi::delta::fallback_line(&why)],
                );
                if let Err(err) = self.transport.deployment_feedback(action, &feedback) {
                    log::warn!("fallback feedback: {err:#}");
                }
                Ok(None)
            }
            DeltaOutcome::Failed(err) => self.install_failed(device, action, err).map(Some),
        }
    }

    /// Streams the artifact into the inactive slot (from the start or from a checkpoint), with
    /// progress feedback and a look for a cancel request while it runs; then reboots per policy.
    /// Any failure after the install began is in the state and reported at once.
    fn write(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
        source: Source,
    ) -> Result<String> {
        let mut on_progress = self.reporter(action);
        let mut updater = device.updater()?;
        let result = match source {
            Source::Fresh(artifact) => updater.install(artifact, Some(action), &mut on_progress),
            Source::Resumed(artifact) => updater.resume(artifact, action, &mut on_progress),
        };
        drop(updater);
        drop(on_progress);
        match result {
            Ok(report) => {
                let note = format!("installed {} into slot {}", report.version, report.slot);
                self.installed(device, action, note)
            }
            Err(err) => self.install_failed(device, action, err),
        }
    }

    /// After a successful install: tell the server, then reboot per policy.
    fn installed(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
        note: String,
    ) -> Result<String> {
        self.broken_downloads = None;
        log::info!("action {action}: {note}");
        self.progress(action, Execution::Downloaded, Some(100), note);
        self.reboot_when_allowed(device, action)
    }

    /// After a failed install: a broken-off download continues at the next cycles (up to a
    /// limit); anything else is in the state and reported at once.
    fn install_failed(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
        err: rustupdate_core::Error,
    ) -> Result<String> {
        if matches!(&err, rustupdate_core::Error::Artifact(e) if e.is_io()) {
            // The link broke off; the install stays interrupted (the core keeps it) and the
            // next cycles continue it from its checkpoint, up to a limit.
            let attempts = match self.broken_downloads {
                Some((a, n)) if a == action => n + 1,
                _ => 1,
            };
            self.broken_downloads = Some((action, attempts));
            if attempts < MAX_DOWNLOAD_ATTEMPTS {
                return Err(anyhow::Error::new(err).context(format!(
                    "action {action}: download attempt {attempts} of {MAX_DOWNLOAD_ATTEMPTS} \
                     broke off; it continues at the next cycle"
                )));
            }
            let detail = format!(
                "download failed {attempts} times: {}",
                rustupdate_core::chain(&err)
            );
            device
                .updater()?
                .abandon_interrupted(action, OutcomeKind::Failed, detail)?;
        }
        // The outcome (with the action) is in the state when the install got that far.
        self.send_owed(device)?;
        Err(anyhow::Error::new(err))
    }
}

impl Offer<'_> {
    /// `err` in the context of installing this offer.
    fn installing(&self, err: anyhow::Error) -> anyhow::Error {
        err.context(format!(
            "action {}: installing {}",
            self.action, self.filename
        ))
    }
}

/// The updater found the interrupted install cannot continue (nothing was written).
fn cannot_resume(err: &anyhow::Error) -> bool {
    err.downcast_ref::<rustupdate_core::Error>()
        .is_some_and(|e| matches!(e, rustupdate_core::Error::CannotResume { .. }))
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BOARD, Rig, feedback, release};
    use rustupdate_core::SlotId;
    use rustupdate_ddi::{Execution, Finished};

    /// The one final feedback of action 7 among the requests: its first detail and its code.
    fn final_failure(rig: &Rig) -> (String, Option<i32>) {
        let requests = rig.requests();
        let closed: Vec<_> = requests
            .iter()
            .filter_map(|r| match r {
                super::super::fake::Request::DeploymentFeedback(7, f)
                    if f.status.execution == Execution::Closed =>
                {
                    Some(f.status.clone())
                }
                _ => None,
            })
            .collect();
        assert_eq!(closed.len(), 1, "{requests:?}");
        assert_eq!(closed[0].result.finished, Finished::Failure);
        (closed[0].details[0].clone(), closed[0].code)
    }

    #[test]
    fn an_install_the_device_refuses_is_reported_with_its_reason() {
        let mut rig = Rig::new("");
        rig.offer(7, release("other-board", 1));
        let err = format!("{:#}", rig.cycle().unwrap_err());
        assert!(err.contains("other-board"), "{err}");
        let (detail, code) = final_failure(&rig);
        assert!(detail.contains("other-board"), "{detail}");
        assert!(code.is_some_and(|c| c != 0), "{code:?}");
        assert!(rig.sim.slots.bytes(SlotId::B).iter().all(|&b| b == 0xee));
        assert!(!rig.sim.reboot.requested);
        // Reported once: the next cycle owes nothing.
        rig.set_poll(super::super::fake::nothing());
        rig.cycle().unwrap();
        assert!(feedback(&rig.requests()).is_empty());
    }

    #[test]
    fn an_artifact_signed_by_an_unknown_key_is_reported_as_rejected() {
        let mut rig = Rig::new("");
        rig.offer(7, release(BOARD, 2));
        let err = format!("{:#}", rig.cycle().unwrap_err());
        assert!(err.contains("action 7: artifact rejected"), "{err}");
        let (detail, code) = final_failure(&rig);
        assert!(detail.starts_with("rejected: "), "{detail}");
        assert!(detail.contains("signature"), "{detail}");
        assert_eq!(code, Some(4));
        assert!(rig.sim.slots.bytes(SlotId::B).iter().all(|&b| b == 0xee));
    }
}
