//! The update procedures, run through the [`seams`](crate::seams). Every durable step is one
//! write through a seam, and the order is chosen so that a power cut between any two leaves a
//! device that boots a good slot and a state that [`classify`] maps to a converging situation:
//!
//! install:  state(pending: Writing) -> image to inactive slot + fsync -> state(Written)
//!           -> env(trial of new slot) -> state(Activated)
//! commit:   env(committed new slot) -> state(committed, no pending)
//! rollback: state(RollingBack) -> env(committed old slot) -> reboot -> state(no pending), recorded
//!           on the next boot
//!
//! It does not decide what a boot means ([`crate::lifecycle`]) or whether an artifact fits this
//! device ([`crate::policy`]); it does no I/O of its own.

use crate::error::chain;
use crate::hooks::{Context, HookEvent};
use crate::lifecycle::{Situation, classify};
use crate::policy::{DeviceFacts, plan_install};
use crate::report::{BootEnvStatus, BootReport, InstallReport, Status};
use crate::seams::Seams;
use crate::state::{Checkpoint, Loaded, Outcome, OutcomeKind, Pending, Release, Stage, State};
use crate::{BootEnv, Error, SlotId};
use rustupdate_format::Manifest;
use rustupdate_verify::{ChunkData, ChunkSource, VerifiedArtifact};
use std::io::Read;
use std::time::Duration;

pub struct Updater<'a> {
    device_type: String,
    booted: SlotId,
    seams: Seams<'a>,
    state: State,
    recovered_from: Option<String>,
}

impl std::fmt::Debug for Updater<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("booted", &self.booted)
            .field("state", &self.state)
            .finish()
    }
}

