//! Whole-artifact tests: build real artifacts in memory, read them back through the verifying
//! reader, and check that every kind of damage is rejected with the right error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_format::{
    Chunking, Compression, Head, Header, Manifest, SignatureEntry, header::HEADER_LEN,
    signing_message,
};
use rustupdate_testkit::{ArtifactSpec, artifact_parts, key, pseudo_random};
use rustupdate_verify::{ChunkData, Error, Keyring, SecretKey, SignaturePolicy, VerifiedArtifact};

/// A small "filesystem image": text-like data, random data, zero runs, an odd-sized tail.
fn sample_image() -> Vec<u8> {
    let mut image = b"superblock ".repeat(800);
    image.resize(16 * 1024, 0);
    image.extend(vec![0u8; 64 * 1024]);
    image.extend(pseudo_random(20_000, 5));
    image.extend(b"file contents repeat ".repeat(900));
    image.extend(vec![0u8; 12 * 1024]);
    image.extend(pseudo_random(777, 9));
    image
}

struct Built {
    bytes: Vec<u8>,
    /// Byte ranges of each region, for the tamper table.
    manifest: std::ops::Range<usize>,
    signatures: std::ops::Range<usize>,
    body: std::ops::Range<usize>,
}

fn build(image: &[u8], options: &BodyOptions, signers: &[&SecretKey]) -> Built {
    let spec = ArtifactSpec {
        version: "2.0",
        security_version: Some(3),
        ..Default::default()
    };
    let (head, body) = artifact_parts(&spec, image, options, signers);
    let mut bytes = head.to_bytes().unwrap();
    let manifest_end = HEADER_LEN + head.manifest_bytes.len();
    let body_start = bytes.len();
    bytes.extend_from_slice(&body);
    Built {
        manifest: HEADER_LEN..manifest_end,
        signatures: manifest_end..body_start,
        body: body_start..bytes.len(),
        bytes,
    }
}

fn keyring(keys: &[&SecretKey]) -> Keyring {
    let mut ring = Keyring::new();
    for k in keys {
        ring.add(k.public_key());
    }
    ring
}

/// Reads every payload to the end; returns the reassembled image.
fn read_all(bytes: &[u8], ring: &Keyring, policy: &SignaturePolicy) -> Result<Vec<u8>, Error> {
    read_all_with(bytes, ring, policy, false)
}

fn read_all_with(
    bytes: &[u8],
    ring: &Keyring,
    policy: &SignaturePolicy,
    parallel_hash: bool,
) -> Result<Vec<u8>, Error> {
    let mut artifact =
        VerifiedArtifact::open(bytes, ring, policy)?.with_parallel_image_hash(parallel_hash);
    let mut image = Vec::new();
    while let Some(mut payload) = artifact.next_payload()? {
        while let Some(chunk) = payload.next_chunk()? {
            assert_eq!(chunk.offset, image.len() as u64);
            match chunk.data {
                ChunkData::Bytes(b) => image.extend_from_slice(b),
                ChunkData::Zeros(n) => image.resize(image.len() + n as usize, 0),
            }
        }
    }
    artifact.finish()?;
    Ok(image)
}

#[test]
fn round_trip_every_codec_and_chunking() {
    let image = sample_image();
    let k = key(1);
    for (format_version, compression) in [
        (2, Compression::Zstd),
        (2, Compression::None),
        (1, Compression::Zstd),
        (1, Compression::Gzip),
        (1, Compression::None),
    ] {
        for chunking in [
            Chunking::Fixed { size: 4096 },
            Chunking::Fixed { size: 65536 },
            Chunking::FastCdc {
                min: 1024,
                avg: 4096,
                max: 16384,
            },
        ] {
            for threads in [1, 3] {
                let options = BodyOptions {
                    format_version,
                    compression,
                    level: compression.default_level(),
                    chunking,
                    threads,
                    // Several segments (frames) when threads compress them side by side.
                    segment_entries: (threads > 1).then_some(7),
                };
                let built = build(&image, &options, &[&k]);
                let parallel_hash = threads > 1;
                let read = read_all_with(
                    &built.bytes,
                    &keyring(&[&k]),
                    &SignaturePolicy::default(),
                    parallel_hash,
                )
                .unwrap();
                assert!(
                    read == image,
                    "v{format_version} {compression:?} {chunking} {threads}"
                );
            }
        }
    }
}

