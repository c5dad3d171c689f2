//! Fixtures for tests across the workspace and the server's: signed artifacts built in memory
//! with the real format crates, deterministic keys and images. Not published; not for production
//! code (it panics on errors, as tests want).

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustupdate_format::Manifest;
use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_verify::SecretKey;

/// A signing key derived from `seed` (the same seed gives the same key).
pub fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32])
}

/// A deterministic pseudo-random byte string (xorshift), `len` bytes, different per `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// What goes into a test artifact's manifest.
#[derive(Debug, Clone)]
pub struct ArtifactSpec<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub compatible: &'a [&'a str],
    pub security_version: Option<u64>,
}

impl Default for ArtifactSpec<'_> {
    fn default() -> Self {
        ArtifactSpec {
            name: "test-image",
            version: "1.0",
            compatible: &["test-board"],
            security_version: None,
        }
    }
}

/// A complete `.rua` of `image`, signed by `keys` (none: unsigned).
pub fn artifact(spec: &ArtifactSpec<'_>, image: &[u8], keys: &[&SecretKey]) -> Vec<u8> {
    let mut body = Vec::new();
    let payload = write_payload_body(
        image,
        &mut body,
        "rootfs",
        &BodyOptions::default(),
        &mut |_| {},
    )
    .expect("building the payload");
    let manifest = Manifest {
        format_version: 1,
        name: spec.name.into(),
        version: spec.version.into(),
        compatible: spec.compatible.iter().map(|s| s.to_string()).collect(),
        security_version: spec.security_version,
        created: 1_700_000_000,
        payloads: vec![payload],
    };
    let head = rustupdate_verify::signed_head(manifest, keys).expect("signing");
    let mut bytes = head.to_bytes().expect("encoding the head");
    bytes.extend_from_slice(&body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustupdate_verify::{ChunkData, Keyring, SignaturePolicy, VerifiedArtifact};

    #[test]
    fn builds_an_artifact_the_verifier_accepts() {
        let k = key(1);
        let image = pseudo_random(100_000, 3);
        let bytes = artifact(&ArtifactSpec::default(), &image, &[&k]);
        let mut ring = Keyring::new();
        ring.add(k.public_key());
        let policy = SignaturePolicy::threshold(1).unwrap();
        let mut a = VerifiedArtifact::open(&bytes[..], &ring, &policy).unwrap();
        let mut out = Vec::new();
        while let Some(mut p) = a.next_payload().unwrap() {
            while let Some(c) = p.next_chunk().unwrap() {
                match c.data {
                    ChunkData::Bytes(b) => out.extend_from_slice(b),
                    ChunkData::Zeros(n) => out.resize(out.len() + n as usize, 0),
                }
            }
        }
        a.finish().unwrap();
        assert_eq!(out, image);
        assert_ne!(pseudo_random(10, 1), pseudo_random(10, 2));
    }
}
