//! The updater in process, on the in-memory device of `rustupdate-testkit`: install, trial,
//! commit, rollback, fallback, the rollback guard, hooks and health outcomes, and a power cut
//! before every durable write of install, commit and rollback. The client's subprocess tests
//! (real files, reference tools) are the second level.
//!
//! One test binary; a module per theme, the device and artifact helpers here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod install;
mod power_cut;
mod resume;
mod trial;

use rustupdate_core::Error;
use rustupdate_core::lifecycle::SituationKind;
use rustupdate_core::state::OutcomeKind;
use rustupdate_testkit::sim::Sim;
use rustupdate_testkit::{ArtifactSpec, artifact, fs_image, key};
use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};

const BOARD: &str = "test-board";
const CAPACITY: u64 = 1 << 20;

fn old_image() -> Vec<u8> {
    fs_image(300_000, 1)
}

fn new_image() -> Vec<u8> {
    fs_image(300_000, 2)
}

fn device() -> Sim {
    Sim::new(BOARD, &old_image(), CAPACITY)
}

fn rua(version: &str, image: &[u8], security_version: Option<u64>) -> Vec<u8> {
    let spec = ArtifactSpec {
        version,
        compatible: &[BOARD],
        security_version,
        ..Default::default()
    };
    artifact(&spec, image, &[&key(1)])
}

fn install(sim: &mut Sim, bytes: &[u8]) -> Result<(), Error> {
    let mut ring = Keyring::new();
    ring.add(key(1).public_key());
    let artifact = VerifiedArtifact::open(bytes, &ring, &SignaturePolicy::default())?;
    sim.updater()?.install(artifact, None, &mut |_, _| Ok(()))?;
    Ok(())
}

fn situation(sim: &mut Sim) -> SituationKind {
    sim.updater().unwrap().status().unwrap().situation
}

fn last_result(sim: &mut Sim) -> Option<OutcomeKind> {
    sim.state
        .stored
        .as_ref()
        .and_then(|s| s.last_result.as_ref())
        .map(|o| o.result)
}

/// The booted slot holds one of the two complete images.
fn boots_a_good_image(sim: &Sim) -> bool {
    let slot = sim.slots.bytes(sim.booted);
    slot.starts_with(&old_image()) || slot.starts_with(&new_image())
}

/// Durable writes a step makes when the power stays on.
fn writes_of(mut sim: Sim, step: impl Fn(&mut Sim)) -> u64 {
    let before = sim.power.writes();
    step(&mut sim);
    sim.power.writes() - before
}
