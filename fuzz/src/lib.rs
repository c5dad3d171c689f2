//! Helpers shared by the fuzz targets and the corpus tools of this (unpublished) crate.
//!
//! The `reader` target reads every input three ways (see [`Pass`]). Signatures and the segment
//! table hashes are walls a mutation-based fuzzer rarely gets through on its own: the unsigned pass
//! removes the first, the fixed-up pass the second, so that mutated chunk tables reach the entry
//! checks, the layout checks and the codecs.
//!
//! The `delta` target applies a patch (clear, or sealed for an encrypted target) to a fixed base
//! ([`apply_delta`]).

use rustupdate_format::{Sha256Hex, read_head};
use rustupdate_verify::{Keyring, SecretKey, SignaturePolicy, VerifiedArtifact};
use sha2::{Digest, Sha256};

/// The seed corpus is signed with the key of this seed (see `examples/make-seeds.rs`).
pub const FUZZ_KEY_SEED: [u8; 32] = [7; 32];

/// The encrypted seeds are encrypted to the X25519 key of these bytes; every read opens
/// encrypted inputs with it, so mutations reach the sealed tables and frames.
pub const FUZZ_RECIPIENT: [u8; 32] = [9; 32];

/// Payload bytes an input may declare before it is not read further. A zero run of up to 1 TiB is a
/// valid table entry and goes through the whole-image hash, which takes minutes: the format allows
/// it, the fuzzer only needs the logic around it.
pub const MAX_DECLARED_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The input as is, with the fuzz key trusted and the default policy (one signature).
    Trusted,
    /// The input as is, with the dangerous policy that accepts unsigned artifacts.
    Unsigned,
    /// The input with every segment's `table-sha256` recomputed from the bytes where that table
    /// sits (see [`fix_table_hashes`]), read with the dangerous policy.
    FixedTables,
}

pub const PASSES: [Pass; 3] = [Pass::Trusted, Pass::Unsigned, Pass::FixedTables];

/// How far a read got.
#[derive(Debug)]
pub enum Outcome {
    /// Every payload verified and `finish` found nothing trailing.
    Verified,
    /// Opened, but declares more than [`MAX_DECLARED_BYTES`]; not read.
    TooLarge,
    /// [`Pass::FixedTables`] only: the head does not parse, so there was nothing to fix.
    NotFixable,
    Rejected(rustupdate_verify::Error),
}

/// Reads `data` the way a device does (open, every chunk of every payload, `finish`) and checks the
/// reader's contract on the way: chunks are contiguous, stay inside the payload, and a completed
/// payload covers exactly its declared size. Panics only when that contract is broken.
pub fn read(data: &[u8], pass: Pass) -> Outcome {
    let mut ring = Keyring::new();
    let fixed;
    let (data, policy) = match pass {
        Pass::Trusted => {
            ring.add(SecretKey::from_seed(&FUZZ_KEY_SEED).public_key());
            (data, SignaturePolicy::default())
        }
        Pass::Unsigned => (data, SignaturePolicy::dangerous_accept_unsigned()),
        Pass::FixedTables => match fix_table_hashes(data) {
            Some(bytes) => {
                fixed = bytes;
                (&fixed[..], SignaturePolicy::dangerous_accept_unsigned())
            }
            None => return Outcome::NotFixable,
        },
    };
    match read_all(data, &ring, &policy) {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Rejected(err),
    }
}

fn read_all(
    data: &[u8],
    ring: &Keyring,
    policy: &SignaturePolicy,
) -> Result<Outcome, rustupdate_verify::Error> {
    let mut artifact = VerifiedArtifact::open(data, ring, policy)?;
    let recipient = rustupdate_seal::RecipientSecretKey::from_bytes(FUZZ_RECIPIENT);
    artifact.unlock(Some(&recipient))?;
    let declared: u64 = artifact.manifest().payloads.iter().map(|p| p.size).sum();
    if declared > MAX_DECLARED_BYTES {
        return Ok(Outcome::TooLarge);
    }
    while let Some(mut payload) = artifact.next_payload()? {
        let size = payload.payload().size;
        let mut end = 0;
        while let Some(chunk) = payload.next_chunk()? {
            assert_eq!(chunk.offset, end, "chunks must be contiguous");
            end = chunk.offset + chunk.data.len();
            assert!(end <= size, "chunk runs past the declared payload size");
        }
        assert_eq!(end, size, "a completed payload covers its declared size");
    }
    artifact.finish()?;
    Ok(Outcome::Verified)
}

/// Rewrites the manifest so that each segment's `table-sha256` matches the bytes at that segment's
/// table position (as far as the input reaches), drops the signatures and re-encodes the head.
/// `None` when the head does not parse.
pub fn fix_table_hashes(data: &[u8]) -> Option<Vec<u8>> {
    let mut rest = data;
    let head = read_head(&mut rest).ok()?;
    let layout = head.layout();
    let sealed = head.is_encrypted();
    let body = rest;
    let mut manifest = head.manifest;
    let mut position = 0u64;
    'payloads: for payload in &mut manifest.payloads {
        for segment in &mut payload.segments {
            let start = usize::try_from(position).ok()?;
            let end = start
                .checked_add(usize::try_from(segment.stored_table_len(layout, sealed)).ok()?)?;
            let Some(table) = body.get(start..end) else {
                break 'payloads;
            };
            segment.table_sha256 = Sha256Hex(Sha256::digest(table).into());
            position = (end as u64).checked_add(segment.data_size)?;
        }
    }
    let mut out = rustupdate_verify::signed_head(manifest, &[])
        .ok()?
        .to_bytes()
        .ok()?;
    out.extend_from_slice(body);
    Some(out)
}

/// The base image every `delta` input's patch is applied to: 32 KiB that look like a file
/// system (text, zeros, pseudo-random blocks).
pub fn delta_base() -> Vec<u8> {
    let mut image = b"superblock data ".repeat(512);
    image.resize(12 * 1024, 0);
    image.extend((0..20 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    image
}

/// Splits a `delta` input: a little-endian u32 length, that many bytes of artifact, the patch.
pub fn split_delta_input(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let rest = &data[4..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Applies the input's patch to [`delta_base`] for the input's artifact (read unsigned, opened
/// with [`FUZZ_RECIPIENT`] when encrypted), as a device rebuilds an image, checking the chunk
/// contract on the way. Panics only when that contract is broken.
pub fn apply_delta(data: &[u8]) -> Result<(), rustupdate_verify::Error> {
    use rustupdate_verify::ChunkSource;
    let Some((artifact, patch)) = split_delta_input(data) else {
        return Ok(());
    };
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut opened = VerifiedArtifact::open(artifact, &Keyring::new(), &policy)?;
    let recipient = rustupdate_seal::RecipientSecretKey::from_bytes(FUZZ_RECIPIENT);
    opened.unlock(Some(&recipient))?;
    let size = opened.manifest().payloads.first().map_or(0, |p| p.size);
    if size > MAX_DECLARED_BYTES {
        return Ok(());
    }
    let base = delta_base();
    let mut delta = rustupdate_delta::DeltaPayload::open_with_key(
        opened.head(),
        std::io::Cursor::new(patch),
        &base[..],
        false,
        opened.content_key(),
    )?;
    let mut end = 0;
    while let Some(chunk) = delta.next_chunk()? {
        assert_eq!(chunk.offset, end, "chunks must be contiguous");
        end = chunk.offset + chunk.data.len();
        assert!(end <= size, "chunk runs past the declared payload size");
    }
    assert_eq!(end, size, "a completed rebuild covers the payload");
    Ok(())
}
