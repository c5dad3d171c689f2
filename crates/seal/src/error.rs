//! What can go wrong when opening or sealing, each naming what it is about.

/// An encrypted artifact that cannot be opened, or a key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error(
        "the artifact is encrypted to recipient key(s) {recipients}; this device's key {ours} is \
         not one of them"
    )]
    NotARecipient { ours: String, recipients: String },
    #[error(
        "the content key wrapped for recipient key {key_id} does not open with this device's \
         key (a wrong key, or the artifact was altered)"
    )]
    Unwrap { key_id: String },
    #[error("the sealed chunk table of segment {segment} does not open (altered)")]
    Table { segment: u32 },
    #[error("sealed block {block} of segment {segment}'s frame does not open (altered)")]
    Block { segment: u32, block: u64 },
    #[error("segment {segment}: the sealed frame does not match its signed data-sha256")]
    FrameDigest { segment: u32 },
    #[error("segment {segment}: the sealed frame ended before its last block")]
    FrameShort { segment: u32 },
    #[error("{0}")]
    KeyFile(String),
    #[error("sealing failed: {0}")]
    Seal(String),
}
