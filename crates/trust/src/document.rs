//! The trust document as a file: JSON with the `signed` part and the `signatures` over it.
//!
//! What is signed is not the file's text but [`Signed::signing_message`]: a domain prefix and
//! the `signed` part serialized again from its parsed form (fields in a fixed order, no
//! whitespace). Whitespace or key order in the file cannot change what a signature covers, and
//! unknown or duplicate fields are refused, so two different documents never share a message.

use rustupdate_verify::{KeyId, PublicKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The `type` every trust document carries.
pub const DOCUMENT_TYPE: &str = "rustupdate-trust";
/// Prefix of the message every signature covers: a trust signature cannot pass for an artifact
/// signature (`rustupdate-artifact-v1\0`) or the reverse.
pub const SIGNING_DOMAIN: &[u8] = b"rustupdate-trust-v1\0";
/// Bounds that keep a hostile document cheap to refuse.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
pub const MAX_KEYS_PER_ROLE: usize = 64;
pub const MAX_REVOKED: usize = 1024;
pub const MAX_SIGNATURES: usize = 64;

/// A set of keys of which `threshold` distinct ones must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub threshold: usize,
    /// Raw ed25519 public keys, hex (64 digits).
    pub keys: Vec<String>,
}

/// The part of the document the root keys sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    #[serde(rename = "type")]
    pub kind: String,
    /// Raised by every change; a device accepts only a higher one.
    pub version: u64,
    /// The keys that sign the next document.
    pub root: Role,
    /// The keys that sign artifacts.
    pub release: Role,
    /// Key ids (hex, 16 digits) no longer trusted for anything.
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// One signature over [`Signed::signing_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signature {
    /// The signing key's id (hex, 16 digits).
    pub key_id: String,
    /// The ed25519 signature (hex, 128 digits).
    pub sig: String,
}

