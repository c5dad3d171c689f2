//! Fleet installs that a power cut or a broken-off download interrupted, continued from their
//! checkpoint.

use crate::{BOARD, last_result, old_image, situation, writes_of};
use rustupdate_core::Error;
use rustupdate_core::SlotId;
use rustupdate_core::lifecycle::SituationKind;
use rustupdate_core::report::BootReport;
use rustupdate_core::state::OutcomeKind;
use rustupdate_testkit::sim::Sim;
use rustupdate_testkit::{ArtifactSpec, fs_image, key};
use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};

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
