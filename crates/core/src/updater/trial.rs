//! The decisions on a trial: the boot-time check (health checks, then commit or rollback),
//! rollback by hand and the rollback guard, in the order stated in [`updater`](super).

use super::Updater;
use crate::error::chain;
use crate::hooks::HookEvent;
use crate::lifecycle::{Situation, classify};
use crate::report::BootReport;
use crate::state::{Outcome, OutcomeKind, Pending, Release, Stage};
use crate::{BootEnv, Error};
use std::time::Duration;

impl Updater<'_> {
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
            .and_then(|()| self.seams.health.run(&context).map_err(|e| e.to_string()))
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

    pub(super) fn finish_commit(&mut self, pending: &Pending) -> Result<(), Error> {
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
}
