//! The update procedures, run through the seams. Every durable step is one write through a seam,
//! and the order is chosen so that a power cut between any two leaves a device that boots a good
//! slot and a state that [`classify`](crate::lifecycle::classify) maps to a converging situation:
//!
//! install:  state(pending: Writing) -> image to inactive slot + fsync -> state(Written)
//!           -> env(trial of new slot) -> state(Activated)
//! commit:   env(committed new slot) -> state(committed, no pending)
//! rollback: state(RollingBack) -> env(committed old slot) -> reboot -> state(no pending), recorded
//!           on the next boot

use crate::lifecycle::{Situation, classify};
use crate::policy::plan_install;
use crate::state::{Loaded, Outcome, OutcomeKind, Pending, Release, Stage, State};
use crate::{BootControl, BootEnv, Error, SlotId, StateStore};
use rustupdate_verify::{ChunkData, VerifiedArtifact};
use serde::Serialize;
use std::io::Read;

/// Writes an image into a slot. `finish` makes everything durable (fsync).
pub trait ImageSink {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error>;
    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Error>;
    fn finish(&mut self) -> Result<(), Error>;
}

/// The slot devices.
pub trait SlotTargets {
    fn capacity(&mut self, slot: SlotId) -> Result<u64, Error>;
    fn open(&mut self, slot: SlotId) -> Result<Box<dyn ImageSink + '_>, Error>;
    /// Checks that the slot could be opened for writing, without writing (built-in health check).
    fn probe_writable(&mut self, slot: SlotId) -> Result<(), Error>;
}

/// What health checks and hooks get to know about the transition.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Context {
    pub transaction: String,
    pub booted_slot: SlotId,
    pub target_slot: SlotId,
    pub version: String,
    pub previous_version: Option<String>,
}

/// Runs the health checks after a trial boot. `Err` carries the reason for the rollback.
pub trait HealthChecks {
    fn run(&mut self, context: &Context) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    BeforeInstall,
    AfterInstall,
    BeforeReboot,
    BeforeCommit,
    AfterCommit,
    OnRollback,
    OnFailure,
}

impl HookEvent {
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::BeforeInstall => "before-install",
            HookEvent::AfterInstall => "after-install",
            HookEvent::BeforeReboot => "before-reboot",
            HookEvent::BeforeCommit => "before-commit",
            HookEvent::AfterCommit => "after-commit",
            HookEvent::OnRollback => "on-rollback",
            HookEvent::OnFailure => "on-failure",
        }
    }

    /// A failing hook stops these transitions; for the others its failure is only logged.
    pub fn can_refuse(self) -> bool {
        matches!(self, HookEvent::BeforeInstall | HookEvent::BeforeCommit)
    }
}

/// Lifecycle hooks. `Err` is the hook's complaint.
pub trait Hooks {
    fn run(&mut self, event: HookEvent, context: &Context) -> Result<(), String>;
}

pub trait Reboot {
    fn reboot(&mut self) -> Result<(), Error>;
}

/// The adapters an [`Updater`] works through.
pub struct Seams<'a> {
    pub boot: &'a mut dyn BootControl,
    pub state: &'a mut dyn StateStore,
    pub slots: &'a mut dyn SlotTargets,
    pub health: &'a mut dyn HealthChecks,
    pub hooks: &'a mut dyn Hooks,
    pub reboot: &'a mut dyn Reboot,
}

impl std::fmt::Debug for Seams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seams")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum BootReport {
    /// Nothing was pending.
    Nothing,
    /// The new slot is installed and armed; reboot to try it.
    AwaitingReboot { version: String },
    /// The trial passed; the new slot is committed.
    Committed { version: String },
    /// The trial failed; the device was switched back and a reboot was requested.
    RollingBack { reason: String },
    /// A finished update was recorded (fallback, rollback, interrupted install).
    Recorded { outcome: Outcome },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstallReport {
    pub transaction: String,
    pub slot: SlotId,
    pub version: String,
    pub bytes: u64,
}