#[test]
fn zero_regions_cost_almost_nothing() {
    let mut image = vec![0u8; 64 << 20];
    image[10 << 20..(10 << 20) + 4096].copy_from_slice(&pseudo_random(4096, 3));
    let k = key(1);
    let built = build(&image, &BodyOptions::default(), &[&k]);
    // 64 MiB, of which 4 KiB data: header + manifest + one segment of 3 entries + the data.
    assert!(
        built.bytes.len() < 6000,
        "artifact is {} bytes",
        built.bytes.len()
    );
    assert_eq!(
        read_all(&built.bytes, &keyring(&[&k]), &SignaturePolicy::default()).unwrap(),
        image
    );
}

#[test]
fn signature_policy() {
    let image = sample_image();
    let (a, b, c) = (key(1), key(2), key(3));
    let two = SignaturePolicy::threshold(2).unwrap();
    // Two distinct trusted signers meet a threshold of 2.
    let built = build(&image, &BodyOptions::default(), &[&a, &b]);
    assert!(read_all(&built.bytes, &keyring(&[&a, &b]), &two).is_ok());
    // A key not in the keyring does not count.
    let err = read_all(&built.bytes, &keyring(&[&a, &c]), &two).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotEnoughSignatures {
                valid: 1,
                required: 2,
                present: 2
            }
        ),
        "{err}"
    );
    // The same key signing twice counts once.
    let built = build(&image, &BodyOptions::default(), &[&a, &a]);
    let err = read_all(&built.bytes, &keyring(&[&a, &b]), &two).unwrap_err();
    assert!(
        matches!(err, Error::NotEnoughSignatures { valid: 1, .. }),
        "{err}"
    );
    // Unsigned: rejected by default, accepted only by the dangerous policy.
    let built = build(&image, &BodyOptions::default(), &[]);
    assert!(matches!(
        read_all(&built.bytes, &keyring(&[&a]), &SignaturePolicy::default()),
        Err(Error::NotEnoughSignatures { valid: 0, .. })
    ));
    assert_eq!(
        read_all(
            &built.bytes,
            &Keyring::new(),
            &SignaturePolicy::dangerous_accept_unsigned()
        )
        .unwrap(),
        image
    );
    assert!(SignaturePolicy::threshold(0).is_err());
}

#[test]
fn no_payload_byte_before_the_signature_is_checked() {
    let image = sample_image();
    let k = key(1);
    let built = build(&image, &BodyOptions::default(), &[&k]);
    // Opening with a wrong key fails in `open`, before any payload reader exists.
    assert!(
        VerifiedArtifact::open(
            built.bytes.as_slice(),
            &keyring(&[&key(9)]),
            &SignaturePolicy::default()
        )
        .is_err()
    );
}

