//! The keyring and the signature threshold.

use crate::{Error, PublicKey};
use rustupdate_format::{Head, KeyId, SignatureEntry, signing_message};

/// The public keys a device (or a verifying release engineer) trusts.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<PublicKey>,
    /// Ids of keys a trust document revoked: never trusted, named when they are all that signed.
    revoked: Vec<KeyId>,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds a key; adding the same key twice has no effect (it still counts once).
    pub fn add(&mut self, key: PublicKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Marks `id` revoked: its signatures never count, and a rejection names it.
    pub fn revoke(&mut self, id: KeyId) {
        self.keys.retain(|k| k.id() != id);
        if !self.revoked.contains(&id) {
            self.revoked.push(id);
        }
    }

    pub fn revoked(&self) -> &[KeyId] {
        &self.revoked
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// How many distinct trusted keys must have signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignaturePolicy {
    threshold: usize,
}

impl SignaturePolicy {
    /// At least `threshold` (>= 1) distinct trusted keys.
    pub fn threshold(threshold: usize) -> Result<SignaturePolicy, Error> {
        if threshold == 0 {
            return Err(Error::Key(
                "a signature threshold of 0 would accept unsigned artifacts".into(),
            ));
        }
        Ok(SignaturePolicy { threshold })
    }

    /// Accepts artifacts without any trusted signature. Only for `--danger-…` flags.
    pub fn dangerous_accept_unsigned() -> SignaturePolicy {
        SignaturePolicy { threshold: 0 }
    }

    pub fn required(&self) -> usize {
        self.threshold
    }
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        SignaturePolicy { threshold: 1 }
    }
}

/// Checks the head's signatures against the keyring and policy. Returns the ids of the distinct
/// trusted keys whose signatures verified. Signatures by unknown keys are ignored; a signature that
/// claims a trusted key but does not verify is an error (the artifact was altered).
pub fn check_signatures(
    head: &Head,
    keyring: &Keyring,
    policy: &SignaturePolicy,
) -> Result<Vec<KeyId>, Error> {
    check_manifest_signatures(&head.manifest_bytes, &head.signatures, keyring, policy)
}

/// [`check_signatures`] on the raw manifest bytes, before the manifest is parsed.
pub fn check_manifest_signatures(
    manifest_bytes: &[u8],
    signatures: &[SignatureEntry],
    keyring: &Keyring,
    policy: &SignaturePolicy,
) -> Result<Vec<KeyId>, Error> {
    let message = signing_message(manifest_bytes);
    let mut signed_by: Vec<&PublicKey> = Vec::new();
    for entry in signatures {
        let candidates: Vec<&PublicKey> = keyring
            .keys()
            .iter()
            .filter(|k| k.id() == entry.key_id)
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let Some(key) = candidates
            .into_iter()
            .find(|k| k.verify(&message, &entry.signature))
        else {
            return Err(Error::BadSignature {
                key_id: entry.key_id,
            });
        };
        // The same key signing twice counts once toward the threshold.
        if !signed_by.contains(&key) {
            signed_by.push(key);
        }
    }
    if signed_by.len() < policy.required() {
        let mut revoked: Vec<KeyId> = signatures
            .iter()
            .map(|s| s.key_id)
            .filter(|id| keyring.revoked.contains(id))
            .collect();
        revoked.dedup();
        if !revoked.is_empty() {
            return Err(Error::RevokedSigners {
                revoked,
                valid: signed_by.len(),
                required: policy.required(),
            });
        }
        return Err(Error::NotEnoughSignatures {
            valid: signed_by.len(),
            required: policy.required(),
            present: signatures.len(),
        });
    }
    Ok(signed_by.iter().map(|k| k.id()).collect())
}
