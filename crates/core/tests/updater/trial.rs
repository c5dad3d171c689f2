//! The trial boot: health checks and hooks, commit or rollback, fallback, rollback by hand and
//! the rollback guard.

use crate::{device, install, new_image, rua, situation};
use rustupdate_core::Error;
use rustupdate_core::hooks::HookEvent;
use rustupdate_core::lifecycle::SituationKind;
use rustupdate_core::report::BootReport;
use rustupdate_core::state::OutcomeKind;
use rustupdate_core::{BootEnv, SlotId};
use std::time::Duration;

#[test]
fn failing_health_check_rolls_back() {
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    sim.health.verdict = Some("service x is down".into());
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(
        matches!(report, BootReport::RollingBack { ref reason } if reason.contains("service x"))
    );
    assert!(sim.reboot.requested);
    assert_eq!(sim.boot.env, BootEnv::committed(SlotId::A, 3));
    assert!(
        sim.hooks
            .ran
            .ends_with(&[HookEvent::OnRollback, HookEvent::BeforeReboot])
    );
    assert_eq!(sim.boot(), SlotId::A);
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(
        matches!(report, BootReport::Recorded { ref outcome } if outcome.result == OutcomeKind::RolledBack)
    );
    assert_eq!(situation(&mut sim), SituationKind::Idle);
    // A client rollback ran on-rollback already: no on-failure.
    assert!(!sim.hooks.ran.contains(&HookEvent::OnFailure));
}

#[test]
fn refusing_before_commit_hook_rolls_back() {
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    sim.hooks.failing = vec![HookEvent::BeforeCommit, HookEvent::AfterCommit];
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(
        matches!(report, BootReport::RollingBack { ref reason } if reason.contains("before-commit"))
    );
}

#[test]
fn failing_hooks_that_cannot_refuse_are_ignored() {
    let mut sim = device();
    sim.hooks.failing = HookEvent::ALL
        .into_iter()
        .filter(|e| !e.can_refuse())
        .collect();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(matches!(report, BootReport::Committed { .. }), "{report:?}");
}

#[test]
fn builtin_check_fails_when_the_other_slot_is_not_writable() {
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    sim.slots.unwritable = Some(SlotId::A);
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(
        matches!(report, BootReport::RollingBack { ref reason } if reason.contains("built-in check: slot a")),
        "{report:?}"
    );
    assert!(sim.health.runs.is_empty());
}

#[test]
fn bootloader_fallback_is_recorded() {
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    // The new slot never gets far enough to run `commit`: the bootloader counts and gives up.
    for _ in 0..3 {
        assert_eq!(sim.boot(), SlotId::B);
    }
    assert_eq!(sim.boot(), SlotId::A);
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(
        matches!(report, BootReport::Recorded { ref outcome } if outcome.result == OutcomeKind::FellBack)
    );
    assert_eq!(sim.hooks.ran.last(), Some(&HookEvent::OnFailure));
}

#[test]
fn rollback_by_hand_and_cancel() {
    let mut sim = device();
    let err = sim.updater().unwrap().rollback("by hand").unwrap_err();
    assert!(matches!(err, Error::NoTrial { .. }));
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    // Before the reboot: cancelled, the bootloader boots the old slot again.
    let report = sim.updater().unwrap().rollback("by hand").unwrap();
    assert!(
        matches!(report, BootReport::Recorded { ref outcome } if outcome.result == OutcomeKind::Failed)
    );
    assert_eq!(sim.boot.env, BootEnv::committed(SlotId::A, 3));
    // On trial: back to the old slot with a reboot.
    install(&mut sim, &rua("3.0", &new_image(), None)).unwrap();
    sim.boot();
    let report = sim.updater().unwrap().rollback("by hand").unwrap();
    assert!(matches!(report, BootReport::RollingBack { .. }));
    assert!(sim.reboot.requested);
}

#[test]
fn guard_waits_for_its_time_then_rolls_back() {
    let limit = Duration::from_secs(900);
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    sim.clock.uptime = Some(Duration::from_secs(10));
    let report = sim.updater().unwrap().guard(limit).unwrap();
    assert_eq!(
        report,
        BootReport::GuardNotDue {
            uptime_secs: 10,
            limit_secs: 900
        }
    );
    assert_eq!(situation(&mut sim), SituationKind::Trial);
    // An unreadable clock is an error, not a silent "not yet".
    sim.clock.uptime = None;
    assert!(sim.updater().unwrap().guard(limit).is_err());
    sim.clock.uptime = Some(limit);
    let report = sim.updater().unwrap().guard(limit).unwrap();
    assert!(matches!(report, BootReport::RollingBack { ref reason } if reason.contains("900 s")));
    assert!(sim.reboot.requested);
}

#[test]
fn corrupt_state_on_a_trial_is_decided_by_the_health_checks() {
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    sim.state.corrupt = Some("bad json".into());
    let status = sim.updater().unwrap().status().unwrap();
    assert_eq!(status.recovered_from.as_deref(), Some("bad json"));
    assert_eq!(status.situation, SituationKind::UnknownTrial);
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(matches!(report, BootReport::Committed { .. }), "{report:?}");
}

#[test]
fn a_trial_rearmed_on_the_committed_slot_keeps_its_release() {
    // The bootloader's newest copy of its environment (the commit) was lost: the older copy, the
    // trial of the same slot, is back. Deciding it again must not forget what the slot holds.
    let mut sim = device();
    install(&mut sim, &rua("2.0", &new_image(), None)).unwrap();
    sim.boot();
    sim.updater().unwrap().boot_check().unwrap();
    let committed = sim
        .state
        .stored
        .as_ref()
        .unwrap()
        .committed
        .clone()
        .unwrap();
    assert_eq!(committed.version, "2.0");
    sim.boot.env = BootEnv::trial(sim.booted, 3);
    sim.boot();
    assert_eq!(situation(&mut sim), SituationKind::UnknownTrial);
    let report = sim.updater().unwrap().boot_check().unwrap();
    assert!(
        matches!(report, BootReport::Committed { ref version } if version == "2.0"),
        "{report:?}"
    );
    assert_eq!(
        sim.state.stored.as_ref().unwrap().committed,
        Some(committed)
    );
}
