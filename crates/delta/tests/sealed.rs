//! Sealed patches of encrypted releases (docs/encryption.md): made from the release's clear
//! patch and content key, they rebuild the encrypted target for a device that unwrapped the
//! content key, and are refused, before any chunk is handed on, without the key, with another
//! release's key, when any region was altered, and when sealed and clear are mixed up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use rustupdate_delta::patch::{HEADER_LEN, manifest_id};
use rustupdate_delta::{
    Base, BuildOptions, DeltaPayload, build_patch, read_fixed_header, read_header, seal_patch,
};
use rustupdate_format::Head;
use rustupdate_format::builder::BodyOptions;
use rustupdate_seal::{ContentKey, SALT_LEN};
use rustupdate_testkit::{ArtifactSpec, artifact_parts, fs_image, key, next_release, recipient};
use rustupdate_verify::{
    ChunkData, ChunkSource, Error, Keyring, SignaturePolicy, VerifiedArtifact,
};
use std::io::Cursor;

struct Release {
    head: Head,
    key: Option<ContentKey>,
    /// The clear patch, made by the pipeline after unlocking the target.
    patch: Vec<u8>,
}

/// The target built from `image` (encrypted to recipient 1 when `encrypted`), and its clear
/// patch against `base`.
fn release(base: &[u8], image: &[u8], encrypted: bool) -> Release {
    let public = [recipient(1).public()];
    let spec = ArtifactSpec {
        version: "2.0",
        encrypt_to: if encrypted { &public } else { &[] },
        ..Default::default()
    };
    let options = BodyOptions {
        format_version: 2,
        segment_entries: Some(200),
        ..BodyOptions::default()
    };
    let (head, body) = artifact_parts(&spec, image, &options, &[&key(1)]);
    let mut bytes = head.to_bytes().unwrap();
    bytes.extend_from_slice(&body);
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut artifact = VerifiedArtifact::open(&bytes[..], &Keyring::new(), &policy).unwrap();
    artifact.unlock(Some(&recipient(1))).unwrap();
    let key = artifact.content_key().cloned();
    let head = artifact.head().clone();
    let mut payload = artifact.next_payload().unwrap().unwrap();
    let mut patch = Vec::new();
    let options = BuildOptions {
        level: 3,
        ..BuildOptions::default()
    };
    build_patch(
        &head,
        &mut payload,
        Base::Image(base),
        &options,
        &mut patch,
        &mut |_, _| {},
    )
    .unwrap();
    Release { head, key, patch }
}

