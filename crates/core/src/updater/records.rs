//! The outcomes the updater writes to the state: a finished fallback, rollback or interrupted
//! install, a failure, a rejection, an abandoned fleet install, a result the server accepted.

use super::Updater;
use crate::error::chain;
use crate::hooks::HookEvent;
use crate::lifecycle::{Situation, classify};
use crate::state::{Outcome, OutcomeKind, Pending};
use crate::{BootEnv, Error};

impl Updater<'_> {
    /// Records fallback, rollback or interrupted install, and makes sure the bootloader is clean.
    pub(super) fn record_finished(
        &mut self,
        situation: Situation,
        env: BootEnv,
    ) -> Result<Outcome, Error> {
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
        let outcome = self.end_pending(&pending, kind, detail)?;
        // A client rollback ran its on-rollback hook before the reboot; the rest are failures.
        if kind != OutcomeKind::RolledBack {
            let context = self.context(&pending);
            self.hook_logged(HookEvent::OnFailure, &context);
        }
        log::warn!("update {} {kind}: {}", outcome.version, outcome.detail);
        Ok(outcome)
    }

    pub(super) fn record_failure(
        &mut self,
        pending: &Pending,
        kind: OutcomeKind,
        detail: String,
    ) -> Result<Outcome, Error> {
        let outcome = self.end_pending(pending, kind, detail)?;
        self.hook_logged(HookEvent::OnFailure, &self.context(pending));
        Ok(outcome)
    }

    /// Ends `pending` with its outcome: one durable write of the state, no pending update and
    /// the outcome as the last result.
    fn end_pending(
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
    /// sent again (see [`crate::daemon::owed`]).
    pub fn mark_reported(&mut self, action: u64) -> Result<(), Error> {
        if self.state.reported_action != Some(action) {
            self.state.reported_action = Some(action);
            self.save()?;
        }
        Ok(())
    }
}
