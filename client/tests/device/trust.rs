//! Trust documents on the simulated device (docs/trust.md): the image's document signed by its
//! root keys decides which release keys count; `rustupdate trust update` rotates and revokes
//! them; older, under-signed or altered documents are refused and change nothing; an artifact
//! signed by a revoked key is rejected, naming the key, before a byte is written.

use crate::rig::{Rig, image};
use rustupdate_testkit::key;
use rustupdate_trust::document::DOCUMENT_TYPE;
use rustupdate_trust::{Document, Role, Signed};
use rustupdate_verify::SecretKey;
use std::path::PathBuf;

const ROOTS: [u8; 2] = [31, 32];
pub(crate) const NEW_RELEASE: u8 = 41;

fn role(threshold: usize, keys: &[&SecretKey]) -> Role {
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    Role::of(threshold, &public)
}

/// A document of `version` (roots 31 and 32, 2 of 2) signed by the roots `by` (`fleet_trust`
/// publishes one through the server).
pub(crate) fn document(
    version: u64,
    release: &[&SecretKey],
    revoked: &[&SecretKey],
    by: &[u8],
) -> Vec<u8> {
    let roots = ROOTS.map(key);
    let mut doc = Document::unsigned(Signed {
        kind: DOCUMENT_TYPE.into(),
        version,
        root: role(2, &[&roots[0], &roots[1]]),
        release: role(1, release),
        revoked: revoked
            .iter()
            .map(|k| k.public_key().id().to_string())
            .collect(),
    });
    let message = doc.signed.signing_message();
    for seed in by {
        let root = key(*seed);
        doc.add_signature(root.public_key().id(), &root.sign(&message));
    }
    doc.to_bytes()
}

/// A rig whose `[keys]` use a trust document: roots 31 and 32 (2 of 2), release key = the rig's.
pub(crate) fn trust_rig() -> Rig {
    let rig = Rig::new();
    let root_dir = rig.root().join("root-keys");
    std::fs::create_dir_all(&root_dir).unwrap();
    for seed in ROOTS {
        let pem = key(seed).public_key().to_pem().unwrap();
        std::fs::write(root_dir.join(format!("root-{seed}.pem")), pem).unwrap();
    }
    let image_doc = rig.file("image-trust.json", &document(1, &[&rig.key], &[], &ROOTS));
    let config = std::fs::read_to_string(rig.config_path()).unwrap();
    let keys_line = format!("trusted-dir = \"{}/keys\"", rig.root().display());
    assert!(config.contains(&keys_line));
    let config = config.replace(
        &keys_line,
        &format!(
            "trust-document = \"{}\"\nroot-dir = \"{}\"\nroot-threshold = 2",
            image_doc.display(),
            root_dir.display()
        ),
    );
    std::fs::write(rig.config_path(), config).unwrap();
    rig
}

