//! Install: the happy path, and refusals that write nothing.

use crate::{device, install, last_result, new_image, old_image, rua, situation};
use rustupdate_core::Error;
use rustupdate_core::hooks::HookEvent;
use rustupdate_core::lifecycle::SituationKind;
use rustupdate_core::report::BootReport;
use rustupdate_core::state::OutcomeKind;
use rustupdate_core::{BootEnv, SlotId};
use rustupdate_testkit::sim::Sim;
use rustupdate_testkit::{ArtifactSpec, artifact, key};

#[test]
fn install_trial_commit() {
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), Some(4))).unwrap();
    assert!(sim.slots.holds(SlotId::B, &new_image()));
    assert_eq!(sim.boot.env, BootEnv::trial(SlotId::B, 3));
    assert_eq!(situation(&mut sim), SituationKind::AwaitingReboot);
    assert_eq!(sim.boot(), SlotId::B);
    assert_eq!(situation(&mut sim), SituationKind::Trial);
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert_eq!(
        report,
        BootReport::Committed {
            version: "2.0".into()
        }
    );
    assert_eq!(sim.boot.env, BootEnv::committed(SlotId::B, 3));
    let state = sim.state.stored.clone().unwrap();
    assert_eq!(state.security_version, 4);
    assert_eq!(state.committed.unwrap().slot, SlotId::B);
    assert_eq!(
        sim.hooks.ran,
        [
            HookEvent::BeforeInstall,
            HookEvent::AfterInstall,
            HookEvent::BeforeCommit,
            HookEvent::AfterCommit
        ]
    );
    assert_eq!(sim.health.runs.len(), 1);
    assert_eq!(sim.health.runs[0].previous_version, None);
    // The downgrade floor holds from now on.
    let err = install(&mut sim, &rua("1.9", &old_image(), Some(3))).unwrap_err();
    assert!(matches!(err, Error::SecurityDowngrade { .. }) && err.is_rejection());
}

#[test]
fn refusals_write_nothing() {
    type Setup = fn(&mut Sim);
    let cases: [(&str, Vec<u8>, Setup); 4] = [
        (
            "other device",
            {
                let spec = ArtifactSpec {
                    compatible: &["other-board"],
                    ..Default::default()
                };
                artifact(&spec, &new_image(), &[&key(1)])
            },
            |_| {},
        ),
        ("slot too small", rua("2.0", &new_image(), None), |sim| {
            sim.slots.capacity = 1000
        }),
        (
            "before-install hook",
            rua("2.0", &new_image(), None),
            |sim| sim.hooks.failing = vec![HookEvent::BeforeInstall],
        ),
        (
            "tampered",
            {
                let mut bytes = rua("2.0", &new_image(), None);
                let at = bytes.len() - 100;
                bytes[at] ^= 0x20;
                bytes
            },
            |_| {},
        ),
    ];
    for (name, bytes, setup) in cases {
        let mut sim = device();
        setup(&mut sim);
        let before = sim.slots.b.clone();
        let err = install(&mut sim, &bytes).unwrap_err();
        assert_eq!(sim.boot.env, BootEnv::committed(SlotId::A, 3), "{name}");
        assert_ne!(situation(&mut sim), SituationKind::AwaitingReboot, "{name}");
        if name == "tampered" {
            // Found only at the damaged chunk: the slot was written up to there, never armed.
            assert_eq!(last_result(&mut sim), Some(OutcomeKind::Rejected), "{name}");
            assert!(err.is_rejection(), "{name}: {err}");
        } else {
            assert_eq!(sim.slots.b, before, "{name}: the inactive slot was written");
            let rejected = name != "before-install hook";
            assert_eq!(err.is_rejection(), rejected, "{name}: {err}");
            // Every rejection is on record, not only on stderr.
            let expected = rejected.then_some(OutcomeKind::Rejected);
            assert_eq!(last_result(&mut sim), expected, "{name}");
        }
    }
}

/// A source that keeps offering the same refused artifact must not keep writing the flash: the
/// first rejection is recorded, an identical one is not written again, a different one is.
#[test]
fn repeated_rejection_does_not_rewrite_the_state() {
    let mut sim = device();
    let other_board = {
        let spec = ArtifactSpec {
            compatible: &["other-board"],
            ..Default::default()
        };
        artifact(&spec, &new_image(), &[&key(1)])
    };
    let before = sim.power.writes();
    install(&mut sim, &other_board).unwrap_err();
    let first = sim.state.stored.clone().unwrap();
    assert_eq!(
        sim.power.writes(),
        before + 1,
        "the first rejection is on record"
    );
    for _ in 0..3 {
        let err = install(&mut sim, &other_board).unwrap_err();
        assert!(err.is_rejection(), "{err}");
    }
    assert_eq!(
        sim.power.writes(),
        before + 1,
        "a repeated rejection was written"
    );
    assert_eq!(sim.state.stored.as_ref(), Some(&first));

    // Refused before the updater saw it (garbage, as the client records it): the same rule.
    let garbage = std::io::Error::other("not a rustupdate artifact");
    let recorded = sim
        .updater()
        .unwrap()
        .record_rejection(None, "unknown", &garbage)
        .unwrap();
    let writes = sim.power.writes();
    for _ in 0..3 {
        let again = sim
            .updater()
            .unwrap()
            .record_rejection(None, "unknown", &garbage)
            .unwrap();
        assert_eq!(again, recorded);
    }
    assert_eq!(sim.power.writes(), writes, "repeated garbage was written");

    // Anything that differs is a new record: the reason, the fleet action, the version.
    let other = std::io::Error::other("truncated head");
    let mut updater = sim.updater().unwrap();
    updater.record_rejection(None, "unknown", &other).unwrap();
    updater
        .record_rejection(Some(7), "unknown", &other)
        .unwrap();
    updater.record_rejection(Some(7), "2.0", &other).unwrap();
    drop(updater);
    assert_eq!(sim.power.writes(), writes + 3);
    assert_eq!(last_result(&mut sim), Some(OutcomeKind::Rejected));
}
