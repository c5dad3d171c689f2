//! Install, install from a chunk source (a delta) and resume: everything up to an armed trial,
//! in the order stated in [`updater`](super).

use super::Updater;
use crate::error::chain;
use crate::hooks::HookEvent;
use crate::lifecycle::{Situation, classify};
use crate::policy::{DeviceFacts, plan_install};
use crate::report::InstallReport;
use crate::state::{Checkpoint, OutcomeKind, Pending, Release, Stage};
use crate::{BootEnv, Error, SlotId};
use rustupdate_format::Manifest;
use rustupdate_verify::{ChunkData, ChunkSource, VerifiedArtifact};
use std::io::Read;

impl Updater<'_> {
    /// Installs a verified artifact into the inactive slot and arms the bootloader to try it.
    /// Device policy is checked before the first byte is written; on any error the slot is left
    /// unarmed and the failure (or the rejection) is recorded, with the fleet `action` it answers.
    /// `progress` is told the bytes written so far and the total; an `Err` from it stops the
    /// install before the slot is armed ([`Error::Stopped`]).
    pub fn install<R: Read>(
        &mut self,
        mut artifact: VerifiedArtifact<R>,
        action: Option<u64>,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<InstallReport, Error> {
        self.unlock(&mut artifact, action)?;
        let (pending, target, size, env) = self.begin_install(artifact.manifest(), action)?;
        self.write_and_arm(artifact, pending, target, size, env, progress)
    }

    /// Installs the first payload of a verified artifact whose chunks come from `source` (a
    /// delta rebuilding it from the active slot), then arms the trial, like [`Updater::install`].
    /// `manifest` is the artifact's verified manifest. A source that fails before the slot is
    /// armed leaves it unarmed; a delta that cannot rebuild the image ([`Error::is_delta`]) is
    /// not recorded as a failed update, so the caller can fall back to a full download.
    pub fn install_from(
        &mut self,
        manifest: &Manifest,
        source: &mut dyn ChunkSource,
        action: Option<u64>,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<InstallReport, Error> {
        let (pending, target, size, env) = self.begin_install(manifest, action)?;
        let result = self.write_chunks(source, target, size, &pending, progress);
        self.finish_write(result, pending, target, size, env)
    }

    /// An encrypted artifact: opens its content key with the device's key before anything is
    /// recorded or written. Not a recipient (or no key): a rejection, recorded as such.
    fn unlock<R: Read>(
        &mut self,
        artifact: &mut VerifiedArtifact<R>,
        action: Option<u64>,
    ) -> Result<(), Error> {
        if !artifact.head().is_encrypted() {
            return Ok(());
        }
        let key = match self.decryption_key.as_mut().map(|load| load()) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(key))) => Some(key),
            Some(Err(why)) => return Err(Error::DecryptionKey(why)),
        };
        if let Err(err) = artifact.unlock(key.as_ref()) {
            let err = Error::from(err);
            let version = artifact.manifest().version.clone();
            self.record_rejection(action, &version, &err)?;
            return Err(err);
        }
        Ok(())
    }

    /// Checks the device policy and the lifecycle, and records the pending install: everything
    /// before the first byte is written.
    fn begin_install(
        &mut self,
        manifest: &Manifest,
        action: Option<u64>,
    ) -> Result<(Pending, SlotId, u64, BootEnv), Error> {
        let env = self.seams.boot.load()?;
        // The same fleet action's install, interrupted (power cut, crash): do it again rather
        // than record it as failed.
        let redo = matches!(
            classify(&self.state, &env, self.booted),
            Situation::InstallInterrupted { ref pending }
                if action.is_some() && pending.action == action
        );
        let env = if redo { env } else { self.settle()? };
        match classify(&self.state, &env, self.booted) {
            Situation::Idle => {}
            Situation::InstallInterrupted { .. } if redo => {
                log::info!("installing again after an interruption (fleet action {action:?})");
            }
            Situation::ForeignSwitch => {
                return Err(Error::BootMismatch {
                    booted: self.booted,
                    env: env.slot,
                });
            }
            Situation::UnknownTrial => {
                return Err(Error::UpdatePending {
                    version: "(unknown)".into(),
                    slot: self.booted,
                });
            }
            Situation::AwaitingReboot { pending }
            | Situation::Trial { pending }
            | Situation::CommitInterrupted { pending }
            | Situation::RolledBack { pending, .. }
            | Situation::FellBack { pending }
            | Situation::InstallInterrupted { pending } => {
                return Err(Error::UpdatePending {
                    version: pending.release.version,
                    slot: pending.release.slot,
                });
            }
        }
        let device = DeviceFacts {
            device_type: &self.device_type,
            security_version: self.state.security_version,
            booted: self.booted,
        };
        let slots = &mut *self.seams.slots;
        let plan = match plan_install(manifest, &device, |slot| slots.capacity(slot)) {
            Ok(plan) => plan,
            Err(err) if err.is_rejection() => {
                let version = manifest.version.clone();
                self.record_rejection(action, &version, &err)?;
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let payload = &manifest.payloads[plan.payload_index];
        self.state.transactions += 1;
        let release = Release {
            slot: plan.target,
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            security_version: manifest.security_version,
            sha256: payload.sha256.to_string(),
        };
        let pending = Pending {
            transaction: format!("{}-{}", self.state.transactions, &release.sha256[..12]),
            release,
            stage: Stage::Writing,
            action,
            checkpoint: None,
        };
        let context = self.context(&pending);
        self.hook(HookEvent::BeforeInstall, &context)?;

        log::info!(
            "installing {} {} into slot {} ({} bytes)",
            pending.release.name,
            pending.release.version,
            plan.target,
            plan.size
        );
        self.state.pending = Some(pending.clone());
        self.save()?;
        Ok((pending, plan.target, plan.size, env))
    }

    /// Continues a fleet install that a power cut (or a crash) interrupted, at its last
    /// checkpoint instead of byte 0. `artifact` was opened with `VerifiedArtifact::resume` at
    /// that checkpoint (see [`Pending::checkpoint`]). The device policy is checked again; the
    /// before-install hook, which ran for this transaction already, is not.
    pub fn resume<R: Read>(
        &mut self,
        mut artifact: VerifiedArtifact<R>,
        action: u64,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<InstallReport, Error> {
        self.unlock(&mut artifact, Some(action))?;
        let cannot = |reason: &str| Error::CannotResume {
            reason: reason.into(),
        };
        let env = self.seams.boot.load()?;
        let pending = match classify(&self.state, &env, self.booted) {
            Situation::InstallInterrupted { pending } if pending.action == Some(action) => pending,
            _ => return Err(cannot("no interrupted install of this action")),
        };
        let Some(checkpoint) = pending.checkpoint else {
            return Err(cannot("the interrupted install has no checkpoint"));
        };
        let device = DeviceFacts {
            device_type: &self.device_type,
            security_version: self.state.security_version,
            booted: self.booted,
        };
        let slots = &mut *self.seams.slots;
        let plan = plan_install(artifact.manifest(), &device, |slot| slots.capacity(slot))?;
        let same_image = artifact
            .manifest()
            .payloads
            .first()
            .map(|p| p.sha256.to_string())
            == Some(pending.release.sha256.clone());
        if plan.target != pending.release.slot || !same_image {
            return Err(cannot(
                "the artifact or the slot differs from the interrupted install",
            ));
        }
        log::info!(
            "resuming the install of {} {} into slot {} at image byte {} (segment {})",
            pending.release.name,
            pending.release.version,
            plan.target,
            checkpoint.image_offset,
            checkpoint.segment
        );
        self.write_and_arm(artifact, pending, plan.target, plan.size, env, progress)
    }

    /// Writes the image (from the pending install's checkpoint, if any), then arms the trial.
    /// On any error the slot stays unarmed and the failure is recorded.
    fn write_and_arm<R: Read>(
        &mut self,
        artifact: VerifiedArtifact<R>,
        pending: Pending,
        target: SlotId,
        size: u64,
        env: BootEnv,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<InstallReport, Error> {
        let result = self.write_image(artifact, target, size, &pending, progress);
        self.finish_write(result, pending, target, size, env)
    }

    /// After the image was written (`result`): arms the trial, or records why not.
    fn finish_write(
        &mut self,
        result: Result<(), Error>,
        pending: Pending,
        target: SlotId,
        size: u64,
        env: BootEnv,
    ) -> Result<InstallReport, Error> {
        let context = self.context(&pending);
        match result {
            Ok(()) => {}
            // A fleet download that broke off (the link, not the artifact or the device): the
            // install stays interrupted, and the daemon continues it from its checkpoint at the
            // next cycle instead of failing the whole update over a bad link.
            Err(Error::Artifact(err)) if pending.action.is_some() && err.is_io() => {
                log::warn!(
                    "download of {} broke off; the install continues at the next attempt",
                    pending.release.version
                );
                return Err(Error::Artifact(err));
            }
            // A delta that cannot rebuild the image from this device's base: not a verdict on
            // the update, so nothing is recorded. The slot was never armed; the caller falls back
            // to a full download, which installs it again from the start.
            Err(Error::Artifact(err)) if err.is_delta() => {
                log::warn!(
                    "the delta for {} cannot be used: {err}",
                    pending.release.version
                );
                self.state.pending = None;
                self.save()?;
                return Err(Error::Artifact(err));
            }
            Err(err) => {
                let kind = match err {
                    Error::Stopped { .. } => OutcomeKind::Canceled,
                    _ if err.is_rejection() => OutcomeKind::Rejected,
                    _ => OutcomeKind::Failed,
                };
                self.record_failure(&pending, kind, format!("install failed: {}", chain(&err)))?;
                return Err(err);
            }
        }
        if let Some(pending) = self.state.pending.as_mut() {
            pending.checkpoint = None;
        }
        self.set_stage(Stage::Written)?;
        self.seams
            .boot
            .store(&BootEnv::trial(target, env.bootlimit))?;
        self.set_stage(Stage::Activated)?;
        self.hook(HookEvent::AfterInstall, &context)?;
        log::info!(
            "slot {target} armed for a trial boot of {}; reboot to try it",
            pending.release.version
        );
        Ok(InstallReport {
            transaction: pending.transaction,
            slot: target,
            version: pending.release.version,
            bytes: size,
        })
    }

    /// Streams the first payload into `slot`, from the pending install's checkpoint when it has
    /// one. A fleet install (`pending.action`) records a checkpoint at every segment boundary,
    /// after the data before it is fsynced, so that a power cut costs at most one segment.
    fn write_image<R: Read>(
        &mut self,
        mut artifact: VerifiedArtifact<R>,
        slot: SlotId,
        size: u64,
        pending: &Pending,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<(), Error> {
        let mut payload = match pending.checkpoint {
            None => artifact.next_payload()?.ok_or(Error::NoRootfsPayload)?,
            Some(_) => {
                let mut prefix = self.seams.slots.reader(slot)?;
                artifact.resume_payload(&mut prefix)?
            }
        };
        self.write_chunks(&mut payload, slot, size, pending, progress)?;
        drop(payload);
        // Trailing bytes after the last payload make the artifact invalid as a whole.
        Ok(artifact.finish()?)
    }

    /// Writes verified chunks into `slot` and fsyncs it. A fleet install (`pending.action`)
    /// records a checkpoint at every segment boundary the source offers, after the data before it
    /// is fsynced, so that a power cut costs at most one segment.
    fn write_chunks(
        &mut self,
        payload: &mut dyn ChunkSource,
        slot: SlotId,
        size: u64,
        pending: &Pending,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<(), Error> {
        let checkpoints = pending.action.is_some();
        let mut sink = self.seams.slots.open(slot)?;
        while let Some(chunk) = payload.next_chunk()? {
            match chunk.data {
                ChunkData::Bytes(bytes) => sink.write(chunk.offset, bytes)?,
                ChunkData::Zeros(len) => sink.write_zeros(chunk.offset, len)?,
            }
            progress(chunk.offset + chunk.data.len(), size)
                .map_err(|reason| Error::Stopped { reason })?;
            if checkpoints && let Some(point) = payload.segment_end() {
                // The data before the point is durable before the state says so.
                sink.sync()?;
                if let Some(pending) = self.state.pending.as_mut() {
                    pending.checkpoint = Some(Checkpoint {
                        segment: point.segment as u64,
                        image_offset: point.image_offset,
                    });
                }
                self.seams.state.store(&self.state)?;
                log::info!(
                    "checkpoint: segment {} from image byte {} (a download cut after this resumes here)",
                    point.segment,
                    point.image_offset
                );
            }
        }
        sink.finish()
    }

    /// Finalises situations that need no decision before a new install starts.
    fn settle(&mut self) -> Result<BootEnv, Error> {
        let env = self.seams.boot.load()?;
        match classify(&self.state, &env, self.booted) {
            situation @ (Situation::RolledBack { .. }
            | Situation::FellBack { .. }
            | Situation::InstallInterrupted { .. }) => {
                self.record_finished(situation, env)?;
                self.seams.boot.load()
            }
            Situation::CommitInterrupted { pending } => {
                self.finish_commit(&pending)?;
                self.seams.boot.load()
            }
            _ => Ok(env),
        }
    }
}
