use thiserror::Error;

/// What is wrong with an artifact, named precisely enough to act on.
#[derive(Debug, Error)]
pub enum Error {
    #[error("not a rustupdate artifact (bad magic bytes)")]
    BadMagic,
    #[error("unsupported artifact format version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("header field {field} is {value}, which is not allowed: {reason}")]
    BadHeaderField {
        field: &'static str,
        value: u64,
        reason: &'static str,
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
    #[error("payload {payload:?}, segment {segment}: chunk table hash does not match the manifest")]
    SegmentHashMismatch { payload: String, segment: usize },
    #[error("payload {payload:?}: chunk at offset {offset} fails its sha256 check")]
    ChunkHashMismatch { payload: String, offset: u64 },
    #[error("payload {payload:?}: chunk at offset {offset} does not decompress: {reason}")]
    Decompress {
        payload: String,
        offset: u64,
        reason: String,
    },
    #[error("payload {payload:?}: whole-image sha256 does not match the manifest")]
    ImageHashMismatch { payload: String },
    #[error("payload {payload:?}: {reason}")]
    PayloadLayout { payload: String, reason: String },
    #[error("unexpected bytes after the last payload")]
    TrailingData,
    #[error("invalid chunking parameters {0:?}")]
    Chunking(String),
    #[error("compression failed: {0}")]
    Compress(String),
}
