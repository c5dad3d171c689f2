//! The update state machine of the rustupdate client, without I/O.
//!
//! - [`slot`]: the two root filesystem slots.
//! - [`boot`]: the bootloader variables of `docs/boot-contract.md` and the [`BootControl`] seam.
//! - [`state`]: what the client persists on the data partition and the [`StateStore`] seam.
//! - [`policy`]: device checks on a verified artifact (device type, security version, target slot),
//!   producing an [`policy::InstallPlan`] before the first byte is written.
//! - [`lifecycle`]: pure decisions: what a boot means given state, environment and booted slot.
//! - [`updater`]: [`Updater`], which runs install, boot-time commit or rollback, and rollback by
//!   hand through the seams, in an order that survives a power cut at any durable write.
//!
//! The real adapters (env files, block devices, state files, scripts, reboot) live in the client
//! binary; tests use in-memory fakes. Nothing here reads a clock, a file or the kernel command line.

#![forbid(unsafe_code)]

pub mod boot;
mod error;
pub mod lifecycle;
pub mod policy;
pub mod slot;
pub mod state;
pub mod updater;

pub use boot::{BootControl, BootEnv};
pub use error::Error;
pub use slot::SlotId;
pub use state::{State, StateStore};
pub use updater::{HealthChecks, Hooks, ImageSink, Reboot, Updater};
