//! The `rustupdate` binary on a simulated device: plain files as slots, a real GRUB environment
//! block edited with the reference tool `grub-editenv`, a simulated bootloader that applies the
//! boot-counting rule of `docs/boot-contract.md` between "boots", and real artifacts.
//!
//! Covers install, commit, bootloader fallback, the two copies of the environment and the
//! committed-slot record, health-check rollback (failing, hanging, noisy
//! scripts), rejected artifacts (the inactive slot is byte-for-byte unchanged), a corrupt state
//! file, a power cut at every durable write of install, commit and rollback, and interrupted
//! downloads from a loopback HTTP server; delta installs and their fallbacks; the client lock
//! (one writer at a time, a killed holder taken over, the daemon's lock only during a cycle).
//! The systemd-boot chain runs the same lifecycle and power-cut tests over its entry files
//! (systemd-boot's choice and counting simulated by `rustupdate_bootenv::bls`), and `sdboot`
//! covers its kernel copy from a real ext4 slot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod delta;
mod download;
mod encrypted_delta;
mod encryption;
mod env_copies;
mod fleet;
mod fleet_delta;
mod fleet_hostile;
mod fleet_resume;
mod fleet_server;
mod fleet_trust;
mod lifecycle;
mod lock;
mod power_cut;
mod read_before_write;
mod rig;
mod rig_sdboot;
mod sdboot;
mod trust;
