//! A power cut before every durable write of install, commit and rollback.

use crate::{
    boots_a_good_image, device, install, last_result, new_image, rua, situation, writes_of,
};
use rustupdate_core::lifecycle::SituationKind;
use rustupdate_core::state::OutcomeKind;
use rustupdate_core::{BootEnv, SlotId};
use rustupdate_testkit::sim::Sim;

/// Boots until nothing is left to decide (at most a few boots), running `commit` on each like the
/// boot-time service; checks that every boot starts a complete image.
fn converge(sim: &mut Sim, context: &str) {
    for _ in 0..6 {
        sim.boot();
        assert!(boots_a_good_image(sim), "{context}: booted a partial image");
        sim.updater().unwrap().boot_check().unwrap();
        if !sim.reboot.requested && situation(sim) == SituationKind::Idle {
            return;
        }
    }
    panic!("{context}: did not converge");
}

/// Cuts the power before each durable write of `step` (run on a copy of `start`), boots until
/// the device settles and hands the settled device to `check`.
fn power_cut_sweep(start: &Sim, step: impl Fn(&mut Sim), check: impl Fn(&mut Sim, &str)) {
    let writes = writes_of(start.clone(), &step);
    assert!(writes >= 2, "the step makes {writes} durable writes");
    for n in 1..=writes {
        let mut sim = start.clone();
        sim.power.cut_before(n);
        step(&mut sim);
        assert!(
            sim.power.is_off(),
            "the power cut before write {n} did not happen"
        );
        let context = format!("power cut before durable write {n} of {writes}");
        converge(&mut sim, &context);
        check(&mut sim, &context);
    }
}

#[test]
fn power_cut_at_every_durable_write_of_install() {
    let bytes = rua("2.0", &new_image(), None);
    power_cut_sweep(
        &device(),
        |sim| {
            let _ = install(sim, &bytes);
        },
        |sim, context| {
            // Either the install never armed the slot (old image, recorded as failed or nothing
            // at all), or it did and the trial committed the new image.
            let state = sim.state.stored.clone().unwrap_or_default();
            match state.committed {
                Some(release) => {
                    assert_eq!(release.slot, SlotId::B, "{context}");
                    assert!(sim.slots.holds(SlotId::B, &new_image()), "{context}");
                }
                None => {
                    assert_eq!(sim.booted, SlotId::A, "{context}");
                    assert_ne!(last_result(sim), Some(OutcomeKind::Committed), "{context}");
                }
            }
        },
    );
}

#[test]
fn power_cut_at_every_durable_write_of_commit() {
    let mut start = device();
    install(&mut start, &rua("2.0", &new_image(), None)).unwrap();
    start.boot();
    power_cut_sweep(
        &start,
        |sim| {
            let _ = sim.updater().and_then(|mut u| u.boot_check());
        },
        |sim, context| {
            assert_eq!(sim.booted, SlotId::B, "{context}");
            assert_eq!(last_result(sim), Some(OutcomeKind::Committed), "{context}");
            assert_eq!(sim.boot.env, BootEnv::committed(SlotId::B, 3), "{context}");
        },
    );
}

#[test]
fn power_cut_at_every_durable_write_of_rollback() {
    let mut start = device();
    install(&mut start, &rua("2.0", &new_image(), None)).unwrap();
    start.boot();
    start.health.verdict = Some("unhealthy".into());
    power_cut_sweep(
        &start,
        |sim| {
            let _ = sim.updater().and_then(|mut u| u.boot_check());
        },
        |sim, context| {
            // An unhealthy new slot always ends on the old one.
            assert_eq!(sim.booted, SlotId::A, "{context}");
            let result = last_result(sim);
            assert!(
                matches!(
                    result,
                    Some(OutcomeKind::RolledBack | OutcomeKind::FellBack)
                ),
                "{context}: {result:?}"
            );
        },
    );
}
