//! The trust document delivered by the fleet server (docs/trust.md, "Delivery"): the operator
//! publishes a document that revokes the rig's release key and trusts another; one
//! `check-update` applies it; a release signed by the revoked key is then rejected and reported,
//! one signed by the new key installs.

use crate::fleet_server::{BOARD, FleetServer, check_update, release};
use crate::rig::image;
use crate::trust::{NEW_RELEASE, document, trust_rig, trust_version};
use rustupdate_testkit::key;

const ROOTS: [u8; 2] = [31, 32];

fn publish(server: &FleetServer, body: &[u8]) -> (u16, String) {
    server.put("/api/v1/trust", body)
}

#[test]
fn a_document_from_the_server_revokes_the_old_key_and_trusts_the_new_one() {
    let rig = trust_rig();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-t", "");
    assert_eq!(trust_version(&rig), 1);
    let new_key = key(NEW_RELEASE);
    // The server accepts the image's own document first, then version 2 by the same roots.
    let v1 = document(1, &[&rig.key], &[], &ROOTS);
    assert_eq!(publish(&server, &v1).0, 200);
    let v2 = document(2, &[&new_key], &[&rig.key], &ROOTS);
    let (status, text) = publish(&server, &v2);
    assert_eq!(status, 200, "{text}");

    let out = check_update(&rig);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("no update offered"), "{}", out.stdout);
    assert_eq!(trust_version(&rig), 2);

    // Signed by the revoked key (the server still trusts it for uploads): rejected, reported.
    let old = release(&rig, &server, "2.0", 2);
    server.rollout(old);
    let slot_b = rig.slot_bytes('b');
    let out = check_update(&rig);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("revoked"), "{}", out.stderr);
    assert_eq!(rig.slot_bytes('b'), slot_b);
    let (state, reason) = server.action("dev-t");
    assert_eq!(state, "failed");
    assert!(reason.contains("revoked"), "{reason}");

    // Signed by the new key (foreign to the server, which does not trust it): installs.
    let path = rig.artifact("3.0", &image(3), &[&new_key], BOARD, None);
    let new = server.upload(
        &std::fs::read(path).unwrap(),
        "?foreign=true&name=rootfs&version=3.0&device_types=test-board&filename=new.rua",
    );
    server.rollout(new);
    let out = check_update(&rig);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("rebooting"), "{}", out.stdout);
    assert!(rig.slot_holds('b', &image(3)) && rig.reboot_requested());
}
