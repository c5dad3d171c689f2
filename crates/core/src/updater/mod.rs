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
//! This is the one statement of that order; the procedures are split by what they do, each an
//! `impl Updater` of its own:
//!
//! - here: the [`Updater`] itself, its construction, its status and the helpers all of them use
//!   (saving the state, the hook context, running hooks);
//! - `install`: install, install from a chunk source (delta), resume, and writing the image;
//! - `trial`: the boot-time check (health checks, then commit or rollback), rollback by hand and
//!   the rollback guard;
//! - `records`: the outcomes written to the state (finished, failed, rejected, abandoned,
//!   reported).
//!
//! It does not decide what a boot means ([`crate::lifecycle`]) or whether an artifact fits this
//! device ([`crate::policy`]); it does no I/O of its own.

mod install;
mod records;
mod trial;

use crate::hooks::{Context, HookEvent};
use crate::lifecycle::classify;
use crate::report::{BootEnvStatus, Status};
use crate::seams::Seams;
use crate::state::{Loaded, Pending, Release, Stage, State};
use crate::{Error, SlotId};

pub struct Updater<'a> {
    device_type: String,
    booted: SlotId,
    seams: Seams<'a>,
    state: State,
    recovered_from: Option<String>,
    /// Loads the device's recipient key for encrypted artifacts (docs/encryption.md), only when
    /// an encrypted artifact is installed: none configured, the key, or why it cannot be used.
    decryption_key: Option<Box<KeyLoader<'a>>>,
}

/// Reads the configured decryption key: `Ok(None)` when none is configured.
pub type KeyLoader<'a> =
    dyn FnMut() -> Result<Option<rustupdate_seal::RecipientSecretKey>, String> + 'a;

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
            decryption_key: None,
        })
    }

    /// How to load the key encrypted artifacts are opened with; called only for an encrypted
    /// install (a key that cannot be loaded fails that install, naming why).
    pub fn with_decryption_key(mut self, load: Box<KeyLoader<'a>>) -> Self {
        self.decryption_key = Some(load);
        self
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
