//! The updater in process, on the in-memory device of `rustupdate-testkit`: install, trial,
//! commit, rollback, fallback, the rollback guard, hooks and health outcomes, and a power cut
//! before every durable write of install, commit and rollback. The client's subprocess tests
//! (real files, reference tools) are the second level.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use rustupdate_core::Error;
use rustupdate_core::hooks::HookEvent;
use rustupdate_core::lifecycle::SituationKind;
use rustupdate_core::report::BootReport;
use rustupdate_core::state::OutcomeKind;
use rustupdate_core::{BootEnv, SlotId};
use rustupdate_testkit::sim::Sim;
use rustupdate_testkit::{ArtifactSpec, artifact, fs_image, key};
use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};
use std::time::Duration;

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

/// Durable writes a step makes when the power stays on.
fn writes_of(mut sim: Sim, step: impl Fn(&mut Sim)) -> u64 {
    let before = sim.power.writes();
    step(&mut sim);
    sim.power.writes() - before
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

/// An artifact of a 5 MiB image cut into 512-byte chunks, 4096 per segment, so that it has three
/// segments (2 MiB of image each, one frame each) and two checkpoints to resume from; and the
/// image.
fn segmented_rua(version: &str, seed: u64) -> (Vec<u8>, Vec<u8>) {
    use rustupdate_format::Chunking;
    use rustupdate_format::builder::BodyOptions;
    let image = fs_image(5 << 20, seed);
    let options = BodyOptions {
        chunking: Chunking::Fixed { size: 512 },
        segment_entries: Some(4096),
        ..BodyOptions::default()
    };
    let spec = ArtifactSpec {
        version,
        compatible: &[BOARD],
        ..Default::default()
    };
    let (head, body) = rustupdate_testkit::artifact_parts(&spec, &image, &options, &[&key(1)]);
    let mut bytes = head.to_bytes().unwrap();
    bytes.extend_from_slice(&body);
    (bytes, image)
}

/// A fleet install cut at every durable write continues after the reboot the way the daemon does
/// it: from its checkpoint when it has one (the head read anew, the body from the checkpoint's
/// segment), from byte 0 otherwise. Either way the new image is complete and armed, and once a
/// checkpoint exists the resumed install reads no byte of the body before it.
#[test]
fn fleet_install_resumes_from_its_checkpoint_after_a_power_cut() {
    use rustupdate_verify::{ResumePoint, read_verified_head};
    let (bytes, image) = segmented_rua("3.0", 9);
    let mut ring = Keyring::new();
    ring.add(key(1).public_key());
    let policy = SignaturePolicy::default();
    let start = Sim::new(BOARD, &old_image(), 8 << 20);
    let fleet_install = |sim: &mut Sim| -> Result<(), Error> {
        let artifact = VerifiedArtifact::open(&bytes[..], &ring, &policy)?;
        sim.updater()?
            .install(artifact, Some(7), &mut |_, _| Ok(()))?;
        Ok(())
    };
    let writes = writes_of(start.clone(), |sim: &mut Sim| {
        fleet_install(sim).unwrap();
    });
    let mut resumed = 0;
    for n in 1..=writes {
        let context = format!("power cut before durable write {n} of {writes}");
        let mut sim = start.clone();
        sim.power.cut_before(n);
        assert!(fleet_install(&mut sim).is_err(), "{context}");
        sim.boot();
        let report = sim.updater().unwrap().boot_check().unwrap();
        let status = sim.updater().unwrap().status().unwrap();
        if status.last_result.as_ref().map(|o| o.result) == Some(OutcomeKind::Committed) {
            // The cut came after the slot was armed: the boot tried it and committed it.
            assert_eq!(sim.booted, SlotId::B, "{context}");
            continue;
        }
        let checkpoint = status.pending.as_ref().and_then(|p| p.checkpoint);
        match checkpoint {
            Some(checkpoint) => {
                assert!(
                    matches!(report, BootReport::Interrupted { .. }),
                    "{context}: {report:?}"
                );
                let (head, signers) = read_verified_head(&mut &bytes[..], &ring, &policy).unwrap();
                let point = ResumePoint {
                    segment: checkpoint.segment as usize,
                    image_offset: checkpoint.image_offset,
                };
                let offset = head.segment_offset(0, point.segment).unwrap() as usize;
                assert!(offset > head.body_offset() as usize, "{context}");
                let artifact =
                    VerifiedArtifact::resume(head, signers, &bytes[offset..], point).unwrap();
                sim.updater()
                    .unwrap()
                    .resume(artifact, 7, &mut |_, _| Ok(()))
                    .unwrap_or_else(|err| panic!("{context}: {err}"));
                resumed += 1;
            }
            None => fleet_install(&mut sim).unwrap_or_else(|err| panic!("{context}: {err}")),
        }
        assert_eq!(
            situation(&mut sim),
            SituationKind::AwaitingReboot,
            "{context}"
        );
        assert!(sim.slots.holds(SlotId::B, &image), "{context}");
        assert_eq!(sim.boot(), SlotId::B, "{context}");
        sim.updater().unwrap().boot_check().unwrap();
        let state = sim.state.stored.clone().unwrap();
        let last = state.last_result.unwrap();
        assert_eq!(
            (last.result, last.action),
            (OutcomeKind::Committed, Some(7)),
            "{context}"
        );
    }
    // Two segment boundaries, each a checkpoint (slot sync + state write) to resume from.
    assert!(resumed >= 2, "resumed {resumed} times in {writes} cuts");
}

/// A reader that fails (like a dropped connection) after `left` bytes.
struct BreaksOff<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl std::io::Read for BreaksOff<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "link down",
            ));
        }
        let n = buf.len().min(self.left).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        self.left -= n;
        Ok(n)
    }
}

