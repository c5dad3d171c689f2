//! The content key, wrapped for each recipient with HPKE single-shot base mode.

use crate::keys::key_id_text;
use crate::{RecipientPublicKey, RecipientSecretKey, SealError};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::RngCore;
use rustupdate_format::encryption::{Encryption, HexBytes, Recipient, SCHEME};
use zeroize::Zeroizing;

/// HPKE's `info`: binds a wrapped key to this use.
const INFO: &[u8] = b"rustupdate-content-key-v1";

/// The key every sealed part of one artifact derives from.
#[derive(Clone)]
pub struct ContentKey(pub(crate) Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

impl ContentKey {
    /// A fresh key from the operating system's randomness: one per artifact.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand_core::OsRng.fill_bytes(&mut key[..]);
        ContentKey(key)
    }
}

/// `[encryption]` for `recipients`: the content key wrapped for each (the key id is HPKE's
/// associated data, so a stanza cannot be passed off as another key's).
pub fn wrap(key: &ContentKey, recipients: &[RecipientPublicKey]) -> Result<Encryption, SealError> {
    let mut out = Vec::with_capacity(recipients.len());
    for public in recipients {
        let id = public.key_id();
        let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(public.as_bytes())
            .map_err(|err| SealError::Seal(format!("recipient {}: {err}", key_id_text(&id))))?;
        let (encapped, sealed) =
            hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
                &OpModeS::Base,
                &pk,
                INFO,
                &key.0[..],
                &id,
                &mut rand_core::OsRng,
            )
            .map_err(|err| SealError::Seal(format!("recipient {}: {err}", key_id_text(&id))))?;
        let mut encapsulated_key = [0u8; 32];
        encapsulated_key.copy_from_slice(&encapped.to_bytes());
        let wrapped_key: [u8; 48] = sealed
            .try_into()
            .map_err(|_| SealError::Seal("HPKE sealed 32 bytes to other than 48".into()))?;
        out.push(Recipient {
            key_id: HexBytes(id),
            encapsulated_key: HexBytes(encapsulated_key),
            wrapped_key: HexBytes(wrapped_key),
        });
    }
    Ok(Encryption {
        scheme: SCHEME.to_string(),
        recipients: out,
    })
}

/// The content key of an artifact encrypted to `secret`'s public key.
pub fn unwrap(
    encryption: &Encryption,
    secret: &RecipientSecretKey,
) -> Result<ContentKey, SealError> {
    let id = secret.public().key_id();
    let Some(recipient) = encryption.recipients.iter().find(|r| r.key_id.0 == id) else {
        return Err(SealError::NotARecipient {
            ours: key_id_text(&id),
            recipients: encryption
                .recipients
                .iter()
                .map(|r| r.key_id.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let failed = || SealError::Unwrap {
        key_id: key_id_text(&id),
    };
    let encapped =
        <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&recipient.encapsulated_key.0)
            .map_err(|_| failed())?;
    let opened = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &secret.hpke(),
            &encapped,
            INFO,
            &recipient.wrapped_key.0,
            &id,
        )
        .map_err(|_| failed())?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if opened.len() != 32 {
        return Err(failed());
    }
    key.copy_from_slice(&opened);
    Ok(ContentKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipient_and_only_they_unwrap_the_key() {
        let (a, b, c) = (
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
        );
        let key = ContentKey::generate();
        let enc = wrap(&key, &[a.public(), b.public()]).unwrap();
        for secret in [&a, &b] {
            assert_eq!(*unwrap(&enc, secret).unwrap().0, *key.0);
        }
        let err = unwrap(&enc, &c).unwrap_err().to_string();
        assert!(err.contains("is not one of them"), "{err}");
        // A wrapped key altered, or one stanza's key id put on another's: does not open.
        let mut altered = enc.clone();
        altered.recipients[0].wrapped_key.0[5] ^= 1;
        assert!(matches!(
            unwrap(&altered, &a),
            Err(SealError::Unwrap { .. })
        ));
        let mut swapped = enc.clone();
        swapped.recipients[0].key_id = enc.recipients[1].key_id;
        swapped.recipients[1].key_id = enc.recipients[0].key_id;
        assert!(matches!(
            unwrap(&swapped, &a),
            Err(SealError::Unwrap { .. })
        ));
    }
}