/// Flips bytes in every region of the artifact; each flip must be rejected, and the reader must
/// never yield a chunk whose bytes differ from the original image.
#[test]
fn tamper_table_every_region_is_rejected() {
    let image = sample_image();
    let k = key(1);
    let ring = keyring(&[&k]);
    let policy = SignaturePolicy::default();
    for format_version in [1, 2] {
        let options = BodyOptions {
            format_version,
            ..BodyOptions::default()
        };
        let built = build(&image, &options, &[&k]);
        let body_tables_end = built.body.start + 40 * 16; // the first segment's table (at least)
        let regions: Vec<(&str, std::ops::Range<usize>, usize)> = vec![
            ("header", 0..HEADER_LEN, 1),
            ("manifest", built.manifest.clone(), 1),
            ("signature block", built.signatures.clone(), 1),
            (
                "chunk table",
                built.body.start..body_tables_end.min(built.body.end),
                1,
            ),
            (
                "payload data",
                body_tables_end.min(built.body.end)..built.body.end,
                13,
            ),
        ];
        for (name, range, step) in regions {
            assert!(!range.is_empty(), "{name} region is empty");
            for at in range.step_by(step) {
                for bit in [0x01u8, 0x80] {
                    let mut bytes = built.bytes.clone();
                    bytes[at] ^= bit;
                    let result = read_partial(&bytes, &ring, &policy, &image);
                    assert!(
                        result.is_err(),
                        "v{format_version}: flipping bit {bit:#x} of byte {at} in the {name} was accepted"
                    );
                }
            }
        }
    }
}

/// Like `read_all`, but also checks each yielded chunk against the original image as it comes.
fn read_partial(
    bytes: &[u8],
    ring: &Keyring,
    policy: &SignaturePolicy,
    original: &[u8],
) -> Result<(), Error> {
    let mut artifact = VerifiedArtifact::open(bytes, ring, policy)?;
    while let Some(mut payload) = artifact.next_payload()? {
        while let Some(chunk) = payload.next_chunk()? {
            let at = chunk.offset as usize;
            match chunk.data {
                ChunkData::Bytes(b) => {
                    assert_eq!(b, &original[at..at + b.len()], "unverified bytes yielded")
                }
                ChunkData::Zeros(n) => {
                    assert!(original[at..at + n as usize].iter().all(|b| *b == 0))
                }
            }
        }
    }
    artifact.finish()
}

#[test]
fn truncation_at_every_length_is_rejected() {
    let image = sample_image();
    let k = key(1);
    let ring = keyring(&[&k]);
    for format_version in [1, 2] {
        let options = BodyOptions {
            format_version,
            ..BodyOptions::default()
        };
        let built = build(&image, &options, &[&k]);
        for len in (0..built.bytes.len())
            .step_by(7)
            .chain([built.bytes.len() - 1])
        {
            let err = read_partial(
                &built.bytes[..len],
                &ring,
                &SignaturePolicy::default(),
                &image,
            )
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("truncated") || text.contains("not enough"),
                "len {len}: {text}"
            );
        }
        let mut longer = built.bytes.clone();
        longer.push(0);
        let err = read_partial(&longer, &ring, &SignaturePolicy::default(), &image).unwrap_err();
        assert!(err.to_string().contains("after the last payload"), "{err}");
    }
}

/// A correctly signed artifact whose chunk table lies (signed by a buggy or hostile builder) is
/// still rejected: sizes that do not add up, stored lengths that disagree with the manifest.
#[test]
fn signed_but_inconsistent_tables_are_rejected() {
    let image = sample_image();
    let k = key(1);
    let ring = keyring(&[&k]);
    let mut body = Vec::new();
    let payload = write_payload_body(
        image.as_slice(),
        &mut body,
        "rootfs",
        &BodyOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    type Mutation = Box<dyn Fn(&mut Manifest)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "size too small",
            Box::new(|m: &mut Manifest| m.payloads[0].size -= 1),
        ),
        (
            "size too large",
            Box::new(|m: &mut Manifest| m.payloads[0].size += 4096),
        ),
        (
            "data size",
            Box::new(|m: &mut Manifest| m.payloads[0].segments[0].data_size += 1),
        ),
        (
            "image hash",
            Box::new(|m: &mut Manifest| m.payloads[0].sha256.0[0] ^= 1),
        ),
    ];
    for (name, mutate) in cases {
        let mut manifest = Manifest {
            format_version: 1,
            name: "x".into(),
            version: "1".into(),
            compatible: vec!["b".into()],
            security_version: None,
            created: 0,
            trust_document: None,
            encryption: None,
            payloads: vec![payload.clone()],
        };
        mutate(&mut manifest);
        let manifest_bytes = manifest.to_bytes().unwrap();
        let signature = SignatureEntry {
            key_id: k.public_key().id(),
            signature: k.sign(&signing_message(&manifest_bytes)),
        };
        let head = Head {
            header: Header::new(manifest.format_version, manifest_bytes.len(), 1).unwrap(),
            manifest_bytes,
            manifest,
            signatures: vec![signature],
        };
        let mut bytes = head.to_bytes().unwrap();
        bytes.extend_from_slice(&body);
        let err = read_partial(&bytes, &ring, &SignaturePolicy::default(), &image);
        assert!(err.is_err(), "{name} accepted");
    }
}

