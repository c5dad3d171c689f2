//! The update state machine of the rustupdate client, without I/O.
//!
//! - [`slot`]: the two root filesystem slots.
//! - [`boot`]: the bootloader contract of `docs/boot-contract.md` (names, conversions, bootlimit
//!   range, the bootloader's rule) and the [`BootControl`] seam.
//! - [`state`]: what the client persists on the data partition, the names of stages and outcomes,
//!   and the [`StateStore`] seam.
//! - [`seams`]: the other seams (slots, health checks, hooks, reboot, clock).
//! - [`hooks`]: the hook events and the context hooks and health checks are given.
//! - [`policy`]: device checks on a verified artifact (device type, security version, payloads,
//!   slot capacity), producing a [`policy::InstallPlan`] before the first byte is written.
//! - [`lifecycle`]: pure decisions: what a boot means given state, environment and booted slot.
//! - [`daemon`]: the daemon's decisions: poll timing, deployment and cancel steps, the final
//!   result still owed to the fleet server, the reboot policy, slot versions for the inventory.
//! - [`report`]: what the updater reports (boot-time step, install, status).
//! - [`updater`]: [`Updater`], which runs install, boot-time commit or rollback, rollback by hand
//!   and the rollback guard through the seams, in an order that survives a power cut at any
//!   durable write.
//!
//! The real adapters (env files, block devices, state files, scripts, reboot, uptime) live in the
//! client binary; the in-memory ones, used by this crate's tests, in `rustupdate-testkit`. Nothing
//! here reads a clock, a file or the kernel command line.

#![forbid(unsafe_code)]

pub mod boot;
pub mod daemon;
mod error;
pub mod hooks;
pub mod lifecycle;
pub mod policy;
pub mod report;
pub mod seams;
pub mod slot;
pub mod state;
pub mod updater;

pub use boot::{BootControl, BootEnv};
pub use error::{AdapterError, Error, chain};
pub use slot::SlotId;
pub use state::{State, StateStore};
pub use updater::Updater;
