//! ed25519 keys in PEM. Secret keys are PKCS#8 (`-----BEGIN PRIVATE KEY-----`), public keys are
//! SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), interchangeable with OpenSSL.

use crate::Error;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rustupdate_format::KeyId;

#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl PublicKey {
    pub fn from_pem(pem: &str) -> Result<PublicKey, Error> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|err| Error::Key(format!("not an ed25519 public key in PEM: {err}")))?;
        Ok(PublicKey { key })
    }

    pub fn from_raw(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|err| Error::Key(err.to_string()))?;
        Ok(PublicKey { key })
    }

    pub fn to_pem(&self) -> Result<String, Error> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|err| Error::Key(err.to_string()))
    }

    pub fn id(&self) -> KeyId {
        KeyId::of_public_key(self.key.as_bytes())
    }

    pub fn raw(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Strict verification (rejects small-order keys and malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &signature).is_ok()
    }
}

pub struct SecretKey {
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key().id())
    }
}

impl SecretKey {
    /// A key from 32 secret random bytes supplied by the caller (e.g. from `getrandom`).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey {
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn from_pem(pem: &str) -> Result<SecretKey, Error> {
        let key = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|err| {
            Error::Key(format!("not an ed25519 private key in PKCS#8 PEM: {err}"))
        })?;
        Ok(SecretKey { key })
    }

    /// PKCS#8 v1 PEM (seed only, as OpenSSL writes and reads it). The returned string holds the
    /// secret: write it with mode 0600.
    pub fn to_pem(&self) -> Result<String, Error> {
        let keypair = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        Ok(keypair
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| Error::Key(err.to_string()))?
            .to_string())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Encodes `manifest` and signs it with every key: the head of a new artifact (the body follows).
pub fn signed_head(
    manifest: rustupdate_format::Manifest,
    keys: &[&SecretKey],
) -> Result<rustupdate_format::Head, Error> {
    let manifest_bytes = manifest.to_bytes()?;
    let message = rustupdate_format::signing_message(&manifest_bytes);
    let signatures: Vec<rustupdate_format::SignatureEntry> = keys
        .iter()
        .map(|key| rustupdate_format::SignatureEntry {
            key_id: key.public_key().id(),
            signature: key.sign(&message),
        })
        .collect();
    let header = rustupdate_format::Header::new(
        manifest.format_version,
        manifest_bytes.len(),
        signatures.len(),
    )?;
    Ok(rustupdate_format::Head {
        header,
        manifest_bytes,
        manifest,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_signing() {
        let secret = SecretKey::from_seed(&[42; 32]);
        let pem = secret.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = SecretKey::from_pem(&pem).unwrap();
        let public = PublicKey::from_pem(&again.public_key().to_pem().unwrap()).unwrap();
        assert_eq!(public, secret.public_key());
        let sig = again.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
        assert!(SecretKey::from_pem(&public.to_pem().unwrap()).is_err());
    }
}
