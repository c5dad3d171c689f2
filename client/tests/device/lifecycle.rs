//! Install, trial, commit, fallback, rollback and rejection on the simulated device.

use crate::rig::{ALL_BACKENDS, Rig, image};
use std::collections::BTreeMap;

#[test]
fn good_update_is_installed_tried_and_committed_on_every_backend() {
    for backend in ALL_BACKENDS {
        good_update(Rig::with(backend));
    }
}

#[test]
fn broken_image_falls_back_on_every_backend() {
    for backend in ALL_BACKENDS {
        broken_image(Rig::with(backend));
    }
}

#[test]
fn failing_health_check_rolls_back_on_every_backend() {
    for backend in ALL_BACKENDS {
        failing_health_check(Rig::with(backend));
    }
}

fn good_update(rig: Rig) {
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", Some(1));
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        rig.env(),
        env(&[
            ("rustupdate_slot", "b"),
            ("upgrade_available", "1"),
            ("bootcount", "0"),
            ("bootlimit", "3")
        ])
    );
    assert!(rig.slot_holds('b', &image(2)), "slot b holds the new image");
    assert_eq!(rig.status()["situation"], "awaiting-reboot");

    assert_eq!(rig.boot(), 'b');
    assert_eq!(rig.status()["situation"], "trial");
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("committed v2"), "{}", out.stdout);
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert_eq!(rig.env()["rustupdate_slot"], "b");

    // Still the new version after another boot, and commit has nothing left to do.
    assert_eq!(rig.boot(), 'b');
    let out = rig.client(&["commit"]);
    assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);
    let status = rig.status();
    assert_eq!(status["committed"]["version"], "v2");
    assert_eq!(status["last-result"]["result"], "committed");
    assert_eq!(status["security-version"], 1);
    assert!(!rig.reboot_requested());
}

fn broken_image(rig: Rig) {
    let artifact = rig.artifact("v2-broken", &image(2), &[&rig.key], "test-board", None);
    assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
    // The new slot never comes up far enough to run the client: three trial boots, then fallback.
    for _ in 0..3 {
        assert_eq!(rig.boot(), 'b');
    }
    assert_eq!(rig.boot(), 'a');
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = rig.status();
    assert_eq!(status["last-result"]["result"], "fell-back", "{status}");
    assert_eq!(status["situation"], "idle");
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert!(rig.slot_holds('a', &image(1)), "the old slot is untouched");

    // The device is clean for the next update.
    let next = rig.artifact("v3", &image(3), &[&rig.key], "test-board", None);
    assert_eq!(rig.client(&["install", next.to_str().unwrap()]).code, 0);
    assert_eq!(rig.boot(), 'b');
    assert_eq!(rig.client(&["commit"]).code, 0);
    assert_eq!(rig.status()["committed"]["version"], "v3");
}

fn failing_health_check(rig: Rig) {
    rig.health_script(
        "10-app",
        "#!/bin/sh\necho checking app on $RUSTUPDATE_BOOTED_SLOT for $RUSTUPDATE_VERSION\nexit 7\n",
    );
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
    assert_eq!(rig.boot(), 'b');
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("checking app on b for v2"),
        "script output is logged: {}",
        out.stderr
    );
    assert!(out.stderr.contains("10-app failed"), "{}", out.stderr);
    assert!(rig.reboot_requested());
    assert_eq!(
        rig.env(),
        env(&[
            ("rustupdate_slot", "a"),
            ("upgrade_available", "0"),
            ("bootcount", "0"),
            ("bootlimit", "3")
        ])
    );
    assert_eq!(rig.boot(), 'a');
    assert_eq!(rig.client(&["commit"]).code, 0);
    let status = rig.status();
    assert_eq!(status["last-result"]["result"], "rolled-back");
    assert!(
        status["last-result"]["detail"]
            .as_str()
            .unwrap()
            .contains("10-app")
    );
}

#[test]
fn hanging_health_check_times_out_and_noisy_output_is_bounded() {
    let rig = Rig::new();
    rig.health_script(
        "10-noisy",
        "#!/bin/sh\nhead -c 5000000 /dev/zero | tr '\\0' x\necho\nseq 1 200000\nexit 0\n",
    );
    rig.health_script("20-hang", "#!/bin/sh\nsleep 1000 &\nsleep 1000\n");
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
    assert_eq!(rig.boot(), 'b');
    let started = std::time::Instant::now();
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("20-hang timed out after 2 s"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout bounds the run"
    );
    assert!(
        out.stderr.len() < 200_000,
        "5 MB of script output must not reach the log ({} bytes)",
        out.stderr.len()
    );
    assert!(
        out.stderr.contains("more bytes of output not logged"),
        "{}",
        &out.stderr[..2000.min(out.stderr.len())]
    );
}