/// Regression: `open` parsed the manifest before checking its signatures, and a hostile 1 MiB TOML
/// manifest (e.g. 150,000 dotted keys) makes the parser allocate over 100 MiB. Signatures come
/// first now: such a manifest is rejected as unsigned without being parsed.
#[test]
fn unsigned_manifest_is_rejected_before_it_is_parsed() {
    let k = key(1);
    let ring = keyring(&[&k]);
    let text: String = (0..8000).map(|i| format!("a{i}.b = 1\n")).collect();
    let mut bytes = Header::new(2, text.len(), 0).unwrap().to_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    let err = VerifiedArtifact::open(&bytes[..], &ring, &SignaturePolicy::default()).unwrap_err();
    assert!(
        matches!(err, Error::NotEnoughSignatures { .. }),
        "the manifest was parsed first: {err}"
    );
}

/// An interrupted download continues at a segment boundary: the reader starts at the segment's
/// offset, the image before it comes back from the slot, and the result is the same image and
/// the same whole-image verdict. A damaged prefix is caught by the whole-image hash.
#[test]
fn resume_at_every_segment_boundary() {
    resume_at_every_segment_boundary_of(1);
    resume_at_every_segment_boundary_of(2);
}

fn resume_at_every_segment_boundary_of(format_version: u16) {
    use rustupdate_verify::{ResumePoint, read_verified_head};
    // 512-byte chunks: 4096 entries make a 2 MiB segment, so 5 MiB of image has three.
    let options = BodyOptions {
        format_version,
        chunking: Chunking::Fixed { size: 512 },
        segment_entries: Some(4096),
        ..BodyOptions::default()
    };
    let mut image = pseudo_random(3 << 20, 11);
    image.extend(vec![0u8; 1 << 20]);
    image.extend(pseudo_random(1 << 20, 12));
    let signer = key(1);
    let built = build(&image, &options, &[&signer]);
    let ring = keyring(&[&signer]);
    let policy = SignaturePolicy::threshold(1).unwrap();

    // The boundaries a first, uninterrupted read offers.
    let mut points = Vec::new();
    let mut artifact = VerifiedArtifact::open(&built.bytes[..], &ring, &policy).unwrap();
    let mut payload = artifact.next_payload().unwrap().unwrap();
    while payload.next_chunk().unwrap().is_some() {
        points.extend(payload.segment_end());
    }
    drop(payload);
    let segments = artifact.manifest().payloads[0].segments.len();
    assert_eq!(segments, 3);
    assert_eq!(points.len(), segments - 1, "{points:?}");

    for point in points {
        let (head, signers) = read_verified_head(&mut &built.bytes[..], &ring, &policy).unwrap();
        let offset = head.segment_offset(0, point.segment).unwrap() as usize;
        let resume = |prefix: &[u8]| -> Result<Vec<u8>, Error> {
            let (head, signers) = (head.clone(), signers.clone());
            let mut artifact =
                VerifiedArtifact::resume(head, signers, &built.bytes[offset..], point)?;
            let mut out = prefix.to_vec();
            let mut payload = artifact.resume_payload(&mut &prefix[..])?;
            while let Some(chunk) = payload.next_chunk()? {
                assert_eq!(chunk.offset, out.len() as u64);
                match chunk.data {
                    ChunkData::Bytes(b) => out.extend_from_slice(b),
                    ChunkData::Zeros(n) => out.resize(out.len() + n as usize, 0),
                }
            }
            drop(payload);
            artifact.finish()?;
            Ok(out)
        };
        let prefix = &image[..point.image_offset as usize];
        assert_eq!(resume(prefix).unwrap(), image, "{point:?}");
        let mut damaged = prefix.to_vec();
        damaged[prefix.len() / 2] ^= 1;
        assert!(
            matches!(resume(&damaged), Err(Error::ImageHashMismatch { .. })),
            "{point:?}"
        );
        assert!(matches!(resume(&prefix[..10]), Err(Error::Resume(_))));
    }
    // A point that is not in the artifact is refused up front.
    let (head, signers) = read_verified_head(&mut &built.bytes[..], &ring, &policy).unwrap();
    let bad = ResumePoint {
        segment: 9,
        image_offset: 0,
    };
    assert!(matches!(
        VerifiedArtifact::resume(head, signers, &built.bytes[..], bad),
        Err(Error::Resume(_))
    ));
}

