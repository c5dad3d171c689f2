//! Fixtures for tests across the workspace and the server's: signed artifacts built in memory
//! with the real format crates, deterministic keys and images, the sample manifest, the check for
//! a reference tool, and (feature `sim`) an in-memory implementation of every seam of
//! `rustupdate-core` assembled into a simulated device ([`sim`]). Not published; not for
//! production code (it panics on errors, as tests want).

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "sim")]
pub mod sim;

use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_format::{
    Chunking, Compression, Head, Manifest, Payload, PayloadType, Segment, Sha256Hex,
};
use rustupdate_verify::SecretKey;
use std::path::PathBuf;

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

/// A deterministic `len`-byte "filesystem image" for `seed`: every third 4 KiB block is a zero
/// run (an unused region), the others are half text-like data, half zeros.
pub fn fs_image(len: usize, seed: u64) -> Vec<u8> {
    let mut image = vec![0u8; len];
    for (index, block) in image.chunks_mut(4096).enumerate() {
        if index % 3 == 0 {
            continue;
        }
        let half = block.len().min(2048);
        let data = pseudo_random(half, seed.wrapping_mul(1_000_003) + index as u64);
        for (byte, random) in block[..half].iter_mut().zip(data) {
            *byte = random % 16 + b'a';
        }
    }
    image
}

/// The next release of an [`fs_image`], the way a small update changes a filesystem image: a
/// block is inserted in the middle (everything after it moves by one block, as files do after a
/// grown file), every 7th block of the first quarter changes in one byte (patched files), the
/// rest stays. Same length; the length must be a multiple of 4096.
pub fn next_release(image: &[u8], seed: u64) -> Vec<u8> {
    assert!(image.len().is_multiple_of(4096) && image.len() >= 4 * 4096);
    let mut next = image.to_vec();
    let blocks = image.len() / 4096;
    let middle = blocks / 2 * 4096;
    next[middle + 4096..].copy_from_slice(&image[middle..image.len() - 4096]);
    next[middle..middle + 4096].copy_from_slice(&pseudo_random(4096, seed));
    for block in (1..blocks / 4).step_by(7) {
        next[block * 4096 + (seed as usize % 2000)] ^= 0x5a;
    }
    next
}

/// A valid manifest with one rootfs payload (its hashes are placeholders: for codec and policy
/// tests, not for reading a body).
pub fn sample_manifest() -> Manifest {
    Manifest {
        format_version: 1,
        name: "demo-image".into(),
        version: "1.0.0".into(),
        compatible: vec!["qemux86-64".into()],
        security_version: Some(2),
        created: 1_764_000_000,
        trust_document: None,
        encryption: None,
        payloads: vec![Payload {
            name: "rootfs".into(),
            payload_type: PayloadType::RootfsImage,
            target: "rootfs".into(),
            size: 8192,
            sha256: Sha256Hex([1; 32]),
            compression: Compression::Zstd,
            chunking: Chunking::Fixed { size: 4096 },
            segments: vec![Segment {
                entries: 2,
                table_sha256: Sha256Hex([2; 32]),
                data_size: 100,
                data_sha256: None,
            }],
        }],
    }
}

/// The path of the reference tool `program` on `PATH`. Panics naming the Debian package when it
/// is missing: reference-tool tests fail loudly, they are never skipped.
pub fn require_tool(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "reference tool `{program}` not found on PATH: install the Debian package \
                 `{package}` (apt-get install {package}; ci/install-deps.sh does this); these \
                 tests are never skipped"
            )
        })
}

/// What goes into a test artifact's manifest.
#[derive(Debug, Clone)]
pub struct ArtifactSpec<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub compatible: &'a [&'a str],
    pub security_version: Option<u64>,
    /// A trust document (JSON) the manifest carries.
    pub trust_document: Option<&'a str>,
    /// Encrypt the body to these recipients (docs/encryption.md); none: a clear artifact.
    pub encrypt_to: &'a [rustupdate_seal::RecipientPublicKey],
}

impl Default for ArtifactSpec<'_> {
    fn default() -> Self {
        ArtifactSpec {
            name: "test-image",
            version: "1.0",
            compatible: &["test-board"],
            security_version: None,
            trust_document: None,
            encrypt_to: &[],
        }
    }
}

/// A recipient key made from a seed, for reproducible tests.
pub fn recipient(seed: u8) -> rustupdate_seal::RecipientSecretKey {
    rustupdate_seal::RecipientSecretKey::from_bytes([seed; 32])
}

/// A complete `.rua` of `image`, signed by `keys` (none: unsigned).
pub fn artifact(spec: &ArtifactSpec<'_>, image: &[u8], keys: &[&SecretKey]) -> Vec<u8> {
    let (head, body) = artifact_parts(spec, image, &BodyOptions::default(), keys);
    let mut bytes = head.to_bytes().expect("encoding the head");
    bytes.extend_from_slice(&body);
    bytes
}

/// The signed head and the body of a test artifact built with `options`, for tests that look at
/// or damage one region.
pub fn artifact_parts(
    spec: &ArtifactSpec<'_>,
    image: &[u8],
    options: &BodyOptions,
    keys: &[&SecretKey],
) -> (Head, Vec<u8>) {
    let mut body = Vec::new();
    let mut payload = write_payload_body(image, &mut body, "rootfs", options, &mut |_| {})
        .expect("building the payload");
    let encryption = (!spec.encrypt_to.is_empty()).then(|| {
        let key = rustupdate_seal::ContentKey::generate();
        let mut sealed = Vec::new();
        rustupdate_seal::seal_payload_body(&key, 0, &mut payload, &mut &body[..], &mut sealed)
            .expect("sealing the body");
        body = sealed;
        rustupdate_seal::wrap(&key, spec.encrypt_to).expect("wrapping the content key")
    });
    let manifest = Manifest {
        format_version: options.format_version,
        name: spec.name.into(),
        version: spec.version.into(),
        compatible: spec.compatible.iter().map(|s| s.to_string()).collect(),
        security_version: spec.security_version,
        created: 1_700_000_000,
        trust_document: spec.trust_document.map(str::to_string),
        encryption,
        payloads: vec![payload],
    };
    let head = rustupdate_verify::signed_head(manifest, keys).expect("signing");
    (head, body)
}

/// The image a chunk source hands on, in full (a rebuilt delta, a payload).
pub fn read_image(
    source: &mut dyn rustupdate_verify::ChunkSource,
) -> Result<Vec<u8>, rustupdate_verify::Error> {
    let mut image = Vec::new();
    while let Some(chunk) = source.next_chunk()? {
        match chunk.data {
            rustupdate_verify::ChunkData::Bytes(b) => image.extend_from_slice(b),
            rustupdate_verify::ChunkData::Zeros(n) => image.resize(image.len() + n as usize, 0),
        }
    }
    Ok(image)
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
        assert_eq!(fs_image(10_000, 1).len(), 10_000);
        sample_manifest().validate().unwrap();
    }
}
