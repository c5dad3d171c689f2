//! Delta installs (`install --delta PATCH ARTIFACT`) through the real client binary: from files
//! and over loopback HTTP (`bench/lib/range_server.py`, which counts what it sends), with every
//! fallback to the full artifact and a download resumed after an interruption.

use crate::rig::{Rig, image};
use rustupdate_testkit::next_release;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The rig's slot a holds `image(1)` (its base); the target is the next release of it.
fn target() -> Vec<u8> {
    next_release(&image(1), 2)
}

/// The artifact for `target()` and a patch for it against slot a's contents.
fn artifact_and_patch(rig: &Rig) -> (PathBuf, PathBuf) {
    let base = rig.slot_bytes('a');
    artifact_and_patch_from(rig, rustupdate_delta::Base::Image(&base))
}

fn artifact_and_patch_from(rig: &Rig, base: rustupdate_delta::Base<'_>) -> (PathBuf, PathBuf) {
    use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};
    let artifact = rig.artifact("2.0", &target(), &[&rig.key], "test-board", None);
    let bytes = std::fs::read(&artifact).unwrap();
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut reader = VerifiedArtifact::open(&bytes[..], &Keyring::new(), &policy).unwrap();
    let head = reader.head().clone();
    let mut payload = reader.next_payload().unwrap().unwrap();
    let options = rustupdate_delta::BuildOptions {
        level: 3,
        ..Default::default()
    };
    let mut patch = Vec::new();
    rustupdate_delta::build_patch(
        &head,
        &mut payload,
        base,
        &options,
        &mut patch,
        &mut |_, _| {},
    )
    .unwrap();
    (artifact, rig.file("2.0.rudelta", &patch))
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn delta_from_files_rebuilds_the_image_and_arms_the_trial() {
    let rig = Rig::new();
    let (artifact, patch) = artifact_and_patch(&rig);
    assert!(size(&patch) * 5 < size(&artifact), "patch is not small");
    let out = rig.client(&[
        "install",
        "--delta",
        patch.to_str().unwrap(),
        artifact.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("rebuilding it from slot a"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
    assert_eq!(rig.status()["pending"]["release"]["version"], "2.0");
}

#[test]
fn unusable_patches_fall_back_to_the_full_artifact() {
    // (what is wrong, how to make it, what the log says)
    type Damage = fn(&Rig, &Path) -> String;
    let cases: [(&str, Damage, &str); 5] = [
        (
            "a modified base",
            |rig, patch| {
                let mut slot = rig.slot_bytes('a');
                slot[4096 * 2 + 7] ^= 1; // a block the target keeps
                std::fs::write(rig.root().join("slot-a.img"), slot).unwrap();
                patch.to_str().unwrap().into()
            },
            "does not match the signed one",
        ),
        (
            "a truncated patch",
            |rig, patch| {
                let bytes = std::fs::read(patch).unwrap();
                let cut = rig.file("cut.rudelta", &bytes[..bytes.len() - 10]);
                cut.to_str().unwrap().into()
            },
            "truncated",
        ),
        (
            "a tampered patch",
            |rig, patch| {
                let mut bytes = std::fs::read(patch).unwrap();
                let at = bytes.len() - 50;
                bytes[at] ^= 0x40;
                rig.file("bad.rudelta", &bytes).to_str().unwrap().into()
            },
            "patch",
        ),
        (
            "a header claiming a million segments (refused before its directory is read)",
            |rig, patch| {
                let mut bytes = std::fs::read(patch).unwrap();
                let count = rustupdate_delta::patch::MAX_SEGMENTS;
                bytes[12..16].copy_from_slice(&count.to_le_bytes());
                rig.file("hostile.rudelta", &bytes).to_str().unwrap().into()
            },
            "the patch has 1048576 segments, the artifact",
        ),
        (
            "a missing patch",
            |rig, _| rig.root().join("nowhere.rudelta").to_str().unwrap().into(),
            "opening patch",
        ),
    ];
    for (what, damage, says) in cases {
        let rig = Rig::new();
        let (artifact, patch) = artifact_and_patch(&rig);
        let patch = damage(&rig, &patch);
        let out = rig.client(&["install", "--delta", &patch, artifact.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("falling back to the full artifact") && out.stderr.contains(says),
            "{what}: {}",
            out.stderr
        );
        assert!(rig.slot_holds('b', &target()), "{what}");
        let status = rig.status();
        assert_eq!(status["pending"]["release"]["version"], "2.0", "{what}");
        assert!(
            status["last-result"].is_null(),
            "{what}: a fallback is not a failure: {status}"
        );
    }
}

/// `bench/lib/range_server.py` serving `dir` on loopback, stopped when dropped.
pub(crate) struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    pub(crate) fn start(dir: &Path, no_range: bool) -> Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/lib/range_server.py");
        let log = dir.join("requests.log");
        let port_file = dir.join("port");
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg("serve")
            .arg(dir)
            .arg("--log")
            .arg(&log)
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null());
        if no_range {
            command.arg("--no-range");
        }
        let mut child = command.spawn().expect("python3 runs the range server");
        // Bounded wait for the port file (written atomically once listening).
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse()
            {
                return Server { child, port, log };
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the range server did not start");
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Body bytes sent for requests of `path`, and how many requests.
    pub(crate) fn sent(&self, path: &str) -> (u64, usize) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut total = (0, 0);
        for line in text.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            if entry["path"] == format!("/{path}") {
                total.0 += entry["bytes"].as_u64().unwrap();
                total.1 += 1;
            }
        }
        total
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(rig: &Rig, no_range: bool) -> (Server, u64) {
    let (artifact, patch) = artifact_and_patch(rig);
    let www = rig.root().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::copy(&artifact, www.join("2.0.rua")).unwrap();
    std::fs::copy(&patch, www.join("2.0.rudelta")).unwrap();
    (Server::start(&www, no_range), size(&patch))
}

fn install_over_http(rig: &Rig, server: &Server) -> crate::rig::Output {
    rig.client(&[
        "install",
        "--delta",
        &server.url("2.0.rudelta"),
        &server.url("2.0.rua"),
    ])
}

#[test]
fn delta_over_http_downloads_the_head_and_the_patch_only() {
    let rig = Rig::new();
    let (server, patch_len) = serve(&rig, false);
    let artifact_len = size(&rig.root().join("www/2.0.rua"));
    let out = install_over_http(&rig, &server);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
    let (artifact_sent, artifact_requests) = server.sent("2.0.rua");
    let (patch_sent, patch_requests) = server.sent("2.0.rudelta");
    assert_eq!((patch_sent, patch_requests), (patch_len, 1));
    assert_eq!(artifact_requests, 1, "one range request for the head");
    assert!(
        artifact_sent <= 4 * 1024 && artifact_sent < artifact_len / 2,
        "{artifact_sent}"
    );
    // The downloaded patch is removed once used.
    assert_eq!(
        std::fs::read_dir(rig.data_dir().join("delta"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn an_interrupted_patch_download_resumes_where_it_stopped() {
    let rig = Rig::new();
    let (server, patch_len) = serve(&rig, false);
    // What a power cut leaves: the first part of the patch on the data partition.
    let patch = std::fs::read(rig.root().join("www/2.0.rudelta")).unwrap();
    let dir = rig.data_dir().join("delta");
    std::fs::create_dir_all(&dir).unwrap();
    let have = patch.len() / 2;
    // The part file is longer than its last synced length, and its tail is zeros: what ext4 may
    // show after a power cut (the size reached the journal, the data did not). Only the synced
    // part is kept.
    let mut part = patch[..have + 100].to_vec();
    part[have..].fill(0);
    std::fs::write(dir.join("2.0.rudelta.part"), &part).unwrap();
    std::fs::write(dir.join("2.0.rudelta.part.synced"), have.to_string()).unwrap();
    let out = install_over_http(&rig, &server);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("resuming the patch download at byte {have}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
    assert_eq!(server.sent("2.0.rudelta").0, patch_len - have as u64);
}

#[test]
fn a_server_without_range_support_still_installs() {
    let rig = Rig::new();
    let (server, _) = serve(&rig, true);
    let out = install_over_http(&rig, &server);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
}

/// Any base: the device writes the index of its booted slot, a patch is made from the index alone,
/// and the device installs with it (no known-base check: the patch names no base image).
#[test]
fn a_patch_from_the_devices_own_index_installs() {
    let rig = Rig::new();
    let out = rig.client(&[
        "index",
        "-o",
        rig.root().join("a.ruindex").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("blocks of slot a"), "{}", out.stdout);
    let bytes = std::fs::read(rig.root().join("a.ruindex")).unwrap();
    let index = rustupdate_delta::BlockIndex::from_bytes(&bytes).unwrap();
    assert_eq!(index.size(), rig.slot_bytes('a').len() as u64);
    let (artifact, patch) = artifact_and_patch_from(&rig, rustupdate_delta::Base::Index(&index));
    let out = rig.client(&[
        "install",
        "--delta",
        patch.to_str().unwrap(),
        artifact.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
}

/// A part file without a synced length is not trusted: the download starts again.
#[test]
fn a_part_file_without_a_synced_length_is_downloaded_again() {
    let rig = Rig::new();
    let (server, patch_len) = serve(&rig, false);
    let dir = rig.data_dir().join("delta");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("2.0.rudelta.part"), vec![0u8; 500]).unwrap();
    let out = install_over_http(&rig, &server);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !out.stderr.contains("resuming the patch download"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
    assert_eq!(server.sent("2.0.rudelta"), (patch_len, 1));
}
