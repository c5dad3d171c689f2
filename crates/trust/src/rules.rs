//! When a device trusts a document, and what an artifact's signatures are worth under it.
//!
//! - The first document comes with the image: a threshold of the image's root keys (the anchor)
//!   signs it, and a threshold of its own root keys, if they differ.
//! - A newer document replaces the current one only with a higher version, signed by a threshold
//!   of the current root keys, and, when it changes the root keys, by a threshold of the new
//!   ones too (TUF's root rotation). Revoked keys count for nothing.
//! - A document kept on the device is trusted as it was accepted: signed by a threshold of its
//!   own root keys (a torn or altered copy fails and the device keeps its previous one).
//! - An artifact needs a threshold of distinct release keys; signed only by revoked or unknown
//!   keys, it is rejected with the revoked keys named.

use crate::document::{Document, ParseError, Role};
use rustupdate_verify::{KeyId, Keyring, PublicKey, SignaturePolicy};
use thiserror::Error;

/// Why a document or an artifact is not trusted.
#[derive(Debug, Error)]
pub enum TrustError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("the trust document is signed by {valid} of the {role} keys, {required} needed")]
    NotEnoughSignatures {
        role: &'static str,
        valid: usize,
        required: usize,
    },
    #[error("the signature of key {0} does not verify: the trust document was altered")]
    BadSignature(KeyId),
    #[error(
        "trust document version {offered} is not newer than the trusted version {trusted} \
         (a replay or a rollback)"
    )]
    NotNewer { trusted: u64, offered: u64 },
    #[error(transparent)]
    Release(#[from] rustupdate_verify::Error),
}

/// A document whose signatures were checked by one of the rules above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    document: Document,
    release: Vec<PublicKey>,
    revoked: Vec<KeyId>,
}

/// Counts the distinct keys of `role` (none revoked) that signed `document`; a signature that
/// names one of them but does not verify is an error.
fn count_signers(
    document: &Document,
    role: &Role,
    role_name: &'static str,
    revoked: &[KeyId],
) -> Result<usize, TrustError> {
    let keys = role.public_keys(role_name)?;
    let message = document.signed.signing_message();
    let mut signers: Vec<KeyId> = Vec::new();
    for (index, signature) in document.signatures.iter().enumerate() {
        let (id, sig) = signature
            .parse()
            .map_err(|problem| ParseError::BadSignatureField { index, problem })?;
        let Some(key) = keys.iter().find(|k| k.id() == id) else {
            continue;
        };
        if !key.verify(&message, &sig) {
            return Err(TrustError::BadSignature(id));
        }
        if !revoked.contains(&id) && !signers.contains(&id) {
            signers.push(id);
        }
    }
    if signers.len() < role.threshold {
        return Err(TrustError::NotEnoughSignatures {
            role: role_name,
            valid: signers.len(),
            required: role.threshold,
        });
    }
    Ok(signers.len())
}

impl Trusted {
    fn new(document: Document) -> Result<Trusted, TrustError> {
        let release = document.signed.release.public_keys("release")?;
        let revoked = document.signed.revoked_ids()?;
        Ok(Trusted {
            document,
            release,
            revoked,
        })
    }

    /// The image's document, checked against the image's root keys (`anchor`).
    pub fn from_image(anchor: &Role, document: Document) -> Result<Trusted, TrustError> {
        document.signed.check()?;
        let revoked = document.signed.revoked_ids()?;
        count_signers(&document, anchor, "image's root", &revoked)?;
        if document.signed.root != *anchor {
            count_signers(&document, &document.signed.root, "root", &revoked)?;
        }
        Trusted::new(document)
    }

    /// A document the device accepted before (its data partition's copy).
    pub fn kept(document: Document) -> Result<Trusted, TrustError> {
        document.signed.check()?;
        let revoked = document.signed.revoked_ids()?;
        count_signers(&document, &document.signed.root, "root", &revoked)?;
        Trusted::new(document)
    }

    /// The document that replaces this one, or why it does not.
    pub fn accept(&self, candidate: Document) -> Result<Trusted, TrustError> {
        candidate.signed.check()?;
        let (trusted, offered) = (self.version(), candidate.signed.version);
        if offered <= trusted {
            return Err(TrustError::NotNewer { trusted, offered });
        }
        // Keys this device already holds revoked count for nothing: a leaked root key cannot
        // sign its own way back. The candidate's own revocations take effect with it (as in
        // TUF, the old threshold that rotates a leaked key out may include that key).
        count_signers(
            &candidate,
            &self.document.signed.root,
            "current root",
            &self.revoked,
        )?;
        if candidate.signed.root != self.document.signed.root {
            let revoked = candidate.signed.revoked_ids()?;
            count_signers(&candidate, &candidate.signed.root, "new root", &revoked)?;
        }
        Trusted::new(candidate)
    }

    pub fn version(&self) -> u64 {
        self.document.signed.version
    }

    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The release keys (and the revoked ids, named when they are all that signed) and their
    /// threshold, for the artifact verifier.
    pub fn release_keyring(&self) -> (Keyring, SignaturePolicy) {
        let mut keyring = Keyring::new();
        for key in &self.release {
            keyring.add(key.clone());
        }
        for id in &self.revoked {
            keyring.revoke(*id);
        }
        // The threshold was checked against the keys when the document was parsed.
        let policy =
            SignaturePolicy::threshold(self.document.signed.release.threshold).unwrap_or_default();
        (keyring, policy)
    }

    pub fn revoked(&self) -> &[KeyId] {
        &self.revoked
    }
}

/// Checks an artifact's signatures (over `manifest_bytes`) against the release keys: the ids of
/// the keys that signed, or why that is not enough (revoked signers named).
pub fn release_check(
    trusted: &Trusted,
    manifest_bytes: &[u8],
    signatures: &[rustupdate_verify::SignatureEntry],
) -> Result<Vec<KeyId>, TrustError> {
    let (keyring, policy) = trusted.release_keyring();
    Ok(rustupdate_verify::check_manifest_signatures(
        manifest_bytes,
        signatures,
        &keyring,
        &policy,
    )?)
}
