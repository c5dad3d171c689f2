//! The manifest's `[encryption]` table and the length rules of sealed bodies
//! (`docs/encryption.md`). The cryptography itself is `rustupdate-seal`; this module only says
//! what an encrypted artifact's manifest may contain and how long its sealed parts are, so that
//! offsets, resume points and the artifact's length follow from the signed head as before.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The one scheme of this format: the content key wrapped for each recipient with HPKE
/// (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305); tables
/// sealed with ChaCha20-Poly1305, frames with its STREAM construction in 64 KiB blocks.
pub const SCHEME: &str = "x25519-hpke-chacha20poly1305-stream64k";
/// Plaintext bytes of one sealed block of a frame.
pub const SEAL_BLOCK_LEN: u64 = 64 * 1024;
/// Authentication tag added to each sealed block and to each sealed table.
pub const SEAL_TAG_LEN: u64 = 16;
/// Most recipients an artifact is encrypted to.
pub const MAX_RECIPIENTS: usize = 256;

/// `[encryption]`: present when the body's tables and frames are sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Encryption {
    pub scheme: String,
    #[serde(rename = "recipient")]
    pub recipients: Vec<Recipient>,
}

/// `[[encryption.recipient]]`: the content key, wrapped for one X25519 key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Recipient {
    /// The first 8 bytes of sha256 of the recipient's raw public key.
    pub key_id: HexBytes<8>,
    /// HPKE's encapsulated key (the sender's ephemeral X25519 public key).
    pub encapsulated_key: HexBytes<32>,
    /// The 32-byte content key sealed by HPKE, with its tag.
    pub wrapped_key: HexBytes<48>,
}

impl Encryption {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Manifest(format!("encryption: {msg}")));
        if self.scheme != SCHEME {
            return bad(format!(
                "scheme {:?} is not supported (only {SCHEME:?})",
                self.scheme
            ));
        }
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return bad(format!("1 to {MAX_RECIPIENTS} recipients"));
        }
        for (index, recipient) in self.recipients.iter().enumerate() {
            if self.recipients[..index]
                .iter()
                .any(|r| r.key_id == recipient.key_id)
            {
                return bad(format!("recipient key {} appears twice", recipient.key_id));
            }
        }
        Ok(())
    }
}

/// Stored length of a frame of `plain` bytes once sealed (0 stays 0: no frame).
pub fn sealed_len(plain: u64) -> u64 {
    plain + plain.div_ceil(SEAL_BLOCK_LEN) * SEAL_TAG_LEN
}

/// Plaintext length of a sealed frame of `sealed` stored bytes; `None` when no frame seals to
/// that length (a last block without a plaintext byte).
pub fn opened_len(sealed: u64) -> Option<u64> {
    if sealed == 0 {
        return Some(0);
    }
    let blocks = sealed.div_ceil(SEAL_BLOCK_LEN + SEAL_TAG_LEN);
    let plain = sealed.checked_sub(blocks * SEAL_TAG_LEN)?;
    (plain > 0 && sealed_len(plain) == sealed).then_some(plain)
}

/// A byte string of fixed length, written as lowercase hex in the manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; N];
        if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(format!(
                "expected {} lowercase hex digits",
                2 * N
            )));
        }
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(HexBytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_lengths_round_trip_and_impossible_ones_are_refused() {
        for plain in [
            1,
            100,
            SEAL_BLOCK_LEN - 1,
            SEAL_BLOCK_LEN,
            SEAL_BLOCK_LEN + 1,
            10 << 20,
        ] {
            let sealed = sealed_len(plain);
            assert_eq!(opened_len(sealed), Some(plain), "{plain}");
        }
        assert_eq!(sealed_len(0), 0);
        assert_eq!(opened_len(0), Some(0));
        assert_eq!(sealed_len(SEAL_BLOCK_LEN), SEAL_BLOCK_LEN + 16);
        assert_eq!(sealed_len(SEAL_BLOCK_LEN + 1), SEAL_BLOCK_LEN + 33);
        // A tag alone, or a last block of only a tag, holds no plaintext byte.
        for sealed in [1, 16, SEAL_BLOCK_LEN + 16 + 16, SEAL_BLOCK_LEN + 16 + 5] {
            assert_eq!(opened_len(sealed), None, "{sealed}");
        }
    }

    #[test]
    fn hex_bytes_are_exact() {
        let ok: HexBytes<2> = toml::from_str::<toml::Value>("v = \"0aff\"")
            .unwrap()
            .get("v")
            .unwrap()
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(ok.0, [0x0a, 0xff]);
        for bad in ["\"0AFF\"", "\"0af\"", "\"0aff00\"", "\"zzzz\""] {
            let value = toml::from_str::<toml::Value>(&format!("v = {bad}")).unwrap();
            assert!(
                value
                    .get("v")
                    .unwrap()
                    .clone()
                    .try_into::<HexBytes<2>>()
                    .is_err(),
                "{bad}"
            );
        }
    }
}