impl<'a> Updater<'a> {
    /// Loads the state. A state that had to be recovered (corrupt file) is rebuilt from what the
    /// bootloader says: the booted slot is the committed one unless it is on trial.
    pub fn new(device_type: &str, booted: SlotId, seams: Seams<'a>) -> Result<Updater<'a>, Error> {
        let Loaded {
            state,
            recovered_from,
        } = seams.state.load()?;
        if let Some(why) = &recovered_from {
            log::warn!(
                "state was unreadable ({why}); rebuilding it from the bootloader environment"
            );
        }
        Ok(Updater {
            device_type: device_type.into(),
            booted,
            seams,
            state,
            recovered_from,
        })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn status(&mut self) -> Result<Status, Error> {
        let env = self.seams.boot.load()?;
        let situation = classify(&self.state, &env, self.booted);
        Ok(Status {
            device_type: self.device_type.clone(),
            booted_slot: self.booted,
            bootloader: BootEnvStatus {
                slot: env.slot,
                upgrade_available: env.upgrade_available,
                bootcount: env.bootcount,
                bootlimit: env.bootlimit,
            },
            situation: situation.kind(),
            committed: self.state.committed.clone(),
            security_version: self.state.security_version,
            pending: self.state.pending.clone(),
            last_result: self.state.last_result.clone(),
            recovered_from: self.recovered_from.clone(),
        })
    }

    /// Installs a verified artifact into the inactive slot and arms the bootloader to try it.
    /// Device policy is checked before the first byte is written; on any error the slot is left
    /// unarmed and the failure (or the rejection) is recorded, with the fleet `action` it answers.
    /// `progress` is told the bytes written so far and the total; an `Err` from it stops the
    /// install before the slot is armed ([`Error::Stopped`]).
    pub fn install<R: Read>(
        &mut self,
        artifact: VerifiedArtifact<R>,
        action: Option<u64>,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<InstallReport, Error> {
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
        artifact: VerifiedArtifact<R>,
        action: u64,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<InstallReport, Error> {
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

    /// The boot-time step (`rustupdate commit`): on a trial boot, run the health checks and
    /// commit or roll back; otherwise record whatever finished since the last run.
    pub fn boot_check(&mut self) -> Result<BootReport, Error> {
        let env = self.seams.boot.load()?;
        match classify(&self.state, &env, self.booted) {
            Situation::Idle | Situation::ForeignSwitch => Ok(BootReport::Nothing),
            Situation::AwaitingReboot { pending } => {
                if pending.stage != Stage::Activated {
                    self.set_stage(Stage::Activated)?;
                }
                Ok(BootReport::AwaitingReboot {
                    version: pending.release.version,
                })
            }
            Situation::Trial { pending } => self.decide_trial(Some(pending), env),
            Situation::UnknownTrial => self.decide_trial(None, env),
            Situation::CommitInterrupted { pending } => {
                self.finish_commit(&pending)?;
                Ok(BootReport::Committed {
                    version: pending.release.version,
                })
            }
            // A fleet install interrupted by a power cut is the daemon's to redo (the server
            // still wants it) or to drop (the server cancelled it), not a failure yet.
            Situation::InstallInterrupted { pending } if pending.action.is_some() => {
                Ok(BootReport::Interrupted {
                    version: pending.release.version,
                })
            }
            situation @ (Situation::RolledBack { .. }
            | Situation::FellBack { .. }
            | Situation::InstallInterrupted { .. }) => {
                let outcome = self.record_finished(situation, env)?;
                Ok(BootReport::Recorded { outcome })
            }
        }
    }

    /// Rolls back by hand: a trial goes back to the old slot (and reboots); an armed but not yet
    /// booted update is cancelled.
    pub fn rollback(&mut self, reason: &str) -> Result<BootReport, Error> {
        let env = self.seams.boot.load()?;
        match classify(&self.state, &env, self.booted) {
            Situation::Trial { pending } => self.roll_back(Some(&pending), reason),
            Situation::UnknownTrial => self.roll_back(None, reason),
            Situation::AwaitingReboot { pending } => {
                self.seams
                    .boot
                    .store(&BootEnv::committed(self.booted, env.bootlimit))?;
                let outcome = self.record_failure(
                    &pending,
                    OutcomeKind::Failed,
                    format!("cancelled before reboot: {reason}"),
                )?;
                Ok(BootReport::Recorded { outcome })
            }
            _ => Err(Error::NoTrial {
                action: "roll back",
            }),
        }
    }

    /// The rollback guard: once this boot has been up for `limit`, a trial still undecided is
    /// rolled back. Before that it looks at nothing. An unreadable clock is an error, never a
    /// silent "not yet".
    pub fn guard(&mut self, limit: Duration) -> Result<BootReport, Error> {
        let uptime = self.seams.clock.uptime()?;
        if uptime < limit {
            return Ok(BootReport::GuardNotDue {
                uptime_secs: uptime.as_secs(),
                limit_secs: limit.as_secs(),
            });
        }
        let reason = format!(
            "rollback guard: trial still undecided after {} s",
            limit.as_secs()
        );
        let env = self.seams.boot.load()?;
        match classify(&self.state, &env, self.booted) {
            Situation::Trial { pending } => self.roll_back(Some(&pending), &reason),
            Situation::UnknownTrial => self.roll_back(None, &reason),
            _ => Ok(BootReport::Nothing),
        }
    }

    fn decide_trial(
        &mut self,
        pending: Option<Pending>,
        env: BootEnv,
    ) -> Result<BootReport, Error> {
        let pending_or_unknown = pending.clone().unwrap_or_else(|| self.unknown_pending());
        let context = self.context(&pending_or_unknown);
        log::info!(
            "trial boot of {} in slot {} (boot {} of {})",
            context.version,
            self.booted,
            env.bootcount,
            env.bootlimit
        );
        let verdict = self
            .builtin_health_check()
            .and_then(|()| self.seams.health.run(&context))
            .and_then(|()| {
                self.seams
                    .hooks
                    .run(HookEvent::BeforeCommit, &context)
                    .map_err(|e| format!("before-commit hook: {e}"))
            });
        match verdict {
            Ok(()) => {
                self.finish_commit(&pending_or_unknown)?;
                self.hook_logged(HookEvent::AfterCommit, &context);
                Ok(BootReport::Committed {
                    version: context.version,
                })
            }
            Err(reason) => {
                log::error!("health check failed: {reason}");
                self.roll_back(pending.as_ref(), &reason)
            }
        }
    }

    /// "Can this device take another update?": the environment reads back, the state can be
    /// written and the other slot can be opened for writing.
    fn builtin_health_check(&mut self) -> Result<(), String> {
        self.seams
            .boot
            .load()
            .map_err(|e| format!("built-in check: bootloader environment: {}", chain(&e)))?;
        self.seams
            .state
            .store(&self.state)
            .map_err(|e| format!("built-in check: state store: {}", chain(&e)))?;
        self.seams
            .slots
            .probe_writable(self.booted.other())
            .map_err(|e| {
                format!(
                    "built-in check: slot {}: {}",
                    self.booted.other(),
                    chain(&e)
                )
            })
    }

    fn finish_commit(&mut self, pending: &Pending) -> Result<(), Error> {
        let env = self.seams.boot.load()?;
        // First the bootloader: from here on the new slot is the default.
        self.seams
            .boot
            .store(&BootEnv::committed(self.booted, env.bootlimit))?;
        let release = Release {
            slot: self.booted,
            ..pending.release.clone()
        };
        self.state.security_version = self
            .state
            .security_version
            .max(release.security_version.unwrap_or(0));
        self.state.committed = Some(release);
        self.state.pending = None;
        self.state.last_result = Some(Outcome {
            transaction: pending.transaction.clone(),
            version: pending.release.version.clone(),
            result: OutcomeKind::Committed,
            detail: format!("committed slot {}", self.booted),
            action: pending.action,
        });
        self.save()?;
        log::info!(
            "committed {} in slot {}",
            pending.release.version,
            self.booted
        );
        Ok(())
    }

    fn roll_back(&mut self, pending: Option<&Pending>, reason: &str) -> Result<BootReport, Error> {
        let pending = pending.cloned().unwrap_or_else(|| self.unknown_pending());
        let context = self.context(&pending);
        // First remember why, so that the next boot records a rollback and not a fallback.
        self.state.pending = Some(Pending {
            stage: Stage::RollingBack {
                reason: reason.into(),
            },
            ..pending
        });
        self.save()?;
        let env = self.seams.boot.load()?;
        self.seams
            .boot
            .store(&BootEnv::committed(self.booted.other(), env.bootlimit))?;
        self.hook_logged(HookEvent::OnRollback, &context);
        self.hook_logged(HookEvent::BeforeReboot, &context);
        log::warn!(
            "rolling back to slot {}: {reason}; rebooting",
            self.booted.other()
        );
        self.seams.reboot.reboot()?;
        Ok(BootReport::RollingBack {
            reason: reason.into(),
        })
    }

    /// Records fallback, rollback or interrupted install, and makes sure the bootloader is clean.
    fn record_finished(&mut self, situation: Situation, env: BootEnv) -> Result<Outcome, Error> {
        let (pending, kind, detail) = match situation {
            Situation::RolledBack { pending, reason } => (pending, OutcomeKind::RolledBack, reason),
            Situation::FellBack { pending } => {
                let detail = format!(
                    "the bootloader fell back to slot {}: the new slot did not come up",
                    self.booted
                );
                (pending, OutcomeKind::FellBack, detail)
            }
            Situation::InstallInterrupted { pending } => (
                pending,
                OutcomeKind::Failed,
                "install interrupted before activation".to_string(),
            ),
            _ => return Err(Error::NoTrial { action: "record" }),
        };
        let clean = BootEnv::committed(self.booted, env.bootlimit);
        if env != clean {
            self.seams.boot.store(&clean)?;
        }
        let outcome = Outcome {
            transaction: pending.transaction.clone(),
            version: pending.release.version.clone(),
            result: kind,
            detail,
            action: pending.action,
        };
        self.state.pending = None;
        self.state.last_result = Some(outcome.clone());
        self.save()?;
        // A client rollback ran its on-rollback hook before the reboot; the rest are failures.
        if kind != OutcomeKind::RolledBack {
            let context = self.context(&pending);
            self.hook_logged(HookEvent::OnFailure, &context);
        }
        log::warn!("update {} {kind}: {}", outcome.version, outcome.detail);
        Ok(outcome)
    }

    fn record_failure(
        &mut self,
        pending: &Pending,
        kind: OutcomeKind,
        detail: String,
    ) -> Result<Outcome, Error> {
        let outcome = Outcome {
            transaction: pending.transaction.clone(),
            version: pending.release.version.clone(),
            result: kind,
            detail,
            action: pending.action,
        };
        self.state.pending = None;
        self.state.last_result = Some(outcome.clone());
        self.save()?;
        self.hook_logged(HookEvent::OnFailure, &self.context(pending));
        Ok(outcome)
    }

    /// Records that an artifact was refused before anything was written: by the device policy
    /// (called by [`Updater::install`]) or, before the updater saw it, by its signatures or
    /// format (called by the client). `version` is what is known of it. A pending update is
    /// left alone.
    ///
    /// A rejection that repeats the one on record (same version, reason and fleet action) is
    /// not written again: a source that keeps offering the same garbage must not keep writing
    /// the flash. The recorded outcome is returned then.
    pub fn record_rejection(
        &mut self,
        action: Option<u64>,
        version: &str,
        err: &dyn std::error::Error,
    ) -> Result<Outcome, Error> {
        let detail = format!("artifact rejected: {}", chain(err));
        if let Some(recorded) = &self.state.last_result
            && recorded.result == OutcomeKind::Rejected
            && recorded.version == version
            && recorded.detail == detail
            && recorded.action == action
        {
            log::warn!("{detail} (as before; the state is not written again)");
            return Ok(recorded.clone());
        }
        self.state.transactions += 1;
        let outcome = Outcome {
            transaction: format!("{}-rejected", self.state.transactions),
            version: version.into(),
            result: OutcomeKind::Rejected,
            detail,
            action,
        };
        self.state.last_result = Some(outcome.clone());
        self.save()?;
        log::warn!("{}", outcome.detail);
        Ok(outcome)
    }

    /// Ends an interrupted fleet install of `action` for good: `Canceled` when the server
    /// cancelled it (the result then goes to the cancel resource), `Failed` when the daemon gives
    /// up on a download that keeps breaking off. Anything else: `None`.
    pub fn abandon_interrupted(
        &mut self,
        action: u64,
        kind: OutcomeKind,
        detail: String,
    ) -> Result<Option<Outcome>, Error> {
        let env = self.seams.boot.load()?;
        match classify(&self.state, &env, self.booted) {
            Situation::InstallInterrupted { pending } if pending.action == Some(action) => {
                Ok(Some(self.record_failure(&pending, kind, detail)?))
            }
            _ => Ok(None),
        }
    }

    /// Records that the fleet server accepted the final result of `action`, so that it is not
    /// sent again (see [`crate::fleet::owed`]).
    pub fn mark_reported(&mut self, action: u64) -> Result<(), Error> {
        if self.state.reported_action != Some(action) {
            self.state.reported_action = Some(action);
            self.save()?;
        }
        Ok(())
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

    fn set_stage(&mut self, stage: Stage) -> Result<(), Error> {
        if let Some(pending) = self.state.pending.as_mut() {
            pending.stage = stage;
        }
        self.save()
    }

    fn save(&mut self) -> Result<(), Error> {
        self.seams.state.store(&self.state)?;
        self.recovered_from = None;
        Ok(())
    }

    /// The trial of a slot the state has no update for (the bootloader armed it by itself, e.g.
    /// after the newest copy of its environment was lost): the release the state knows for that
    /// slot if it is the committed one, else "unknown".
    fn unknown_pending(&self) -> Pending {
        let known = self
            .state
            .committed
            .clone()
            .filter(|release| release.slot == self.booted);
        Pending {
            transaction: "unknown".into(),
            release: known.unwrap_or_else(|| Release {
                slot: self.booted,
                name: "unknown".into(),
                version: "unknown".into(),
                security_version: None,
                sha256: String::new(),
            }),
            stage: Stage::Activated,
            action: None,
            checkpoint: None,
        }
    }

    fn context(&self, pending: &Pending) -> Context {
        Context {
            transaction: pending.transaction.clone(),
            booted_slot: self.booted,
            target_slot: pending.release.slot,
            version: pending.release.version.clone(),
            previous_version: self.state.committed.as_ref().map(|r| r.version.clone()),
        }
    }

    fn hook(&mut self, event: HookEvent, context: &Context) -> Result<(), Error> {
        match self.seams.hooks.run(event, context) {
            Err(reason) if event.can_refuse() => Err(Error::HookRefused {
                event: event.name(),
                reason,
            }),
            Err(reason) => {
                log::warn!("{} hook failed (ignored): {reason}", event.name());
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn hook_logged(&mut self, event: HookEvent, context: &Context) {
        if let Err(reason) = self.seams.hooks.run(event, context) {
            log::warn!("{} hook failed (ignored): {reason}", event.name());
        }
    }
}
