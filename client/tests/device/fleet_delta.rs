//! Deltas through the fleet (issue 21): the daemon reports the image it runs, the real
//! `rustupdate-server` builds the patch of the next release from it, and the daemon takes the
//! patch by itself; a damaged patch falls back to the full artifact, reported with its reason.

use crate::fleet::{BOARD, FleetServer, boot_commit_and_report, check_update};
use crate::rig::{Rig, image};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// A device that ran a full fleet update to 2.0 (so it knows the image it runs), and the next
/// release: 2.0's image with a small change, uploaded; its patch built for the device.
struct Committed {
    rig: Rig,
    server: FleetServer,
    next: Vec<u8>,
    next_id: i64,
    patch: Value,
}

fn device_on_a_committed_release(id: &str) -> Committed {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, id, "");
    let v2 = image(2);
    let path = rig.artifact("2.0", &v2, &[&rig.key], BOARD, None);
    server.rollout(server.upload(&std::fs::read(path).unwrap(), ""));
    assert_eq!(check_update(&rig).code, 0);
    boot_commit_and_report(&rig, &server, id);
    let inventory = server.inventory(id);
    assert_eq!(inventory["accepts_delta"], "known-base", "{inventory}");
    assert_eq!(
        inventory["running_image_sha256"],
        hex(&Sha256::digest(&v2)),
        "{inventory}"
    );
    let next = rustupdate_testkit::next_release(&v2, 3);
    let path = rig.artifact("3.0", &next, &[&rig.key], BOARD, None);
    let next_id = server.upload(&std::fs::read(path).unwrap(), "");
    let patch = ready_patch(&server, next_id);
    Committed {
        rig,
        server,
        next,
        next_id,
        patch,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one patch of `artifact`, once built (bounded wait).
fn ready_patch(server: &FleetServer, artifact: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let patches = server.admin("GET", &format!("/api/v1/artifacts/{artifact}/deltas"), None);
        if let Some(p) = patches.as_array().and_then(|a| a.first())
            && p["state"] != "queued"
            && p["state"] != "building"
        {
            assert_eq!(p["state"], "ready", "{p}");
            return p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no patch built: {patches}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The device's newest action as the server shows it.
fn newest_action(server: &FleetServer, device: &str) -> Value {
    server.admin("GET", &format!("/api/v1/devices/{device}"), None)["actions"][0].clone()
}

#[test]
fn the_daemon_takes_the_patch_the_server_built_for_its_release() {
    let c = device_on_a_committed_release("dev-delta");
    let artifact_len = c.server.admin("GET", "/api/v1/artifacts", None)[1]["size"]
        .as_i64()
        .unwrap();
    let patch_len = c.patch["size"].as_i64().unwrap();
    assert!(
        patch_len * 4 < artifact_len,
        "{patch_len} of {artifact_len}"
    );
    c.server.rollout(c.next_id);
    let out = check_update(&c.rig);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("the server offers a delta patch")
            && out.stderr.contains("rebuilding it from slot b and patch"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("downloading the full artifact"),
        "{}",
        out.stderr
    );
    assert!(c.rig.slot_holds('a', &c.next) && c.rig.reboot_requested());
    // What the server served for this action: the patch and the artifact's head (one Range
    // request), not the artifact.
    let action = newest_action(&c.server, "dev-delta");
    assert_eq!(
        action["delta_bytes"].as_i64().unwrap(),
        patch_len,
        "{action}"
    );
    let head = action["full_bytes"].as_i64().unwrap();
    assert!(head > 0 && head <= 64 << 10, "{action}");
    assert!(action["delta_fallback"].is_null(), "{action}");
    // The device said so in its feedback.
    let shown = c.server.admin("GET", "/api/v1/devices/dev-delta", None);
    let details = shown["actions"][0]["feedback"].to_string();
    assert!(
        details.contains("from a delta patch: downloaded"),
        "{details}"
    );
    assert_eq!(c.rig.boot(), 'a');
    assert_eq!(crate::fleet::commit(&c.rig).code, 0);
    assert_eq!(check_update(&c.rig).code, 0);
    assert_eq!(newest_action(&c.server, "dev-delta")["state"], "succeeded");
}

#[test]
fn a_damaged_patch_falls_back_to_the_full_artifact_and_the_server_hears_why() {
    let c = device_on_a_committed_release("dev-fallback");
    // The stored patch loses a byte in its last frame: it no longer rebuilds the signed image.
    let sha = c.patch["sha256"].as_str().unwrap();
    let stored = c.server.data_dir().join("artifacts").join(sha);
    let mut bytes = std::fs::read(&stored).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x55;
    std::fs::write(&stored, &bytes).unwrap();
    c.server.rollout(c.next_id);
    let out = check_update(&c.rig);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("downloading the full artifact"),
        "{}",
        out.stderr
    );
    assert!(c.rig.slot_holds('a', &c.next) && c.rig.reboot_requested());
    let action = newest_action(&c.server, "dev-fallback");
    let why = action["delta_fallback"].as_str().unwrap_or_default();
    assert!(why.contains("patch"), "{action}");
    let artifact_len = c.server.admin("GET", "/api/v1/artifacts", None)[1]["size"]
        .as_i64()
        .unwrap();
    assert!(
        action["full_bytes"].as_i64().unwrap() >= artifact_len,
        "{action}"
    );
}
