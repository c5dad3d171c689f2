//! The seams the [`Updater`](crate::Updater) works through, besides [`BootControl`] (in
//! [`boot`](crate::boot), beside the contract it stores) and [`StateStore`] (in
//! [`state`](crate::state)): slot targets, health checks, hooks, reboot and the clock.
//!
//! Only traits live here. The real adapters are in the client (`client/src/sys`), the in-memory
//! ones in `rustupdate-testkit`; nothing here does I/O.

use crate::hooks::{Context, HookError, HookEvent};
use crate::{BootControl, Error, SlotId, StateStore};
use std::time::Duration;

/// Writes an image into a slot. `sync` makes everything written so far durable and keeps the
/// sink open (resume checkpoints); `finish` makes everything durable (fsync) and ends it.
pub trait ImageSink {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error>;
    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Error>;
    fn sync(&mut self) -> Result<(), Error>;
    fn finish(&mut self) -> Result<(), Error>;
}

/// The slot devices.
pub trait SlotTargets {
    fn capacity(&mut self, slot: SlotId) -> Result<u64, Error>;
    fn open(&mut self, slot: SlotId) -> Result<Box<dyn ImageSink + '_>, Error>;
    /// Reads the slot from its start (the image written before a resume point).
    fn reader(&mut self, slot: SlotId) -> Result<Box<dyn std::io::Read + '_>, Error>;
    /// Checks that the slot could be opened for writing, without writing (built-in health check).
    fn probe_writable(&mut self, slot: SlotId) -> Result<(), Error>;
}

/// Runs the health checks after a trial boot. `Err` says which check failed and how; its text is
/// the reason for the rollback.
pub trait HealthChecks {
    fn run(&mut self, context: &Context) -> Result<(), HookError>;
}

/// Lifecycle hooks. `Err` says which hook failed and how.
pub trait Hooks {
    fn run(&mut self, event: HookEvent, context: &Context) -> Result<(), HookError>;
}

/// Requests a reboot. Returning does not mean the device rebooted yet.
pub trait Reboot {
    fn reboot(&mut self) -> Result<(), Error>;
}

/// Time as the updater needs it: how long this boot has been running (the rollback guard).
pub trait Clock {
    fn uptime(&mut self) -> Result<Duration, Error>;
}

/// The adapters an [`Updater`](crate::Updater) works through.
pub struct Seams<'a> {
    pub boot: &'a mut dyn BootControl,
    pub state: &'a mut dyn StateStore,
    pub slots: &'a mut dyn SlotTargets,
    pub health: &'a mut dyn HealthChecks,
    pub hooks: &'a mut dyn Hooks,
    pub reboot: &'a mut dyn Reboot,
    pub clock: &'a mut dyn Clock,
}

impl std::fmt::Debug for Seams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seams")
    }
}
