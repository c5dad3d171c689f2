//! Encrypted artifacts: opening one with a recipient key ([`VerifiedArtifact::unlock`]), and
//! what anyone can check of one without a recipient key: the signatures (by
//! [`VerifiedArtifact::open`](crate::VerifiedArtifact::open)), and every stored byte of the body
//! against the signed manifest: each sealed table's `table-sha256`, each sealed frame's
//! `data-sha256`, and the artifact's length. A host tool, a release pipeline or the fleet server
//! can so vouch for an artifact whose contents it cannot read (docs/encryption.md).

use crate::{Error, VerifiedArtifact};
use rustupdate_format::read_exact_or;
use rustupdate_seal::RecipientSecretKey;
use sha2::{Digest, Sha256};
use std::io::Read;

impl<R: Read> VerifiedArtifact<R> {
    /// An encrypted artifact: opens its content key with the device's recipient key, before any
    /// byte of the body is read (a device that is not a recipient, or has no key, is refused
    /// here with the reason). A clear artifact needs no key and ignores it.
    pub fn unlock(&mut self, secret: Option<&RecipientSecretKey>) -> Result<(), Error> {
        let Some(sealing) = &self.head.manifest.encryption else {
            return Ok(());
        };
        let Some(secret) = secret else {
            return Err(Error::NoDecryptionKey {
                recipients: sealing
                    .recipients
                    .iter()
                    .map(|r| r.key_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        self.content_key = Some(rustupdate_seal::unwrap(sealing, secret)?);
        Ok(())
    }

    /// The content key [`VerifiedArtifact::unlock`] opened (an encrypted artifact's): what a
    /// release pipeline seals the artifact's delta patches with.
    pub fn content_key(&self) -> Option<&rustupdate_seal::ContentKey> {
        self.content_key.as_ref()
    }

    /// An encrypted artifact's body is read only once [`VerifiedArtifact::unlock`] succeeded.
    pub(crate) fn check_unlocked(&mut self) -> Result<(), Error> {
        if self.head.is_encrypted() && self.content_key.is_none() {
            self.unlock(None)?;
        }
        Ok(())
    }
}

/// Reads the whole body of an encrypted artifact (opened, not unlocked) and checks every
/// sealed part's digest. Returns the stored body bytes checked.
pub fn check_sealed_body<R: Read>(artifact: VerifiedArtifact<R>) -> Result<u64, Error> {
    let (head, mut reader) = artifact.into_parts();
    if !head.is_encrypted() {
        return Err(Error::Key(
            "the artifact is not encrypted: verify its contents instead".into(),
        ));
    }
    let layout = head.layout();
    let mut checked = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    for payload in &head.manifest.payloads {
        for (index, segment) in payload.segments.iter().enumerate() {
            let mut table = vec![0u8; segment.stored_table_len(layout, true) as usize];
            read_exact_or(&mut reader, &mut table, "chunk table")?;
            if Sha256::digest(&table)[..] != segment.table_sha256.0[..] {
                return Err(Error::SegmentHashMismatch {
                    payload: payload.name.clone(),
                    segment: index,
                });
            }
            let mut digest = Sha256::new();
            let mut left = segment.data_size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                read_exact_or(&mut reader, &mut buf[..n], "payload data")?;
                digest.update(&buf[..n]);
                left -= n as u64;
            }
            if segment.data_size > 0
                && segment.data_sha256.map(|d| d.0) != Some(digest.finalize().into())
            {
                return Err(rustupdate_seal::SealError::FrameDigest {
                    segment: index as u32,
                }
                .into());
            }
            checked += table.len() as u64 + segment.data_size;
        }
    }
    let mut probe = [0u8; 1];
    if read_exact_or(&mut reader, &mut probe, "end of artifact").is_ok() {
        return Err(Error::TrailingData);
    }
    Ok(checked)
}