#[test]
fn rejected_artifacts_never_touch_the_inactive_slot() {
    let rig = Rig::new();
    // Commit a security version 5 first, so that a downgrade can be tried.
    let v2 = rig.artifact("v2", &image(2), &[&rig.key], "test-board", Some(5));
    assert_eq!(rig.client(&["install", v2.to_str().unwrap()]).code, 0);
    rig.boot();
    assert_eq!(rig.client(&["commit"]).code, 0);
    // Now slot b runs v2; slot a (inactive) holds v1.
    let stranger = rig_key(99);
    let cases = vec![
        (
            "tampered manifest",
            rig.tampered_at(
                &rig.artifact("t", &image(3), &[&rig.key], "test-board", Some(5)),
                60,
            ),
            "does not verify",
        ),
        (
            "wrong device type",
            rig.artifact("w", &image(3), &[&rig.key], "other-board", Some(5)),
            "device types",
        ),
        (
            "lower security version",
            rig.artifact("l", &image(3), &[&rig.key], "test-board", Some(4)),
            "security version 4",
        ),
        (
            "unknown key",
            rig.artifact("u", &image(3), &[&stranger], "test-board", Some(5)),
            "not enough trusted signatures",
        ),
        (
            "unsigned",
            rig.artifact("n", &image(3), &[], "test-board", Some(5)),
            "not enough trusted signatures",
        ),
        (
            "not an artifact",
            rig.file("junk.rua", b"definitely not an artifact"),
            "bad magic",
        ),
        (
            // The file's length disagrees with the signed head: refused before a byte is written.
            "bytes appended",
            {
                let good = rig.artifact("x", &image(3), &[&rig.key], "test-board", Some(5));
                let mut bytes = std::fs::read(good).unwrap();
                bytes.extend_from_slice(b"appended");
                rig.file("appended.rua", &bytes)
            },
            "unexpected bytes after the last payload",
        ),
        (
            "truncated",
            {
                let good = rig.artifact("y", &image(3), &[&rig.key], "test-board", Some(5));
                let bytes = std::fs::read(good).unwrap();
                rig.file("truncated.rua", &bytes[..bytes.len() - 100])
            },
            "truncated",
        ),
    ];
    for (name, artifact, message) in cases {
        let before = (rig.slot_bytes('a'), rig.env(), rig.state_text());
        let out = rig.client(&["install", artifact.to_str().unwrap()]);
        assert_eq!(out.code, 4, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{name}: expected {message:?} in {}",
            out.stderr
        );
        assert!(
            rig.slot_bytes('a') == before.0,
            "{name}: inactive slot changed"
        );
        assert_eq!(rig.env(), before.1, "{name}: bootloader changed");
        // On record, not only on stderr.
        let last = &rig.status()["last-result"];
        assert_eq!(last["result"], "rejected", "{name}: {last}");
        assert!(
            last["detail"].as_str().unwrap().contains(message),
            "{name}: {last}"
        );
        assert_eq!(
            rig.boot(),
            'b',
            "{name}: device must keep booting the committed slot"
        );
    }
    // Unsigned is accepted only with the danger flag.
    let unsigned = rig.artifact("n2", &image(3), &[], "test-board", Some(5));
    let out = rig.client(&[
        "install",
        "--danger-allow-unsigned",
        unsigned.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A chunk that fails verification is detected before it is written, but the chunks before it were
/// written to the inactive slot: the slot is never activated and the failure is recorded.
#[test]
fn tampered_payload_never_activates_the_slot() {
    let rig = Rig::new();
    let bad = rig.tampered(&rig.artifact("t", &image(2), &[&rig.key], "test-board", None));
    let out = rig.client(&["install", bad.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(rig.env()["rustupdate_slot"], "a");
    assert_eq!(rig.env()["upgrade_available"], "0");
    let status = rig.status();
    assert_eq!(status["last-result"]["result"], "rejected");
    assert!(status["pending"].is_null());
    assert_eq!(rig.boot(), 'a');
}

#[test]
fn corrupt_state_file_is_moved_aside_and_rebuilt() {
    let rig = Rig::new();
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
    rig.boot();
    std::fs::write(rig.data_dir().join("state.json"), b"{ this is not json").unwrap();
    let status = rig.status();
    assert!(
        status["recovered-from"]
            .as_str()
            .unwrap()
            .contains("moved to"),
        "{status}"
    );
    assert_eq!(status["situation"], "unknown-trial");
    assert!(rig.data_dir().join("state.json.corrupt").exists());
    // The trial the bootloader knows about is still decided by the health checks.
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert_eq!(rig.status()["last-result"]["result"], "committed");
}

#[test]
fn rollback_by_hand_and_cancel_before_reboot() {
    let rig = Rig::new();
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    assert_eq!(rig.client(&["rollback"]).code, 1, "nothing to roll back");
    assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
    // Cancel before reboot.
    assert_eq!(rig.client(&["rollback"]).code, 0);
    assert_eq!(rig.env()["rustupdate_slot"], "a");
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert!(!rig.reboot_requested());
    // Install again, boot it, roll back by hand.
    assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
    assert_eq!(rig.boot(), 'b');
    assert_eq!(rig.client(&["rollback"]).code, 0);
    assert!(rig.reboot_requested());
    assert_eq!(rig.boot(), 'a');
    rig.client(&["commit"]);
    assert_eq!(rig.status()["last-result"]["result"], "rolled-back");
}

#[test]
fn unknown_config_key_is_named() {
    let rig = Rig::new();
    let config = std::fs::read_to_string(rig.config_path()).unwrap() + "\nsurprise-key = 1\n";
    std::fs::write(rig.config_path(), config).unwrap();
    let out = rig.client(&["status"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("surprise-key"), "{}", out.stderr);
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rig_key(seed: u8) -> rustupdate_verify::SecretKey {
    rustupdate_verify::SecretKey::from_seed(&[seed; 32])
}

/// docs/client.md: a failing before-install hook aborts the install before anything is written;
/// a failing after-install hook is only logged; hooks get the event as their first argument.
#[test]
fn hooks_refuse_before_install_and_are_only_logged_after() {
    let rig = Rig::new();
    let log = rig.root().join("hook.log");
    rig.hook_script(
        "10-gate",
        &format!("#!/bin/sh\necho \"$1 $RUSTUPDATE_VERSION\" >> {}\n[ -e {}/allow ] || [ \"$1\" != before-install ]\n", log.display(), rig.root().display()),
    );
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    let before = rig.slot_bytes('b');
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("before-install hook refused"),
        "{}",
        out.stderr
    );
    assert!(
        rig.slot_bytes('b') == before,
        "nothing written after a refusal"
    );
    assert_eq!(rig.env()["upgrade_available"], "0");

    std::fs::write(rig.root().join("allow"), b"").unwrap();
    rig.hook_script("20-after-fails", "#!/bin/sh\n[ \"$1\" != after-install ]\n");
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("after-install hook failed (ignored)"),
        "{}",
        out.stderr
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.starts_with("before-install v2\nbefore-install v2\nafter-install v2\n"),
        "{calls}"
    );
}

/// A chunk whose hash fails is never written, although the reader decodes and checks ahead of the
/// slot writer (its own thread, fed in batches): the segments before it reach the slot, the
/// failing chunk and everything after it never do, and nothing is armed. The frames are stored
/// uncompressed, so that one flipped byte changes one chunk and nothing else decodes differently.
#[test]
fn a_chunk_whose_hash_fails_is_never_written_though_earlier_ones_are() {
    const BLOCK: usize = 4096;
    const ENTRIES: u32 = 64;
    let rig = Rig::new();
    // Every 4 KiB block different, so that the failing chunk's bytes are found in the body.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let target: Vec<u8> = (0..(2usize << 20))
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let options = rustupdate_format::builder::BodyOptions {
        compression: rustupdate_format::Compression::None,
        segment_entries: Some(ENTRIES),
        ..Default::default()
    };
    let spec = rustupdate_testkit::ArtifactSpec::default();
    let (head, body) = rustupdate_testkit::artifact_parts(&spec, &target, &options, &[&rig.key]);
    // The failing chunk: block 330, the 11th of the 6th segment.
    let failing = 330;
    let block = &target[failing * BLOCK..(failing + 1) * BLOCK];
    let at = body
        .windows(BLOCK)
        .position(|window| window == block)
        .expect("the block is stored as it is");
    let mut bytes = head.to_bytes().unwrap();
    let body_start = bytes.len();
    bytes.extend_from_slice(&body);
    bytes[body_start + at + 100] ^= 0x20;
    let artifact = rig.file("one-bad-chunk.rua", &bytes);
    let before = rig.slot_bytes('b');

    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let offset = format!("chunk at offset {} fails its sha256 check", failing * BLOCK);
    assert!(out.stderr.contains(&offset), "{}", out.stderr);
    let slot = rig.slot_bytes('b');
    // Nothing of the failing chunk, nor of anything after it.
    assert!(
        slot[failing * BLOCK..] == before[failing * BLOCK..],
        "slot b changed at or after the failing chunk"
    );
    // The segments checked before it were handed on and written: the reader was ahead.
    let checked = (failing / ENTRIES as usize) * ENTRIES as usize * BLOCK;
    assert!(
        slot[..checked] == target[..checked],
        "the segments before the failing chunk were not written"
    );
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert_eq!(rig.status()["last-result"]["result"], "rejected");
    assert_eq!(rig.boot(), 'a');
}