/// A fleet download that breaks off is not a failed update: the install stays interrupted and
/// continues from its checkpoint. The same break in an install by hand is recorded as failed.
#[test]
fn broken_off_fleet_download_stays_interrupted_and_continues() {
    use rustupdate_verify::{ResumePoint, read_verified_head};
    let (bytes, image) = segmented_rua("4.0", 4);
    let mut ring = Keyring::new();
    ring.add(key(1).public_key());
    let policy = SignaturePolicy::default();
    let broken = || BreaksOff {
        bytes: &bytes,
        left: bytes.len() * 3 / 4,
    };
    for action in [None, Some(9)] {
        let mut sim = Sim::new(BOARD, &old_image(), 8 << 20);
        let artifact = VerifiedArtifact::open(broken(), &ring, &policy).unwrap();
        let err = sim
            .updater()
            .unwrap()
            .install(artifact, action, &mut |_, _| Ok(()))
            .unwrap_err();
        assert!(matches!(&err, Error::Artifact(e) if e.is_io()), "{err}");
        let status = sim.updater().unwrap().status().unwrap();
        if action.is_none() {
            assert_eq!(last_result(&mut sim), Some(OutcomeKind::Failed));
            assert!(status.pending.is_none());
            continue;
        }
        assert_eq!(status.situation, SituationKind::InstallInterrupted);
        assert_eq!(status.last_result, None, "nothing to report yet");
        let checkpoint = status.pending.unwrap().checkpoint.expect("a checkpoint");
        let (head, signers) = read_verified_head(&mut &bytes[..], &ring, &policy).unwrap();
        let point = ResumePoint {
            segment: checkpoint.segment as usize,
            image_offset: checkpoint.image_offset,
        };
        let offset = head.segment_offset(0, point.segment).unwrap() as usize;
        let artifact = VerifiedArtifact::resume(head, signers, &bytes[offset..], point).unwrap();
        sim.updater()
            .unwrap()
            .resume(artifact, 9, &mut |_, _| Ok(()))
            .unwrap();
        assert_eq!(situation(&mut sim), SituationKind::AwaitingReboot);
        assert!(sim.slots.holds(SlotId::B, &image));
        // Giving up on it is a failure of that action, reported like any other.
        let mut gave_up = Sim::new(BOARD, &old_image(), 8 << 20);
        let artifact = VerifiedArtifact::open(broken(), &ring, &policy).unwrap();
        let _ = gave_up
            .updater()
            .unwrap()
            .install(artifact, Some(9), &mut |_, _| Ok(()));
        let outcome = gave_up
            .updater()
            .unwrap()
            .abandon_interrupted(9, OutcomeKind::Failed, "download failed".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            (outcome.result, outcome.action),
            (OutcomeKind::Failed, Some(9))
        );
        assert_eq!(situation(&mut gave_up), SituationKind::Idle);
    }
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
