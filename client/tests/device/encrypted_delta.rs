//! Deltas of encrypted releases (docs/encryption.md): the release pipeline's sealed patch
//! rebuilds the image on a recipient, from a file and over loopback HTTP with a resumed
//! download; a device that is not a recipient falls back to the full artifact, which rejects
//! it with nothing armed; a clear patch offered for an encrypted release is not used.

use crate::delta::Server;
use crate::encryption::with_decryption_key;
use crate::rig::{Rig, image};
use rustupdate_delta::{Base, BuildOptions, build_patch, seal_patch};
use rustupdate_testkit::{ArtifactSpec, artifact, next_release, recipient};
use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};
use std::path::PathBuf;

fn target() -> Vec<u8> {
    next_release(&image(1), 2)
}

/// The release encrypted to recipient 1, and its patch from slot a's image: sealed as the
/// pipeline makes it, and the clear patch of the opened release.
fn release(rig: &Rig) -> (PathBuf, PathBuf, PathBuf) {
    let public = [recipient(1).public()];
    let spec = ArtifactSpec {
        version: "2.0",
        encrypt_to: &public,
        ..Default::default()
    };
    let bytes = artifact(&spec, &target(), &[&rig.key]);
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut opened = VerifiedArtifact::open(&bytes[..], &Keyring::new(), &policy).unwrap();
    opened.unlock(Some(&recipient(1))).unwrap();
    let key = opened.content_key().cloned().unwrap();
    let head = opened.head().clone();
    let mut payload = opened.next_payload().unwrap().unwrap();
    let base = rig.slot_bytes('a');
    let options = BuildOptions {
        level: 3,
        ..Default::default()
    };
    let mut clear = Vec::new();
    build_patch(
        &head,
        &mut payload,
        Base::Image(&base),
        &options,
        &mut clear,
        &mut |_, _| {},
    )
    .unwrap();
    let mut sealed = Vec::new();
    seal_patch(&key, &clear, &mut sealed).unwrap();
    (
        rig.file("2.0.rua", &bytes),
        rig.file("2.0.rudelta", &sealed),
        rig.file("2.0.clear.rudelta", &clear),
    )
}

fn install(rig: &Rig, patch: &str, artifact: &str) -> crate::rig::Output {
    rig.client(&["install", "--delta", patch, artifact])
}

#[test]
fn a_recipient_rebuilds_an_encrypted_release_from_its_sealed_patch() {
    let rig = Rig::new();
    with_decryption_key(&rig, recipient(1).to_pem().as_bytes());
    let (artifact, patch, _) = release(&rig);
    let out = install(&rig, patch.to_str().unwrap(), artifact.to_str().unwrap());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("rebuilding it from slot a"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_sealed_patch_download_resumes_after_a_cut() {
    let rig = Rig::new();
    with_decryption_key(&rig, recipient(1).to_pem().as_bytes());
    let (artifact, patch, _) = release(&rig);
    let www = rig.root().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::copy(&artifact, www.join("2.0.rua")).unwrap();
    std::fs::copy(&patch, www.join("2.0.rudelta")).unwrap();
    let sealed = std::fs::read(&patch).unwrap();
    let dir = rig.data_dir().join("delta");
    std::fs::create_dir_all(&dir).unwrap();
    let have = sealed.len() / 2;
    std::fs::write(dir.join("2.0.rudelta.part"), &sealed[..have]).unwrap();
    std::fs::write(dir.join("2.0.rudelta.part.synced"), have.to_string()).unwrap();
    let server = Server::start(&www, false);
    let out = install(&rig, &server.url("2.0.rudelta"), &server.url("2.0.rua"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("resuming the patch download at byte {have}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("falling back"), "{}", out.stderr);
    assert_eq!(server.sent("2.0.rudelta").0, (sealed.len() - have) as u64);
    assert!(rig.slot_holds('b', &target()));
}

#[test]
fn not_a_recipient_falls_back_and_the_full_artifact_is_rejected() {
    let rig = Rig::new();
    with_decryption_key(&rig, recipient(7).to_pem().as_bytes());
    let (artifact, patch, _) = release(&rig);
    let before = (rig.slot_bytes('a'), rig.slot_bytes('b'), rig.env());
    let out = install(&rig, patch.to_str().unwrap(), artifact.to_str().unwrap());
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(out.stderr.contains("is not one of them"), "{}", out.stderr);
    assert_eq!(rig.env(), before.2, "nothing armed");
    assert_eq!(
        (rig.slot_bytes('a'), rig.slot_bytes('b')),
        (before.0, before.1)
    );
    assert_eq!(rig.status()["last-result"]["result"], "rejected");
}

#[test]
fn a_clear_patch_for_an_encrypted_release_is_not_used() {
    let rig = Rig::new();
    with_decryption_key(&rig, recipient(1).to_pem().as_bytes());
    let (artifact, _, clear) = release(&rig);
    let out = install(&rig, clear.to_str().unwrap(), artifact.to_str().unwrap());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("a clear patch for an encrypted artifact"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("falling back"), "{}", out.stderr);
    assert!(rig.slot_holds('b', &target()));
}
