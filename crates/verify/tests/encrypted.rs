//! Encrypted artifacts (docs/encryption.md) through the verifying reader: the right recipients
//! read the image; a device without the key, or not among the recipients, is refused before any
//! byte of the body is read; every region tampered is rejected without an unverified byte
//! handed on; a download resumes at segment boundaries as for clear artifacts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use rustupdate_format::builder::BodyOptions;
use rustupdate_format::{Chunking, Compression, header::HEADER_LEN};
use rustupdate_seal::RecipientSecretKey;
use rustupdate_testkit::{ArtifactSpec, artifact_parts, key, pseudo_random, recipient};
use rustupdate_verify::{
    ChunkData, Error, Keyring, SignaturePolicy, VerifiedArtifact, read_verified_head,
};
use std::io::Read;

/// 3 segments of 512-byte chunks (4096 a segment), data, zeros and data.
fn image() -> Vec<u8> {
    let mut image = pseudo_random(3 << 20, 21);
    image.extend(vec![0u8; 1 << 20]);
    image.extend(pseudo_random(1 << 20, 22));
    image
}

fn options(compression: Compression) -> BodyOptions {
    BodyOptions {
        compression,
        chunking: Chunking::Fixed { size: 512 },
        segment_entries: Some(4096),
        ..BodyOptions::default()
    }
}

struct Built {
    bytes: Vec<u8>,
    body_offset: usize,
}

fn build(image: &[u8], compression: Compression, to: &[&RecipientSecretKey]) -> Built {
    let public: Vec<_> = to.iter().map(|k| k.public()).collect();
    let spec = ArtifactSpec {
        encrypt_to: &public,
        ..Default::default()
    };
    let (head, body) = artifact_parts(&spec, image, &options(compression), &[&key(1)]);
    let mut bytes = head.to_bytes().unwrap();
    let body_offset = bytes.len();
    bytes.extend_from_slice(&body);
    Built { bytes, body_offset }
}

fn ring() -> (Keyring, SignaturePolicy) {
    let mut ring = Keyring::new();
    ring.add(key(1).public_key());
    (ring, SignaturePolicy::default())
}

/// Reads the whole artifact with `secret`, checking every yielded chunk against `original`.
fn read(bytes: &[u8], secret: Option<&RecipientSecretKey>, original: &[u8]) -> Result<(), Error> {
    let (ring, policy) = ring();
    let mut artifact = VerifiedArtifact::open(bytes, &ring, &policy)?;
    artifact.unlock(secret)?;
    let mut end = 0;
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
            end = at + chunk.data.len() as usize;
        }
    }
    artifact.finish()?;
    assert_eq!(end, original.len());
    Ok(())
}

#[test]
fn every_recipient_reads_the_image_and_the_body_shows_none_of_it() {
    let image = image();
    let (a, b) = (recipient(1), recipient(2));
    for compression in [Compression::Zstd, Compression::None] {
        let built = build(&image, compression, &[&a, &b]);
        read(&built.bytes, Some(&a), &image).unwrap();
        read(&built.bytes, Some(&b), &image).unwrap();
    }
    // Stored without compression, a clear artifact holds the image verbatim; a sealed one does
    // not hold even 32 bytes of it.
    let sealed = build(&image, Compression::None, &[&a]);
    let sample = &image[1 << 20..(1 << 20) + 32];
    assert!(!sealed.bytes.windows(32).any(|w| w == sample));
    let (clear_head, clear_body) = artifact_parts(
        &ArtifactSpec::default(),
        &image,
        &options(Compression::None),
        &[&key(1)],
    );
    assert!(clear_body.windows(32).any(|w| w == sample));
    assert!(!clear_head.is_encrypted());
}

/// Counts the bytes a reader handed out.
struct Counting<'a> {
    inner: &'a [u8],
    read: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

#[test]
fn no_key_or_another_key_is_refused_before_the_body_is_read() {
    let image = image();
    let built = build(&image, Compression::Zstd, &[&recipient(1), &recipient(2)]);
    let (ring, policy) = ring();
    let ids = format!(
        "{}, {}",
        rustupdate_seal::key_id_text(&recipient(1).public().key_id()),
        rustupdate_seal::key_id_text(&recipient(2).public().key_id())
    );
    for (secret, expected) in [
        (None, "this device has no decryption key"),
        (Some(recipient(3)), "is not one of them"),
    ] {
        let mut source = Counting {
            inner: &built.bytes,
            read: 0,
        };
        let mut artifact = VerifiedArtifact::open(&mut source, &ring, &policy).unwrap();
        let err = artifact.unlock(secret.as_ref()).unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains(&ids), "{err}");
        // Not unlocked: no payload either.
        assert!(artifact.next_payload().is_err());
        drop(artifact);
        assert_eq!(
            source.read, built.body_offset,
            "{expected}: only the head was read"
        );
    }
}

#[test]
fn every_region_tampered_is_rejected() {
    let image = pseudo_random(300 << 10, 5);
    let secret = recipient(1);
    let built = build(&image, Compression::Zstd, &[&secret]);
    let table_end = built.body_offset + 40 * (300 << 10) / 512 + 16;
    let regions = [
        ("header", 0..HEADER_LEN, 1),
        ("manifest and signatures", HEADER_LEN..built.body_offset, 29),
        ("sealed table", built.body_offset..table_end, 53),
        ("sealed frame", table_end..built.bytes.len(), 1009),
    ];
    for (name, range, step) in regions {
        assert!(range.start < range.end, "{name}");
        for at in range.clone().step_by(step).chain([range.end - 1]) {
            let mut bytes = built.bytes.clone();
            bytes[at] ^= 0x10;
            assert!(
                read(&bytes, Some(&secret), &image).is_err(),
                "flipping byte {at} in the {name} was accepted"
            );
        }
    }
    read(&built.bytes, Some(&secret), &image).unwrap();
}

#[test]
fn an_encrypted_download_resumes_at_every_segment_boundary() {
    let image = image();
    let secret = recipient(1);
    let built = build(&image, Compression::Zstd, &[&secret]);
    let (ring, policy) = ring();
    let mut points = Vec::new();
    let mut artifact = VerifiedArtifact::open(&built.bytes[..], &ring, &policy).unwrap();
    artifact.unlock(Some(&secret)).unwrap();
    let mut payload = artifact.next_payload().unwrap().unwrap();
    while payload.next_chunk().unwrap().is_some() {
        points.extend(payload.segment_end());
    }
    assert_eq!(points.len(), 2, "{points:?}");
    for point in points {
        let (head, signers) = read_verified_head(&mut &built.bytes[..], &ring, &policy).unwrap();
        let offset = head.segment_offset(0, point.segment).unwrap() as usize;
        let mut artifact =
            VerifiedArtifact::resume(head, signers, &built.bytes[offset..], point).unwrap();
        let prefix = &image[..point.image_offset as usize];
        assert!(artifact.resume_payload(&mut &prefix[..]).is_err(), "locked");
        artifact.unlock(Some(&secret)).unwrap();
        let mut out = prefix.to_vec();
        let mut payload = artifact.resume_payload(&mut &prefix[..]).unwrap();
        while let Some(chunk) = payload.next_chunk().unwrap() {
            match chunk.data {
                ChunkData::Bytes(b) => out.extend_from_slice(b),
                ChunkData::Zeros(n) => out.resize(out.len() + n as usize, 0),
            }
        }
        drop(payload);
        artifact.finish().unwrap();
        assert_eq!(out, image, "{point:?}");
    }
}
