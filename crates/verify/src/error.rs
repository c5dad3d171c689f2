//! What makes an artifact untrusted or damaged, as found while verifying it: bad keys and
//! signatures, an unmet signature policy, chunks, tables or images whose hashes do not check out.
//! Framing and manifest errors arrive from `rustupdate-format` as [`Error::Format`].
//!
//! The `String` in a variant is text for a person; callers branch on the variant
//! ([`Error::is_io`], [`Error::is_delta`]), never on the text.

use rustupdate_format::KeyId;
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Format(#[from] rustupdate_format::Error),
    #[error("invalid key: {0}")]
    Key(String),
    #[error(
        "the signature by trusted key {key_id} does not verify: the manifest or signature was altered"
    )]
    BadSignature { key_id: KeyId },
    #[error(
        "not enough trusted signatures: {valid} distinct trusted key(s) signed, the policy requires {required} \
         (signatures present: {present}; keys not in the keyring are ignored)"
    )]
    NotEnoughSignatures {
        valid: usize,
        required: usize,
        present: usize,
    },
    #[error(
        "signed by revoked key(s) {}: {valid} distinct trusted key(s) signed, the policy requires {required}",
        revoked.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    RevokedSigners {
        revoked: Vec<KeyId>,
        valid: usize,
        required: usize,
    },
    #[error(transparent)]
    Sealed(#[from] rustupdate_seal::SealError),
    #[error(
        "the artifact is encrypted to recipient key(s) {recipients}; this device has no \
         decryption key"
    )]
    NoDecryptionKey { recipients: String },
    #[error("the payloads were not read to the end")]
    Unfinished,
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
    #[error("unexpected bytes after the last payload")]
    TrailingData,
    /// An interrupted payload cannot be continued where asked (the caller falls back to a full
    /// download); not a verdict on the artifact.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// A delta patch does not rebuild the signed image from this device's base (a wrong or
    /// modified base, a damaged or truncated patch): the caller falls back to a full download.
    /// Nothing unverified was handed on.
    #[error("delta: {0}")]
    Delta(String),
}

impl Error {
    /// A failure to read the artifact (network, disk) rather than a verdict on its content.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            Error::Format(rustupdate_format::Error::Io { .. }) | Error::Resume(_)
        )
    }

    /// A delta that cannot rebuild the image here; a full download can still install it.
    pub fn is_delta(&self) -> bool {
        matches!(self, Error::Delta(_))
    }
}