fn sealed(release: &Release) -> Vec<u8> {
    let mut out = Vec::new();
    let n = seal_patch(release.key.as_ref().unwrap(), &release.patch, &mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

/// Rebuilds the image, checking each chunk handed on against `target` as it comes.
fn apply(
    head: &Head,
    patch: &[u8],
    base: &[u8],
    key: Option<&ContentKey>,
    target: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut delta = DeltaPayload::open_with_key(head, Cursor::new(patch), base, false, key)?;
    let mut image = Vec::new();
    while let Some(chunk) = delta.next_chunk()? {
        let at = chunk.offset as usize;
        match chunk.data {
            ChunkData::Bytes(bytes) => {
                assert_eq!(bytes, &target[at..at + bytes.len()], "unverified bytes");
                image.extend_from_slice(bytes);
            }
            ChunkData::Zeros(n) => image.resize(image.len() + n as usize, 0),
        }
    }
    Ok(image)
}

fn delta_reason(result: Result<Vec<u8>, Error>) -> String {
    match result {
        Err(Error::Delta(reason)) => reason,
        other => panic!("expected a delta error, got {:?}", other.map(|i| i.len())),
    }
}

#[test]
fn a_sealed_patch_rebuilds_the_encrypted_target_with_its_content_key() {
    let base = fs_image(4 << 20, 40);
    let target = next_release(&base, 41);
    let release = release(&base, &target, true);
    let patch = sealed(&release);
    let rebuilt = apply(&release.head, &patch, &base, release.key.as_ref(), &target).unwrap();
    assert_eq!(rebuilt, target);
    // Sealed: the clear patch's body appears nowhere in it; the fixed header is clear (version
    // 2) and names the target, so a server can file it without a key.
    assert_eq!(
        patch.len(),
        release.patch.len() + SALT_LEN + 16 * release.patch[HEADER_LEN..].len().div_ceil(65536)
    );
    let body = &release.patch[HEADER_LEN..HEADER_LEN + 64];
    assert!(!patch.windows(body.len()).any(|w| w == body));
    let (fixed, count) = read_fixed_header(&mut Cursor::new(&patch)).unwrap();
    assert!(fixed.sealed);
    assert_eq!(
        fixed.target_manifest_sha256,
        manifest_id(&release.head.manifest_bytes)
    );
    assert_eq!(
        count as usize,
        release.head.manifest.payloads[0].segments.len()
    );
    let err = read_header(&mut Cursor::new(&patch)).unwrap_err();
    assert!(err.to_string().contains("sealed"), "{err}");
}

#[test]
fn without_the_right_key_or_with_kinds_mixed_up_a_patch_is_refused() {
    let base = fs_image(4 << 20, 42);
    let target = next_release(&base, 43);
    let release = release(&base, &target, true);
    let patch = sealed(&release);
    let reason = delta_reason(apply(&release.head, &patch, &base, None, &target));
    assert!(
        reason.contains("opens only with its content key"),
        "{reason}"
    );
    // Another release's content key: the first block does not open.
    let other = self::release(&base, &next_release(&base, 44), true);
    let reason = delta_reason(apply(
        &release.head,
        &patch,
        &base,
        other.key.as_ref(),
        &target,
    ));
    assert!(reason.contains("does not open"), "{reason}");
    // The clear patch of the encrypted release, and a sealed patch for a clear release.
    let reason = delta_reason(apply(
        &release.head,
        &release.patch,
        &base,
        release.key.as_ref(),
        &target,
    ));
    assert!(
        reason.contains("a clear patch for an encrypted artifact"),
        "{reason}"
    );
    let clear = self::release(&base, &target, false);
    let mut sealed_clear = Vec::new();
    seal_patch(
        release.key.as_ref().unwrap(),
        &clear.patch,
        &mut sealed_clear,
    )
    .unwrap();
    let reason = delta_reason(apply(&clear.head, &sealed_clear, &base, None, &target));
    assert!(
        reason.contains("a sealed patch for a clear artifact"),
        "{reason}"
    );
}

#[test]
fn a_sealed_patch_altered_anywhere_or_cut_short_is_refused() {
    let base = fs_image(4 << 20, 45);
    let target = next_release(&base, 46);
    let release = release(&base, &target, true);
    let patch = sealed(&release);
    let key = release.key.as_ref();
    // The reserved header bytes, the salt, the first, a middle and the last block.
    let sealed_start = HEADER_LEN + SALT_LEN;
    for at in [
        90,
        HEADER_LEN + 3,
        sealed_start + 10,
        (sealed_start + patch.len()) / 2,
        patch.len() - 1,
    ] {
        let mut bad = patch.clone();
        bad[at] ^= 0x40;
        let reason = delta_reason(apply(&release.head, &bad, &base, key, &target));
        assert!(!reason.is_empty(), "byte {at}");
    }
    // The base sha256 in the clear header is associated data of every block.
    let mut bad = patch.clone();
    bad[50] ^= 1;
    let reason = delta_reason(apply(&release.head, &bad, &base, key, &target));
    assert!(reason.contains("does not open"), "{reason}");
    // Cut within the last block (which then fails as sealed), or to less than a tag.
    let reason = delta_reason(apply(
        &release.head,
        &patch[..patch.len() - 7],
        &base,
        key,
        &target,
    ));
    assert!(reason.contains("does not open"), "{reason}");
    let reason = delta_reason(apply(
        &release.head,
        &patch[..sealed_start + 10],
        &base,
        key,
        &target,
    ));
    assert!(reason.contains("cut short"), "{reason}");
    // A wrong base: the rebuilt table, sealed, is not the signed one.
    let other_base = fs_image(4 << 20, 47);
    let reason = delta_reason(apply(&release.head, &patch, &other_base, key, &target));
    assert!(reason.contains("does not match the signed one"), "{reason}");
}
