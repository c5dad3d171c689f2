//! The signature block: `signature count` entries of 72 bytes right after the manifest.
//!
//! ```text
//! 0  [8]   key id: the first 8 bytes of sha256(raw 32-byte ed25519 public key)
//! 8  [64]  ed25519 signature of SIGNING_DOMAIN || manifest bytes
//! ```
//! The block sits outside the signed bytes, so signatures can be added later without touching the
//! manifest or the body.

use sha2::{Digest, Sha256};
use std::fmt;

pub const SIGNATURE_ENTRY_LEN: usize = 72;

/// Short identifier of a public key. Only a hint for choosing the key: the signature itself is
/// always checked against the full key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    pub fn of_public_key(raw_public_key: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(raw_public_key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SignatureEntry {
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

impl SignatureEntry {
    pub fn from_bytes(bytes: &[u8; SIGNATURE_ENTRY_LEN]) -> SignatureEntry {
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[8..]);
        SignatureEntry {
            key_id: KeyId(key_id),
            signature,
        }
    }

    pub fn to_bytes(&self) -> [u8; SIGNATURE_ENTRY_LEN] {
        let mut out = [0u8; SIGNATURE_ENTRY_LEN];
        out[..8].copy_from_slice(&self.key_id.0);
        out[8..].copy_from_slice(&self.signature);
        out
    }
}

impl fmt::Debug for SignatureEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureEntry({})", self.key_id)
    }
}
