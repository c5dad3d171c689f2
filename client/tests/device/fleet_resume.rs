//! Fleet downloads cut by a power failure: before the first durable point of the image write the
//! install is done again (not reported as a failure); after a checkpoint the download resumes at
//! that checkpoint with a `Range` request.

use crate::fleet_server::{
    BOARD, FleetServer, boot_commit_and_report, check_update, commit, release,
};
use crate::rig::{Rig, image};

#[test]
fn power_cut_during_the_download_is_redone_not_reported_as_failure() {
    // Device "trace" shows where the image write's durable points are; device "cut" loses power
    // at the first of them (the state says "writing", the bootloader is untouched).
    let (traced, cut) = (Rig::new(), Rig::new());
    let server = FleetServer::start(&traced);
    std::fs::write(
        cut.root().join("keys/release.pem"),
        traced.key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    server.enroll(&traced, "dev-trace", "");
    server.enroll(&cut, "dev-cut", "");
    server.rollout(release(&traced, &server, "2.0", 2));
    let trace = traced.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_TRACE", "1")]);
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    let point = trace
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rustupdate-fault-point "))
        .find(|l| l.contains(" image:"))
        .and_then(|l| l.split(' ').next())
        .expect("no image fault point")
        .to_owned();
    let out = cut.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_AFTER", &point)]);
    assert_eq!(out.code, 99, "{}", out.stderr);
    assert_eq!(cut.boot(), 'a');
    let out = commit(&cut);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
    assert_eq!(cut.status()["situation"], "install-interrupted");
    assert_eq!(
        server.action("dev-cut").0,
        "running",
        "a cut is not a failure"
    );
    let out = check_update(&cut);
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("installing again"), "{}", out.stderr);
    assert!(cut.slot_holds('b', &image(2)) && cut.reboot_requested());
    boot_commit_and_report(&cut, &server, "dev-cut");
}

#[test]
fn power_cut_after_a_checkpoint_resumes_the_download_there() {
    resume_after_a_checkpoint(false);
}

/// The same with an encrypted release (docs/encryption.md): the resumed body starts at a sealed
/// table, and the device opens the rest with its key.
#[test]
fn an_encrypted_download_resumes_at_its_checkpoint() {
    resume_after_a_checkpoint(true);
}

fn resume_after_a_checkpoint(encrypted: bool) {
    use rustupdate_format::Chunking;
    use rustupdate_format::builder::BodyOptions;
    // 512-byte chunks, 4096 per segment: 2 MiB segments (one zstd frame each), three of them in
    // a 5 MiB image (slots hold 6 MiB).
    let image = rustupdate_testkit::fs_image(5 << 20, 21);
    let options = BodyOptions {
        chunking: Chunking::Fixed { size: 512 },
        segment_entries: Some(4096),
        ..BodyOptions::default()
    };
    let recipient = rustupdate_testkit::recipient(3);
    let recipients = [recipient.public()];
    let spec = rustupdate_testkit::ArtifactSpec {
        version: "5.0",
        compatible: &[BOARD],
        encrypt_to: if encrypted { &recipients } else { &[] },
        ..Default::default()
    };
    let (traced, cut) = (Rig::new(), Rig::new());
    if encrypted {
        for rig in [&traced, &cut] {
            crate::encryption::with_decryption_key(rig, recipient.to_pem().as_bytes());
        }
    }
    let (head, body) = rustupdate_testkit::artifact_parts(&spec, &image, &options, &[&traced.key]);
    let mut bytes = head.to_bytes().unwrap();
    bytes.extend_from_slice(&body);
    let server = FleetServer::start(&traced);
    std::fs::write(
        cut.root().join("keys/release.pem"),
        traced.key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    server.enroll(&traced, "dev-trace", "");
    server.enroll(&cut, "dev-cut", "");
    server.rollout(server.upload(&bytes, ""));
    // The power goes at the first image write after the first checkpoint (segment 1) is in
    // the state.
    let trace = traced.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_TRACE", "1")]);
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    let points: Vec<(&str, &str)> = trace
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rustupdate-fault-point "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let first_checkpoint = points
        .iter()
        .position(|(_, name)| *name == "image:checkpoint")
        .unwrap_or_else(|| panic!("no checkpoint: {}", trace.stderr));
    let (cut_at, _) = points[first_checkpoint..]
        .iter()
        .find(|(_, name)| name.starts_with("image:") && *name != "image:checkpoint")
        .unwrap();
    let out = cut.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_AFTER", cut_at)]);
    assert_eq!(out.code, 99, "{}", out.stderr);
    assert_eq!(cut.boot(), 'a');
    assert_eq!(commit(&cut).code, 0);
    let status = cut.status();
    assert_eq!(status["pending"]["checkpoint"]["segment"], 1, "{status}");
    let out = check_update(&cut);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let offset: u64 = out
        .stderr
        .split("resuming the download at byte ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume: {}", out.stderr));
    // Segment 0 (its table and data) is not downloaded again.
    assert_eq!(offset, head.segment_offset(0, 1).unwrap());
    assert!(
        offset > bytes.len() as u64 / 4,
        "{offset} of {}",
        bytes.len()
    );
    assert!(cut.slot_holds('b', &image) && cut.reboot_requested());
    boot_commit_and_report(&cut, &server, "dev-cut");
}