/// The first segments are small and grow: 4, 8, 16 MiB of data, then the full budget. A delta
/// writes nothing of a segment before its rebuilt table matched, so the first segment's size is
/// a wait before the first write (docs/bandwidth.md, "Install on slow flash").
#[test]
fn the_first_segments_grow_from_a_small_one() {
    use rustupdate_format::builder::{FIRST_SEGMENT_DATA_BUDGET, SEGMENT_DATA_BUDGET};
    const CHUNK: usize = 64 * 1024;
    let first = FIRST_SEGMENT_DATA_BUDGET;
    assert_eq!(8 * first, SEGMENT_DATA_BUDGET);
    // 4 + 8 + 16 + 32 MiB, and 4 MiB more.
    let image = pseudo_random(19 * first, 21);
    let options = BodyOptions {
        format_version: 2,
        compression: Compression::None,
        chunking: Chunking::Fixed { size: CHUNK as u32 },
        ..BodyOptions::default()
    };
    let signer = key(1);
    let built = build(&image, &options, &[&signer]);
    let ring = keyring(&[&signer]);
    let policy = SignaturePolicy::threshold(1).unwrap();
    let artifact = VerifiedArtifact::open(&built.bytes[..], &ring, &policy).unwrap();
    let entries: Vec<u32> = artifact.manifest().payloads[0]
        .segments
        .iter()
        .map(|segment| segment.entries)
        .collect();
    let chunks = |bytes: usize| (bytes / CHUNK) as u32;
    assert_eq!(
        entries,
        [
            chunks(first),
            chunks(2 * first),
            chunks(4 * first),
            chunks(8 * first),
            chunks(4 * first)
        ]
    );
    assert!(read_all(&built.bytes, &ring, &policy).unwrap() == image);
}

#[test]
fn source_length_is_checked_against_the_signed_head() {
    let signer = key(1);
    let built = build(&sample_image(), &BodyOptions::default(), &[&signer]);
    let ring = keyring(&[&signer]);
    let policy = SignaturePolicy::threshold(1).unwrap();
    let artifact = VerifiedArtifact::open(&built.bytes[..], &ring, &policy).unwrap();
    let len = built.bytes.len() as u64;
    assert_eq!(artifact.head().artifact_len(), len);
    artifact.check_source_len(len).unwrap();
    assert!(matches!(
        artifact.check_source_len(len + 1),
        Err(Error::TrailingData)
    ));
    let short = artifact.check_source_len(len - 1).unwrap_err();
    assert!(short.to_string().contains("truncated"), "{short}");
}