/// A parsed and structurally checked document; nothing about its signatures is known yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub signed: Signed,
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// Why bytes are not a trust document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("a trust document of {0} bytes is larger than the {MAX_DOCUMENT_BYTES} allowed")]
    TooLarge(usize),
    #[error("not a trust document: {0}")]
    Json(String),
    #[error("type is {0:?}, not {DOCUMENT_TYPE:?}")]
    WrongType(String),
    #[error("{role} key {key:?} is not a hex ed25519 public key")]
    BadKey { role: &'static str, key: String },
    #[error("{role} lists key {0} twice", .id)]
    DuplicateKey { role: &'static str, id: KeyId },
    #[error("{role} has {count} keys (at most {MAX_KEYS_PER_ROLE})")]
    TooManyKeys { role: &'static str, count: usize },
    #[error("{role} threshold {threshold} is not between 1 and its {keys} key(s)")]
    BadThreshold {
        role: &'static str,
        threshold: usize,
        keys: usize,
    },
    #[error("revoked key id {0:?} is not 16 hex digits")]
    BadRevokedId(String),
    #[error("{role} key {id} is also revoked")]
    RevokedInRole { role: &'static str, id: KeyId },
    #[error("{0} revoked key ids (at most {MAX_REVOKED})")]
    TooManyRevoked(usize),
    #[error("{0} signatures (at most {MAX_SIGNATURES})")]
    TooManySignatures(usize),
    #[error("signature {index}: {problem}")]
    BadSignatureField { index: usize, problem: String },
}

impl Role {
    /// The keys, parsed; `role` names the role in errors.
    pub fn public_keys(&self, role: &'static str) -> Result<Vec<PublicKey>, ParseError> {
        if self.keys.len() > MAX_KEYS_PER_ROLE {
            return Err(ParseError::TooManyKeys {
                role,
                count: self.keys.len(),
            });
        }
        let mut keys: Vec<PublicKey> = Vec::with_capacity(self.keys.len());
        for text in &self.keys {
            let bad = || ParseError::BadKey {
                role,
                key: text.clone(),
            };
            let raw: [u8; 32] = hex::decode(text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            let key = PublicKey::from_raw(&raw).map_err(|_| bad())?;
            if keys.iter().any(|k| k.id() == key.id()) {
                return Err(ParseError::DuplicateKey { role, id: key.id() });
            }
            keys.push(key);
        }
        if self.threshold == 0 || self.threshold > keys.len() {
            return Err(ParseError::BadThreshold {
                role,
                threshold: self.threshold,
                keys: keys.len(),
            });
        }
        Ok(keys)
    }

    /// Each key parsed, in order: `None` for one that does not parse (which
    /// [`Role::public_keys`] refuses).
    pub(crate) fn each_key(&self) -> impl Iterator<Item = Option<PublicKey>> + '_ {
        self.keys.iter().map(|text| {
            let raw: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
            PublicKey::from_raw(&raw).ok()
        })
    }

    /// A role of `keys` (hex-encoded in the document).
    pub fn of(threshold: usize, keys: &[PublicKey]) -> Role {
        Role {
            threshold,
            keys: keys.iter().map(|k| hex::encode(k.raw())).collect(),
        }
    }
}

/// A key id from its 16 hex digits.
pub fn parse_key_id(text: &str) -> Option<KeyId> {
    let bytes: [u8; 8] = hex::decode(text).ok()?.try_into().ok()?;
    Some(KeyId(bytes))
}

impl Signed {
    /// The exact message every signature covers.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut message = SIGNING_DOMAIN.to_vec();
        // Serializing plain strings, numbers and vectors cannot fail.
        message.extend_from_slice(&serde_json::to_vec(self).unwrap_or_default());
        message
    }

    /// The revoked key ids, parsed.
    pub fn revoked_ids(&self) -> Result<Vec<KeyId>, ParseError> {
        if self.revoked.len() > MAX_REVOKED {
            return Err(ParseError::TooManyRevoked(self.revoked.len()));
        }
        self.revoked
            .iter()
            .map(|t| parse_key_id(t).ok_or_else(|| ParseError::BadRevokedId(t.clone())))
            .collect()
    }

    /// Every structural rule: the type, both roles' keys and thresholds, no revoked key in a role.
    pub fn check(&self) -> Result<(), ParseError> {
        if self.kind != DOCUMENT_TYPE {
            return Err(ParseError::WrongType(self.kind.clone()));
        }
        let revoked = self.revoked_ids()?;
        for (role, keys) in [
            ("root", self.root.public_keys("root")?),
            ("release", self.release.public_keys("release")?),
        ] {
            if let Some(key) = keys.iter().find(|k| revoked.contains(&k.id())) {
                return Err(ParseError::RevokedInRole { role, id: key.id() });
            }
        }
        Ok(())
    }
}

impl Document {
    /// Parses and checks a document's structure (not its signatures: see `rules`).
    pub fn parse(bytes: &[u8]) -> Result<Document, ParseError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(ParseError::TooLarge(bytes.len()));
        }
        let document: Document =
            serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
        document.signed.check()?;
        if document.signatures.len() > MAX_SIGNATURES {
            return Err(ParseError::TooManySignatures(document.signatures.len()));
        }
        for (index, signature) in document.signatures.iter().enumerate() {
            signature
                .parse()
                .map_err(|problem| ParseError::BadSignatureField { index, problem })?;
        }
        Ok(document)
    }

    /// The document as a file: pretty JSON, a newline at the end.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// An unsigned document (signatures are added by [`Document::add_signature`]).
    pub fn unsigned(signed: Signed) -> Document {
        Document {
            signed,
            signatures: Vec::new(),
        }
    }

    /// Adds (or replaces) the signature of the key `key_id`.
    pub fn add_signature(&mut self, key_id: KeyId, signature: &[u8; 64]) {
        let key_id = key_id.to_string();
        self.signatures.retain(|s| s.key_id != key_id);
        self.signatures.push(Signature {
            key_id,
            sig: hex::encode(signature),
        });
    }
}

impl Signature {
    /// The key id and the signature bytes.
    pub fn parse(&self) -> Result<(KeyId, [u8; 64]), String> {
        let id = parse_key_id(&self.key_id)
            .ok_or_else(|| format!("key-id {:?} is not 16 hex digits", self.key_id))?;
        let sig: [u8; 64] = hex::decode(&self.sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| "sig is not 128 hex digits".to_string())?;
        Ok((id, sig))
    }
}
