//! Arbitrary images through the builder and back through the verifying reader: whatever the bytes
//! (zero runs, odd tails, incompressible data) and whichever codec and chunking the first two bytes
//! pick, the signed artifact must verify and yield exactly the image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_format::{Chunking, Compression, Manifest};
use rustupdate_verify::{ChunkData, Keyring, SecretKey, SignaturePolicy, VerifiedArtifact};

fuzz_target!(|data: &[u8]| {
    let [codec, cut, image @ ..] = data else {
        return;
    };
    if image.is_empty() {
        return;
    }
    let compression =
        [Compression::Zstd, Compression::Gzip, Compression::None][*codec as usize % 3];
    let chunking = match cut % 4 {
        0 => Chunking::Fixed { size: 4096 },
        1 => Chunking::Fixed { size: 512 },
        2 => Chunking::FastCdc {
            min: 64,
            avg: 256,
            max: 1024,
        },
        _ => Chunking::FastCdc {
            min: 256,
            avg: 1024,
            max: 4096,
        },
    };
    let options = BodyOptions {
        format_version: 1,
        compression,
        level: 1,
        chunking,
        threads: 1 + (*cut as usize >> 7),
        segment_entries: None,
    };
    let mut body = Vec::new();
    let payload = write_payload_body(image, &mut body, "rootfs", &options, &mut |_| {})
        .expect("any non-empty image builds");
    let manifest = Manifest {
        format_version: 1,
        name: "roundtrip".into(),
        version: "1".into(),
        compatible: vec!["fuzz".into()],
        security_version: None,
        created: 0,
        trust_document: None,
        encryption: None,
        payloads: vec![payload],
    };
    let key = SecretKey::from_seed(&rustupdate_fuzz::FUZZ_KEY_SEED);
    let head = rustupdate_verify::signed_head(manifest, &[&key]).expect("head");
    let mut artifact_bytes = head.to_bytes().expect("head bytes");
    artifact_bytes.extend_from_slice(&body);

    let mut ring = Keyring::new();
    ring.add(key.public_key());
    let mut artifact =
        VerifiedArtifact::open(&artifact_bytes[..], &ring, &SignaturePolicy::default())
            .expect("a fresh artifact opens");
    let mut out = Vec::with_capacity(image.len());
    {
        let mut payload = artifact
            .next_payload()
            .expect("payload")
            .expect("one payload");
        while let Some(chunk) = payload.next_chunk().expect("every chunk verifies") {
            assert_eq!(chunk.offset, out.len() as u64);
            match chunk.data {
                ChunkData::Bytes(bytes) => out.extend_from_slice(bytes),
                ChunkData::Zeros(n) => out.resize(out.len() + n as usize, 0),
            }
        }
    }
    assert!(artifact.next_payload().expect("no error").is_none());
    artifact.finish().expect("nothing trails the body");
    assert!(
        out == image,
        "the artifact yields the image it was built from"
    );
});
