//! The rustupdate artifact container (`.rua`), versions 1 and 2.
//!
//! This crate is pure: it parses and encodes the header, the manifest, the signature block and the
//! chunk table, cuts images into chunks and compresses or decompresses single chunks. It reads from
//! any [`std::io::Read`] handed to it but never opens files, sockets or devices itself.
//!
//! It does **not** check signatures or decide whether an artifact is trusted: that is
//! `rustupdate-verify`, which wraps the reader here into one that yields payload bytes only after
//! the signature policy and every chunk hash have been checked. The byte layout is specified in
//! `docs/artifact-format.md`.

#![forbid(unsafe_code)]

pub mod builder;
pub mod chunk_table;
pub mod chunker;
pub mod codec;
pub mod encryption;
mod error;
pub mod header;
pub mod limits;
pub mod manifest;
pub mod signature_block;

pub use chunk_table::{CheckedTable, ChunkEntry, ChunkKind, TableLayout, TableSummary};
pub use chunker::{Chunker, Chunking, Cut};
pub use codec::Compression;
pub use encryption::Encryption;
pub use error::Error;
pub use header::Header;
pub use manifest::{Manifest, Payload, PayloadType, Segment, Sha256Hex};
pub use signature_block::{KeyId, SignatureEntry};

/// Bytes that prefix the manifest in the message every signature covers. Domain separation keeps a
/// signature made for an artifact from being valid for anything else signed by the same key.
pub const SIGNING_DOMAIN: &[u8] = b"rustupdate-artifact-v1\0";

/// The exact message a signer signs (and an external signer receives on stdin).
pub fn signing_message(manifest_bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_DOMAIN.len() + manifest_bytes.len());
    message.extend_from_slice(SIGNING_DOMAIN);
    message.extend_from_slice(manifest_bytes);
    message
}

/// Everything in front of the body: the header, the raw manifest bytes (as signed), the parsed
/// manifest and the signatures. Produced by [`read_head`]; nothing here is verified yet.
#[derive(Debug, Clone)]
pub struct Head {
    pub header: Header,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub signatures: Vec<SignatureEntry>,
}

impl Head {
    /// Offset of the body (the first segment table) from the start of the file.
    pub fn body_offset(&self) -> u64 {
        header::HEADER_LEN as u64
            + self.manifest_bytes.len() as u64
            + (self.signatures.len() * signature_block::SIGNATURE_ENTRY_LEN) as u64
    }

    /// Whether the body's tables and frames are sealed (`[encryption]` in the manifest).
    pub fn is_encrypted(&self) -> bool {
        self.manifest.encryption.is_some()
    }

    /// The chunk table layout of this artifact's format version.
    pub fn layout(&self) -> TableLayout {
        // The header accepted only versions that have a layout; version 1 is the safe reading.
        TableLayout::for_version(self.header.format_version).unwrap_or(TableLayout::PerChunk)
    }

    /// Offset from the start of the file of segment `segment` (its table) of payload `payload`:
    /// where a download resumes. `None` when there is no such segment.
    pub fn segment_offset(&self, payload: usize, segment: usize) -> Option<u64> {
        let payloads = &self.manifest.payloads;
        let this = payloads.get(payload)?;
        if segment >= this.segments.len() {
            return None;
        }
        let layout = self.layout();
        let sealed = self.is_encrypted();
        let stored = |s: &manifest::Segment| s.stored_table_len(layout, sealed) + s.data_size;
        let before: u64 = payloads[..payload]
            .iter()
            .flat_map(|p| p.segments.iter())
            .map(stored)
            .sum();
        let within: u64 = this.segments[..segment].iter().map(stored).sum();
        Some(self.body_offset() + before + within)
    }

    /// Length of the whole artifact as this head describes it: the head, then every segment of
    /// every payload. A source of another length is damaged (truncated, or bytes appended).
    pub fn artifact_len(&self) -> u64 {
        let body: u64 = self
            .manifest
            .payloads
            .iter()
            .flat_map(|p| p.segments.iter())
            .map(|s| s.stored_table_len(self.layout(), self.is_encrypted()) + s.data_size)
            .sum();
        self.body_offset() + body
    }

    /// Encodes the head again, e.g. after adding a signature. The body follows unchanged.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let header = Header::new(
            self.header.format_version,
            self.manifest_bytes.len(),
            self.signatures.len(),
        )?;
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(&self.manifest_bytes);
        for signature in &self.signatures {
            out.extend_from_slice(&signature.to_bytes());
        }
        Ok(out)
    }
}

/// The head as framed, before the manifest is parsed: all a signature check needs. Produced by
/// [`read_raw_head`]; a verifier checks the signatures over `manifest_bytes` first and only then
/// calls [`RawHead::parse`], so an untrusted manifest is never parsed.
#[derive(Debug, Clone)]
pub struct RawHead {
    pub header: Header,
    pub manifest_bytes: Vec<u8>,
    pub signatures: Vec<SignatureEntry>,
}

impl RawHead {
    /// Parses and validates the manifest. Parsing TOML takes memory in proportion to the input
    /// (up to about 140 bytes per manifest byte for hostile input), so verify signatures first.
    pub fn parse(self) -> Result<Head, Error> {
        let manifest = Manifest::from_bytes(&self.manifest_bytes)?;
        if manifest.format_version != self.header.format_version {
            return Err(Error::Manifest(format!(
                "manifest says format version {} but the header says {}",
                manifest.format_version, self.header.format_version
            )));
        }
        Ok(Head {
            header: self.header,
            manifest_bytes: self.manifest_bytes,
            manifest,
            signatures: self.signatures,
        })
    }
}

/// Reads the header, the manifest bytes and the signature block from the front of an artifact,
/// without parsing the manifest. Memory is bounded by [`limits::MAX_MANIFEST_LEN`] and
/// [`limits::MAX_SIGNATURES`].
pub fn read_raw_head<R: std::io::Read>(reader: &mut R) -> Result<RawHead, Error> {
    let mut header_bytes = [0u8; header::HEADER_LEN];
    read_exact_or(reader, &mut header_bytes, "header")?;
    let header = Header::from_bytes(&header_bytes)?;
    let mut manifest_bytes = vec![0u8; header.manifest_len as usize];
    read_exact_or(reader, &mut manifest_bytes, "manifest")?;
    let mut signatures = Vec::with_capacity(header.signature_count as usize);
    for _ in 0..header.signature_count {
        let mut entry = [0u8; signature_block::SIGNATURE_ENTRY_LEN];
        read_exact_or(reader, &mut entry, "signature block")?;
        signatures.push(SignatureEntry::from_bytes(&entry));
    }
    Ok(RawHead {
        header,
        manifest_bytes,
        signatures,
    })
}

/// Reads and parses the header, the manifest and the signature block from the front of an artifact
/// (nothing verified: for tools that show an artifact; a verifier uses [`read_raw_head`]).
pub fn read_head<R: std::io::Read>(reader: &mut R) -> Result<Head, Error> {
    read_raw_head(reader)?.parse()
}

/// `read_exact` that reports a short read as truncation of the named part.
pub fn read_exact_or<R: std::io::Read>(
    reader: &mut R,
    buf: &mut [u8],
    part: &'static str,
) -> Result<(), Error> {
    reader.read_exact(buf).map_err(|err| match err.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Truncated { part },
        _ => Error::Io { part, source: err },
    })
}
