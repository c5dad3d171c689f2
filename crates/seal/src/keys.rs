//! X25519 recipient keys in the PEM files OpenSSL writes (`openssl genpkey -algorithm x25519`):
//! PKCS#8 for the secret key, SubjectPublicKeyInfo for the public one, algorithm id
//! 1.3.101.110 (RFC 8410).

use crate::SealError;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, Serializable};
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode, pem};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// RFC 8410's object identifier of X25519.
const X25519_OID: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.110");
/// DER of a SubjectPublicKeyInfo of X25519, up to the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];
/// DER of a PKCS#8 v1 PrivateKeyInfo of X25519, up to the 32 key bytes.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// A recipient's public X25519 key: what `build --encrypt-to` takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecipientPublicKey([u8; 32]);

/// A recipient's secret X25519 key: what a device holds to open artifacts encrypted to it.
pub struct RecipientSecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecipientPublicKey({})", key_id_text(&self.key_id()))
    }
}

impl std::fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecipientSecretKey({})",
            key_id_text(&self.public().key_id())
        )
    }
}

/// A key id as messages and the manifest write it: 16 lowercase hex digits.
pub fn key_id_text(id: &[u8; 8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl RecipientPublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecipientPublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes of sha256 of the raw key, as for signing keys.
    pub fn key_id(&self) -> [u8; 8] {
        let digest = Sha256::digest(self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        id
    }

    pub fn from_pem(text: &str) -> Result<Self, SealError> {
        let (label, der) = pem::decode_vec(text.as_bytes())
            .map_err(|err| SealError::KeyFile(format!("not a PEM file: {err}")))?;
        if label != "PUBLIC KEY" {
            return Err(SealError::KeyFile(format!(
                "expected an X25519 PUBLIC KEY, found {label}"
            )));
        }
        let info = pkcs8::spki::SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|err| SealError::KeyFile(format!("not a public key: {err}")))?;
        if info.algorithm.oid != X25519_OID {
            return Err(SealError::KeyFile(format!(
                "the public key is {} , not X25519 (1.3.101.110)",
                info.algorithm.oid
            )));
        }
        let raw: [u8; 32] = info
            .subject_public_key
            .raw_bytes()
            .try_into()
            .map_err(|_| SealError::KeyFile("an X25519 public key has 32 bytes".into()))?;
        Ok(RecipientPublicKey(raw))
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem::encode_string("PUBLIC KEY", LineEnding::LF, &der).unwrap_or_default()
    }
}

impl RecipientSecretKey {
    /// The key of 32 given bytes (a key from elsewhere, or a test's fixed key).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecipientSecretKey(Zeroizing::new(bytes))
    }

    /// A new key from the operating system's randomness.
    pub fn generate() -> Self {
        let (secret, _) = X25519HkdfSha256::gen_keypair(&mut rand_core::OsRng);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&secret.to_bytes());
        RecipientSecretKey(bytes)
    }

    pub fn public(&self) -> RecipientPublicKey {
        let public = X25519HkdfSha256::sk_to_pk(&self.hpke());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        RecipientPublicKey(bytes)
    }

    pub(crate) fn hpke(&self) -> <X25519HkdfSha256 as Kem>::PrivateKey {
        // 32 bytes always make an X25519 secret key (it is clamped when used).
        <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&self.0[..])
            .unwrap_or_else(|_| unreachable!("32 bytes are an X25519 secret key"))
    }

    pub fn from_pem(text: &str) -> Result<Self, SealError> {
        let (label, der) = pem::decode_vec(text.as_bytes())
            .map_err(|err| SealError::KeyFile(format!("not a PEM file: {err}")))?;
        let der = Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(SealError::KeyFile(format!(
                "expected an X25519 PRIVATE KEY, found {label}"
            )));
        }
        let info = pkcs8::PrivateKeyInfo::from_der(&der)
            .map_err(|err| SealError::KeyFile(format!("not a PKCS#8 private key: {err}")))?;
        if info.algorithm.oid != X25519_OID {
            return Err(SealError::KeyFile(format!(
                "the private key is {}, not X25519 (1.3.101.110)",
                info.algorithm.oid
            )));
        }
        // RFC 8410: the key is an OCTET STRING inside the OCTET STRING.
        match info.private_key {
            [0x04, 0x20, rest @ ..] if rest.len() == 32 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                bytes.copy_from_slice(rest);
                Ok(RecipientSecretKey(bytes))
            }
            _ => Err(SealError::KeyFile(
                "an X25519 private key holds 32 bytes".into(),
            )),
        }
    }

    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut der = Zeroizing::new(PKCS8_PREFIX.to_vec());
        der.extend_from_slice(&self.0[..]);
        Zeroizing::new(pem::encode_string("PRIVATE KEY", LineEnding::LF, &der).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_wrong_keys_are_named() {
        let secret = RecipientSecretKey::generate();
        let again = RecipientSecretKey::from_pem(&secret.to_pem()).unwrap();
        assert_eq!(again.public(), secret.public());
        let public = RecipientPublicKey::from_pem(&secret.public().to_pem()).unwrap();
        assert_eq!(public, secret.public());
        assert!(
            RecipientPublicKey::from_pem(&secret.to_pem())
                .unwrap_err()
                .to_string()
                .contains("PRIVATE KEY")
        );
        // An ed25519 signing key (1.3.101.112) is not a recipient key.
        let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let err = RecipientPublicKey::from_pem(ed25519)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not X25519"), "{err}");
    }
}
