//! Encrypted artifacts on the simulated device (docs/encryption.md): `keys.decryption-key`
//! opens them; a device without a key, or whose key is not among the recipients, rejects them
//! (exit 4, on record) before anything is written or armed; a tampered sealed frame is rejected
//! and nothing is armed; an unusable key file is a failure that names it, not a rejection.

use crate::rig::{Rig, image};
use rustupdate_seal::RecipientSecretKey;
use rustupdate_testkit::{ArtifactSpec, artifact, recipient};
use std::path::PathBuf;

/// Sets `keys.decryption-key` to a file holding `pem`.
pub(crate) fn with_decryption_key(rig: &Rig, pem: &[u8]) -> PathBuf {
    let path = rig.file("device-x25519.pem", pem);
    let config = std::fs::read_to_string(rig.config_path()).unwrap();
    let keys_line = format!("trusted-dir = \"{}/keys\"", rig.root().display());
    assert!(config.contains(&keys_line));
    let config = config.replace(
        &keys_line,
        &format!("{keys_line}\ndecryption-key = \"{}\"", path.display()),
    );
    std::fs::write(rig.config_path(), config).unwrap();
    path
}

fn encrypted(rig: &Rig, to: &[&RecipientSecretKey]) -> PathBuf {
    let public: Vec<_> = to.iter().map(|k| k.public()).collect();
    let spec = ArtifactSpec {
        version: "v2",
        encrypt_to: &public,
        ..Default::default()
    };
    rig.file("encrypted.rua", &artifact(&spec, &image(2), &[&rig.key]))
}

#[test]
fn a_recipient_installs_and_commits_an_encrypted_release() {
    let rig = Rig::new();
    with_decryption_key(&rig, recipient(1).to_pem().as_bytes());
    let artifact = encrypted(&rig, &[&recipient(2), &recipient(1)]);
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(rig.slot_holds('b', &image(2)));
    assert_eq!(rig.boot(), 'b');
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(rig.env()["upgrade_available"], "0");
}

#[test]
fn no_key_another_key_or_a_tampered_frame_is_rejected_and_nothing_is_armed() {
    let rig = Rig::new();
    let artifact = encrypted(&rig, &[&recipient(1)]);
    let tampered = rig.tampered(&artifact);
    let before = (rig.slot_bytes('a'), rig.slot_bytes('b'), rig.env());
    let check = |rig: &Rig, path: &PathBuf, message: &str| {
        let out = rig.client(&["install", path.to_str().unwrap()]);
        assert_eq!(out.code, 4, "{message}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{message:?} in {}",
            out.stderr
        );
        assert_eq!(rig.env(), before.2, "{message}: nothing armed");
        assert_eq!(rig.slot_bytes('a'), before.0, "{message}: the active slot");
        let last = &rig.status()["last-result"];
        assert_eq!(last["result"], "rejected", "{message}: {last}");
    };
    check(&rig, &artifact, "this device has no decryption key");
    assert_eq!(rig.slot_bytes('b'), before.1, "refused before a write");

    let key_file = with_decryption_key(&rig, recipient(7).to_pem().as_bytes());
    check(&rig, &artifact, "is not one of them");
    assert_eq!(rig.slot_bytes('b'), before.1, "refused before a write");

    std::fs::write(&key_file, recipient(1).to_pem().as_bytes()).unwrap();
    check(&rig, &tampered, "does not open");
}

#[test]
fn an_unusable_key_file_is_named_and_is_not_the_artifacts_fault() {
    let rig = Rig::new();
    let path = with_decryption_key(&rig, b"not a key\n");
    let artifact = encrypted(&rig, &[&recipient(1)]);
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert_ne!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("keys.decryption-key") && out.stderr.contains(path.to_str().unwrap()),
        "{}",
        out.stderr
    );
    // Clear artifacts do not need the key.
    let clear = rig.artifact("v3", &image(3), &[&rig.key], "test-board", None);
    let out = rig.client(&["install", clear.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
