//! What is wrong with an artifact's framing, manifest or chunk table, or with building one. What
//! only a verifier finds (a hash or a chunk that does not check out, trailing data) is
//! `rustupdate-verify`'s error.
//!
//! The `String` in a variant (`reason`, a manifest or chunking complaint) is text for a person:
//! no caller branches on it, they branch on the variant.

use thiserror::Error;

/// What is wrong with an artifact, named precisely enough to act on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not a rustupdate artifact (bad magic bytes)")]
    BadMagic,
    #[error(
        "unsupported artifact format version {found} (this build reads versions 1 to {supported})"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("header field {field} is {value}, which is not allowed: {reason}")]
    BadHeaderField {
        field: &'static str,
        value: u64,
        reason: String,
    },
    #[error("artifact is truncated in the {part}")]
    Truncated { part: &'static str },
    #[error("I/O error while reading the {part}: {source}")]
    Io {
        part: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("invalid chunk table entry {index}: {reason}")]
    ChunkEntry { index: u64, reason: String },
    #[error("payload {payload:?}: {reason}")]
    PayloadLayout { payload: String, reason: String },
    #[error("invalid chunking parameters {0:?}")]
    Chunking(String),
    #[error("compression failed: {0}")]
    Compress(String),
}