pub(crate) fn trust_version(rig: &Rig) -> u64 {
    let out = rig.client(&["trust", "show", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    json["signed"]["version"].as_u64().unwrap()
}

fn kept(rig: &Rig) -> PathBuf {
    rig.data_dir().join("trust.json")
}

#[test]
fn a_rotation_that_revokes_the_old_key_rejects_its_artifacts_before_any_write() {
    let rig = trust_rig();
    assert_eq!(trust_version(&rig), 1);
    // Copied under their own names: the rig names artifacts by version, type and key count.
    let artifact = |name: &str, by: &SecretKey| {
        let built = rig.artifact("v2", &image(2), &[by], "test-board", None);
        rig.file(name, &std::fs::read(built).unwrap())
    };
    let old_signed = artifact("old-key.rua", &rig.key);
    let new_key = key(NEW_RELEASE);
    let new_signed = artifact("new-key.rua", &new_key);
    let out = rig.client(&["install", new_signed.to_str().unwrap()]);
    assert_eq!(
        out.code, 4,
        "the new key is not trusted yet: {}",
        out.stderr
    );

    let v2 = rig.file(
        "trust-v2.json",
        &document(2, &[&new_key], &[&rig.key], &ROOTS),
    );
    let out = rig.client(&["trust", "update", v2.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("trust version: 2"), "{}", out.stdout);
    assert_eq!(trust_version(&rig), 2);

    let slot_b = rig.slot_bytes('b');
    let out = rig.client(&["install", old_signed.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let revoked_id = rig.key.public_key().id().to_string();
    assert!(
        out.stderr.contains("revoked") && out.stderr.contains(&revoked_id),
        "{}",
        out.stderr
    );
    assert_eq!(rig.slot_bytes('b'), slot_b, "nothing written");
    assert_eq!(rig.env()["upgrade_available"], "0", "nothing armed");

    let out = rig.client(&["install", new_signed.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(rig.slot_holds('b', &image(2)));
}

#[test]
fn older_under_signed_and_altered_documents_are_refused_and_change_nothing() {
    let rig = trust_rig();
    let v3 = rig.file("trust-v3.json", &document(3, &[&rig.key], &[], &ROOTS));
    assert_eq!(
        rig.client(&["trust", "update", v3.to_str().unwrap()]).code,
        0
    );
    let kept_v3 = std::fs::read(kept(&rig)).unwrap();

    let new_key = key(NEW_RELEASE);
    let altered = String::from_utf8(document(4, &[&rig.key], &[], &ROOTS))
        .unwrap()
        .replace("\"version\": 4", "\"version\": 5");
    let cases = [
        (document(2, &[&new_key], &[], &ROOTS), "not newer"),
        (document(3, &[&new_key], &[], &ROOTS), "not newer"),
        (
            document(4, &[&new_key], &[], &ROOTS[..1]),
            "1 of the current root keys, 2 needed",
        ),
        (
            document(4, &[&new_key], &[], &[ROOTS[0], 99]),
            "1 of the current root keys",
        ),
        (altered.into_bytes(), "does not verify"),
        (b"{\"signed\":".to_vec(), "not a trust document"),
    ];
    for (bytes, reason) in cases {
        let offered = rig.file("offered.json", &bytes);
        let out = rig.client(&["trust", "update", offered.to_str().unwrap()]);
        assert_eq!(out.code, 4, "{reason}: {}", out.stderr);
        assert!(out.stderr.contains(reason), "{reason:?} in {}", out.stderr);
        assert!(
            out.stderr.contains("keeping trust document version 3"),
            "{}",
            out.stderr
        );
        assert_eq!(std::fs::read(kept(&rig)).unwrap(), kept_v3, "{reason}");
    }
}

#[test]
fn the_image_document_must_be_signed_by_the_image_roots_and_a_torn_copy_is_not_trusted() {
    let rig = trust_rig();
    // A kept copy cut short (not what the atomic write leaves, but a damaged data partition):
    // not trusted; the image's document, which the roots signed, is.
    let v2 = rig.file("trust-v2.json", &document(2, &[&rig.key], &[], &ROOTS));
    assert_eq!(
        rig.client(&["trust", "update", v2.to_str().unwrap()]).code,
        0
    );
    let bytes = std::fs::read(kept(&rig)).unwrap();
    std::fs::write(kept(&rig), &bytes[..bytes.len() / 2]).unwrap();
    let out = rig.client(&["trust", "show"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("ignoring the kept trust document"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("trust version: 1"), "{}", out.stdout);

    // An image document signed by one root of two: nothing installs.
    std::fs::write(
        rig.root().join("image-trust.json"),
        document(1, &[&rig.key], &[], &ROOTS[..1]),
    )
    .unwrap();
    std::fs::remove_file(kept(&rig)).unwrap();
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("not signed by its root keys"),
        "{}",
        out.stderr
    );
}

#[test]
fn fixed_keys_and_a_trust_document_exclude_each_other() {
    let rig = trust_rig();
    let config = std::fs::read_to_string(rig.config_path()).unwrap();
    let both = config.replace(
        "root-threshold = 2",
        &format!(
            "root-threshold = 2\ntrusted-dir = \"{}/keys\"",
            rig.root().display()
        ),
    );
    std::fs::write(rig.config_path(), both).unwrap();
    let out = rig.client(&["trust", "show"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("exclude each other"), "{}", out.stderr);
}

/// An artifact signed by `by`, carrying `document`, under its own file name.
fn carrying(
    rig: &Rig,
    name: &str,
    version: &str,
    n: u8,
    by: &SecretKey,
    document: &[u8],
) -> PathBuf {
    let text = String::from_utf8(document.to_vec()).unwrap();
    let spec = rustupdate_testkit::ArtifactSpec {
        version,
        trust_document: Some(&text),
        ..Default::default()
    };
    rig.file(name, &rustupdate_testkit::artifact(&spec, &image(n), &[by]))
}

#[test]
fn a_carried_document_takes_effect_at_commit_and_then_revokes_the_old_key() {
    let rig = trust_rig();
    let new_key = key(NEW_RELEASE);
    let v2_doc = document(2, &[&new_key], &[&rig.key], &ROOTS);
    let release = carrying(&rig, "v2.rua", "v2", 2, &rig.key, &v2_doc);
    let out = rig.client(&["install", release.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(rig.boot(), 'b');
    assert_eq!(
        trust_version(&rig),
        1,
        "not while the release is installed only"
    );
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("trust document version 2 is in force"),
        "{}",
        out.stderr
    );
    assert_eq!(trust_version(&rig), 2);
    assert!(!rig.data_dir().join("trust-pending.json").exists());

    let next = carrying(&rig, "v3.rua", "v3", 3, &rig.key, &v2_doc);
    let slot_a = rig.slot_bytes('a');
    let out = rig.client(&["install", next.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("revoked"), "{}", out.stderr);
    assert_eq!(rig.slot_bytes('a'), slot_a, "nothing written");
    let status = rig.status();
    assert_eq!(status["last-result"]["result"], "rejected", "{status}");
}

#[test]
fn a_carried_document_of_a_release_that_rolls_back_is_dropped() {
    let rig = trust_rig();
    let v2_doc = document(2, &[&rig.key], &[], &ROOTS);
    let release = carrying(&rig, "v2.rua", "v2", 2, &rig.key, &v2_doc);
    assert_eq!(rig.client(&["install", release.to_str().unwrap()]).code, 0);
    assert!(rig.data_dir().join("trust-pending.json").exists());
    rig.health_script("10-fail", "#!/bin/sh\nexit 1\n");
    assert_eq!(rig.boot(), 'b');
    assert_eq!(rig.client(&["commit"]).code, 3, "rolled back");
    assert_eq!(rig.boot(), 'a');
    assert_eq!(rig.client(&["commit"]).code, 0);
    assert_eq!(trust_version(&rig), 1);
    assert!(!rig.data_dir().join("trust-pending.json").exists());
}

#[test]
fn an_artifact_carrying_a_document_the_device_would_refuse_is_rejected_before_any_write() {
    let rig = trust_rig();
    let under_signed = document(2, &[&rig.key], &[], &ROOTS[..1]);
    let release = carrying(&rig, "v2.rua", "v2", 2, &rig.key, &under_signed);
    let slot_b = rig.slot_bytes('b');
    let out = rig.client(&["install", release.to_str().unwrap()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the trust document the artifact carries is refused"),
        "{}",
        out.stderr
    );
    assert_eq!(rig.slot_bytes('b'), slot_b);
    assert_eq!(rig.env()["upgrade_available"], "0");
    assert!(!rig.data_dir().join("trust-pending.json").exists());
}
