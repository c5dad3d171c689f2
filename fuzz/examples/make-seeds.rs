//! Writes the seed corpus: small real artifacts across codecs and chunkings, each signed with the
//! fuzz key (`FUZZ_KEY_SEED`, trusted by the `reader` target) and unsigned, plus a two-payload
//! artifact (the tool builds one payload, the format allows up to 8). `head` gets their heads,
//! `roundtrip` the images, `delta` a clear and a sealed patch with their artifacts. Deterministic
//! (but for the encrypted seeds, written only when missing): run it again and nothing changes.
//!
//! Run from `fuzz/`: `cargo run --example make-seeds` (also writes `fuzz-key.pub.pem`).

use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_format::{Chunking, Compression, Manifest, Payload};
use rustupdate_fuzz::{FUZZ_KEY_SEED, FUZZ_RECIPIENT};
use rustupdate_verify::{SecretKey, signed_head};
use std::error::Error;

/// A few KiB that look like a filesystem: text, a zero granule, pseudo-random bytes, an odd tail.
fn image(seed: u32) -> Vec<u8> {
    let mut image = b"superblock data ".repeat(300);
    image.resize(12 * 1024, 0);
    image.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed as u8));
    image.extend(b"tail");
    image
}

fn payload(
    name: &str,
    image: &[u8],
    body: &mut Vec<u8>,
    options: &BodyOptions,
) -> Result<Payload, Box<dyn Error>> {
    Ok(write_payload_body(image, body, name, options, &mut |_| {})?)
}

fn seed_manifest(format_version: u16, payloads: Vec<Payload>) -> Manifest {
    Manifest {
        format_version,
        name: "seed".into(),
        version: "1".into(),
        compatible: vec!["fuzz".into()],
        security_version: Some(1),
        created: 0,
        trust_document: None,
        encryption: None,
        payloads,
    }
}

fn write_artifact(name: &str, payloads: Vec<Payload>, body: &[u8]) -> Result<(), Box<dyn Error>> {
    let key = SecretKey::from_seed(&FUZZ_KEY_SEED);
    let manifest = seed_manifest(1, payloads);
    for (suffix, keys) in [("signed", vec![&key]), ("unsigned", vec![])] {
        let head = signed_head(manifest.clone(), &keys)?;
        let mut bytes = head.to_bytes()?;
        std::fs::write(format!("corpus/head/seed-{name}-{suffix}"), &bytes)?;
        bytes.extend_from_slice(body);
        std::fs::write(format!("corpus/reader/seed-{name}-{suffix}"), &bytes)?;
    }
    Ok(())
}