/// The state of the device for `rustupdate status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    pub device_type: String,
    pub booted_slot: SlotId,
    pub bootloader: BootEnvStatus,
    pub situation: String,
    pub committed: Option<Release>,
    pub security_version: u64,
    pub pending: Option<Pending>,
    pub last_result: Option<Outcome>,
    pub recovered_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BootEnvStatus {
    pub slot: SlotId,
    pub upgrade_available: bool,
    pub bootcount: u32,
    pub bootlimit: u32,
}

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
            situation: situation_name(&situation).into(),
            committed: self.state.committed.clone(),
            security_version: self.state.security_version,
            pending: self.state.pending.clone(),
            last_result: self.state.last_result.clone(),
            recovered_from: self.recovered_from.clone(),
        })
    }

    /// Installs a verified artifact into the inactive slot and arms the bootloader to try it.
    /// Device policy is checked before the first byte is written; on any error the slot is left
    /// unarmed and the failure is recorded.
    pub fn install<R: Read>(
        &mut self,
        artifact: VerifiedArtifact<R>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<InstallReport, Error> {
        let env = self.settle()?;
        match classify(&self.state, &env, self.booted) {
            Situation::Idle => {}
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
        let plan = plan_install(
            artifact.manifest(),
            &self.device_type,
            self.state.security_version,
            self.booted,
        )?;
        let capacity = self.seams.slots.capacity(plan.target)?;
        if plan.size > capacity {
            return Err(Error::SlotTooSmall {
                slot: plan.target,
                size: plan.size,
                capacity,
            });
        }
        let manifest = artifact.manifest();
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
        match self.write_image(artifact, plan.target, plan.size, progress) {
            Ok(()) => {}
            Err(err) => {
                self.record_failure(&pending, format!("install failed: {err}"))?;
                return Err(err);
            }
        }
        self.set_stage(Stage::Written)?;
        self.seams
            .boot
            .store(&BootEnv::trial(plan.target, env.bootlimit))?;
        self.set_stage(Stage::Activated)?;
        self.hook(HookEvent::AfterInstall, &context)?;
        log::info!(
            "slot {} armed for a trial boot of {}; reboot to try it",
            plan.target,
            pending.release.version
        );
        Ok(InstallReport {
            transaction: pending.transaction,
            slot: plan.target,
            version: pending.release.version,
            bytes: plan.size,
        })
    }

    fn write_image<R: Read>(
        &mut self,
        mut artifact: VerifiedArtifact<R>,
        slot: SlotId,
        size: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), Error> {
        let mut sink = self.seams.slots.open(slot)?;
        let Some(mut payload) = artifact.next_payload()? else {
            return Err(Error::NoRootfsPayload);
        };
        while let Some(chunk) = payload.next_chunk()? {
            match chunk.data {
                ChunkData::Bytes(bytes) => sink.write(chunk.offset, bytes)?,
                ChunkData::Zeros(len) => sink.write_zeros(chunk.offset, len)?,
            }
            progress(chunk.offset + chunk.data.len(), size);
        }
        drop(payload);
        // Trailing bytes after the last payload make the artifact invalid as a whole.
        artifact.finish()?;
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
                let outcome =
                    self.record_failure(&pending, format!("cancelled before reboot: {reason}"))?;
                Ok(BootReport::Recorded { outcome })
            }
            _ => Err(Error::NoTrial {
                action: "roll back",
            }),
        }
    }

    /// The rollback guard: a trial still undecided when the guard fires is rolled back.
    pub fn guard(&mut self, reason: &str) -> Result<BootReport, Error> {
        let env = self.seams.boot.load()?;
        match classify(&self.state, &env, self.booted) {
            Situation::Trial { pending } => self.roll_back(Some(&pending), reason),
            Situation::UnknownTrial => self.roll_back(None, reason),
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
            .map_err(|e| format!("built-in check: bootloader environment: {e}"))?;
        self.seams
            .state
            .store(&self.state)
            .map_err(|e| format!("built-in check: state store: {e}"))?;
        self.seams
            .slots
            .probe_writable(self.booted.other())
            .map_err(|e| format!("built-in check: slot {}: {e}", self.booted.other()))
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
        };
        self.state.pending = None;
        self.state.last_result = Some(outcome.clone());
        self.save()?;
        // A client rollback ran its on-rollback hook before the reboot; the rest are failures.
        if kind != OutcomeKind::RolledBack {
            let context = self.context(&pending);
            self.hook_logged(HookEvent::OnFailure, &context);
        }
        log::warn!(
            "update {} {}: {}",
            outcome.version,
            kind_name(kind),
            outcome.detail
        );
        Ok(outcome)
    }

    fn record_failure(&mut self, pending: &Pending, detail: String) -> Result<Outcome, Error> {
        let outcome = Outcome {
            transaction: pending.transaction.clone(),
            version: pending.release.version.clone(),
            result: OutcomeKind::Failed,
            detail,
        };
        self.state.pending = None;
        self.state.last_result = Some(outcome.clone());
        self.save()?;
        self.hook_logged(HookEvent::OnFailure, &self.context(pending));
        Ok(outcome)
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

    fn unknown_pending(&self) -> Pending {
        Pending {
            transaction: "unknown".into(),
            release: Release {
                slot: self.booted,
                name: "unknown".into(),
                version: "unknown".into(),
                security_version: None,
                sha256: String::new(),
            },
            stage: Stage::Activated,
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

pub fn situation_name(situation: &Situation) -> &'static str {
    match situation {
        Situation::Idle => "idle",
        Situation::AwaitingReboot { .. } => "awaiting-reboot",
        Situation::Trial { .. } => "trial",
        Situation::CommitInterrupted { .. } => "commit-interrupted",
        Situation::RolledBack { .. } => "rolled-back",
        Situation::FellBack { .. } => "fell-back",
        Situation::InstallInterrupted { .. } => "install-interrupted",
        Situation::UnknownTrial => "unknown-trial",
        Situation::ForeignSwitch => "foreign-switch",
    }
}

fn kind_name(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Committed => "committed",
        OutcomeKind::RolledBack => "rolled back",
        OutcomeKind::FellBack => "fell back",
        OutcomeKind::Failed => "failed",
    }
}
