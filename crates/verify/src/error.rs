use rustupdate_format::KeyId;
use thiserror::Error;

#[derive(Debug, Error)]
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
    #[error("the payloads were not read to the end")]
    Unfinished,
}