/// A version 2 artifact encrypted to the fuzz recipient (docs/encryption.md). Its content key
/// and HPKE's ephemeral key are random, so it is written only when missing.
fn write_encrypted() -> Result<(), Box<dyn Error>> {
    let path = "corpus/reader/seed-zstd-fixed-encrypted-signed";
    if std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut body = Vec::new();
    let mut rootfs = payload("rootfs", &image(20), &mut body, &BodyOptions::default())?;
    let key = rustupdate_seal::ContentKey::generate();
    let mut sealed = Vec::new();
    rustupdate_seal::seal_payload_body(&key, 0, &mut rootfs, &mut &body[..], &mut sealed)?;
    let recipient = rustupdate_seal::RecipientSecretKey::from_bytes(FUZZ_RECIPIENT).public();
    let mut manifest = seed_manifest(2, vec![rootfs]);
    manifest.encryption = Some(rustupdate_seal::wrap(&key, &[recipient])?);
    let head = signed_head(manifest, &[&SecretKey::from_seed(&FUZZ_KEY_SEED)])?;
    let mut bytes = head.to_bytes()?;
    bytes.extend_from_slice(&sealed);
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The `delta` seeds: the next release of [`delta_base`] as a clear artifact with its clear patch,
/// and encrypted to the fuzz recipient with its sealed patch (random keys: written when missing).
fn write_delta_seeds() -> Result<(), Box<dyn Error>> {
    let base = rustupdate_fuzz::delta_base();
    let mut target = base.clone();
    target[4096..4110].copy_from_slice(b"release two...");
    target[16 * 1024..20 * 1024].reverse();
    for (name, encrypted) in [("clear", false), ("sealed", true)] {
        let path = format!("corpus/delta/seed-{name}");
        if encrypted && std::path::Path::new(&path).exists() {
            continue;
        }
        let options = BodyOptions {
            format_version: 2,
            ..BodyOptions::default()
        };
        let mut body = Vec::new();
        let mut rootfs = payload("rootfs", &target, &mut body, &options)?;
        let mut manifest = seed_manifest(2, vec![]);
        if encrypted {
            let key = rustupdate_seal::ContentKey::generate();
            let mut sealed = Vec::new();
            rustupdate_seal::seal_payload_body(&key, 0, &mut rootfs, &mut &body[..], &mut sealed)?;
            body = sealed;
            let recipient = rustupdate_seal::RecipientSecretKey::from_bytes(FUZZ_RECIPIENT);
            manifest.encryption = Some(rustupdate_seal::wrap(&key, &[recipient.public()])?);
        }
        manifest.payloads.push(rootfs);
        let mut artifact = signed_head(manifest, &[])?.to_bytes()?;
        artifact.extend_from_slice(&body);
        let policy = rustupdate_verify::SignaturePolicy::dangerous_accept_unsigned();
        let ring = rustupdate_verify::Keyring::new();
        let mut opened = rustupdate_verify::VerifiedArtifact::open(&artifact[..], &ring, &policy)?;
        let recipient = rustupdate_seal::RecipientSecretKey::from_bytes(FUZZ_RECIPIENT);
        opened.unlock(Some(&recipient))?;
        let key = opened.content_key().cloned();
        let head = opened.head().clone();
        let mut source = opened.next_payload()?.ok_or("no payload")?;
        let mut patch = Vec::new();
        let options = rustupdate_delta::BuildOptions::default();
        let base_image = rustupdate_delta::Base::Image(&base);
        rustupdate_delta::build_patch(
            &head,
            &mut source,
            base_image,
            &options,
            &mut patch,
            &mut |_, _| {},
        )?;
        if let Some(key) = key {
            let mut sealed = Vec::new();
            rustupdate_delta::seal_patch(&key, &patch, &mut sealed)?;
            patch = sealed;
        }
        let mut input = (artifact.len() as u32).to_le_bytes().to_vec();
        input.extend_from_slice(&artifact);
        input.extend_from_slice(&patch);
        rustupdate_fuzz::apply_delta(&input)?;
        std::fs::write(path, input)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    for dir in [
        "corpus/reader",
        "corpus/head",
        "corpus/roundtrip",
        "corpus/delta",
    ] {
        std::fs::create_dir_all(dir)?;
    }
    let variants = [
        (
            "zstd-fixed",
            Compression::Zstd,
            Chunking::Fixed { size: 4096 },
            0u8,
        ),
        (
            "zstd-cdc",
            Compression::Zstd,
            Chunking::FastCdc {
                min: 64,
                avg: 256,
                max: 1024,
            },
            2,
        ),
        (
            "gzip-cdc",
            Compression::Gzip,
            Chunking::FastCdc {
                min: 256,
                avg: 1024,
                max: 4096,
            },
            3,
        ),
        (
            "gzip-fixed",
            Compression::Gzip,
            Chunking::Fixed { size: 512 },
            1,
        ),
        (
            "none-fixed",
            Compression::None,
            Chunking::Fixed { size: 2048 },
            0,
        ),
    ];
    for (index, (name, compression, chunking, roundtrip_cut)) in variants.into_iter().enumerate() {
        let options = BodyOptions {
            format_version: 1,
            compression,
            level: 3,
            chunking,
            threads: 1,
            segment_entries: None,
        };
        let image = image(index as u32);
        let mut body = Vec::new();
        let rootfs = payload("rootfs", &image, &mut body, &options)?;
        write_artifact(name, vec![rootfs], &body)?;
        // roundtrip: byte 0 picks the codec (zstd, gzip, none), byte 1 the chunking.
        let mut input = vec![compression.id().wrapping_add(2) % 3, roundtrip_cut];
        input.extend_from_slice(&image);
        std::fs::write(format!("corpus/roundtrip/seed-{name}"), input)?;
    }
    // Version 1, as `write_artifact` declares (the builder's default is version 2).
    let options = BodyOptions {
        format_version: 1,
        ..BodyOptions::default()
    };
    let mut body = Vec::new();
    let first = payload("rootfs", &image(10), &mut body, &options)?;
    let second = payload(
        "appfs",
        &b"application data ".repeat(100),
        &mut body,
        &options,
    )?;
    write_artifact("two-payloads", vec![first, second], &body)?;
    write_encrypted()?;
    write_delta_seeds()?;
    // For checking the seeds with the release tool: `rustupdate-artifact verify SEED --key fuzz-key.pub.pem`.
    std::fs::write(
        "fuzz-key.pub.pem",
        SecretKey::from_seed(&FUZZ_KEY_SEED).public_key().to_pem()?,
    )?;
    Ok(())
}
