//! Uploaded artifacts on disk: streamed into a temporary file while sha256, sha1 and md5 are
//! computed, verified (a `.rua` against the server's trusted keys, every chunk and the whole image,
//! exactly as a device would), then renamed to `artifacts/<sha256>`: content-addressed, so the same
//! upload twice is one file, and a file's name is its integrity check.

use crate::store::NewArtifact;
use anyhow::{Context, Result};
use md5::Md5;
use rustupdate_verify::{Keyring, SignaturePolicy, VerifiedArtifact};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

/// Digests of an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub size: u64,
}

/// A file being received: bytes are hashed as they are written.
#[derive(Debug)]
pub struct Upload {
    file: tempfile::NamedTempFile,
    sha256: Sha256,
    sha1: Sha1,
    md5: Md5,
    size: u64,
    limit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than the limit of {limit} bytes (max-upload-bytes)")]
    TooLarge { limit: u64 },
    #[error("writing the upload: {0}")]
    Io(#[from] std::io::Error),
}

impl Upload {
    pub fn new(dir: &Path, limit: u64) -> Result<Upload> {
        let file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        Ok(Upload {
            file,
            sha256: Sha256::new(),
            sha1: Sha1::new(),
            md5: Md5::new(),
            size: 0,
            limit,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        self.size += bytes.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        self.sha256.update(bytes);
        self.sha1.update(bytes);
        self.md5.update(bytes);
        self.file.write_all(bytes)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<(tempfile::NamedTempFile, Digests)> {
        self.file.flush()?;
        self.file.as_file().sync_all()?;
        let digests = Digests {
            sha256: hex::encode(self.sha256.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
            size: self.size,
        };
        Ok((self.file, digests))
    }
}

/// What the operator says about an artifact the server cannot read (another updater's format).
#[derive(Debug, Clone)]
pub struct ForeignMeta {
    pub name: String,
    pub version: String,
    pub device_types: Vec<String>,
    pub filename: String,
}

/// Checks a `.rua` completely (signatures against `keyring`, every chunk, the whole image) and
/// takes its metadata from the signed manifest. Blocking: run it off the async executor.
/// The outer error is the server's (cannot read its own file), the inner one the artifact's.
pub fn verify_rua(
    path: &Path,
    keyring: &Keyring,
    digests: &Digests,
) -> Result<Result<NewArtifact, rustupdate_verify::Error>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("reopening upload {}", path.display()))?;
    Ok(check_rua(file, keyring, digests))
}

fn check_rua(
    file: std::fs::File,
    keyring: &Keyring,
    digests: &Digests,
) -> Result<NewArtifact, rustupdate_verify::Error> {
    let policy = SignaturePolicy::threshold(1)?;
    let mut artifact =
        VerifiedArtifact::open(BufReader::with_capacity(1 << 20, file), keyring, &policy)?;
    let manifest = artifact.manifest().clone();
    let signers = artifact.signers().iter().map(|k| k.to_string()).collect();
    if artifact.head().is_encrypted() {
        // The server holds no recipient key: it checks every sealed byte against the signed
        // digests (docs/encryption.md); devices check the contents.
        rustupdate_verify::check_sealed_body(artifact)?;
    } else {
        while let Some(mut payload) = artifact.next_payload()? {
            while payload.next_chunk()?.is_some() {}
        }
        artifact.finish()?;
    }
    Ok(NewArtifact {
        id: 0,
        sha256: digests.sha256.clone(),
        sha1: digests.sha1.clone(),
        md5: digests.md5.clone(),
        size: digests.size as i64,
        filename: format!("{}-{}.rua", manifest.name, manifest.version),
        name: manifest.name,
        version: manifest.version,
        device_types: manifest.compatible,
        security_version: manifest.security_version.map(|v| v as i64),
        kind: "rua".into(),
        signers,
        created_at: 0,
        image_sha256: manifest.payloads.first().map(|p| p.sha256.to_string()),
    })
}

pub fn foreign(meta: ForeignMeta, digests: &Digests) -> NewArtifact {
    NewArtifact {
        id: 0,
        sha256: digests.sha256.clone(),
        sha1: digests.sha1.clone(),
        md5: digests.md5.clone(),
        size: digests.size as i64,
        filename: meta.filename,
        name: meta.name,
        version: meta.version,
        device_types: meta.device_types,
        security_version: None,
        kind: "foreign".into(),
        signers: Vec::new(),
        created_at: 0,
        image_sha256: None,
    }
}

/// Moves the verified upload to its content address (atomic rename, then the directory fsync so
/// the name survives a power cut before the database row that points to it is written).
pub fn keep(file: tempfile::NamedTempFile, dir: &Path, sha256: &str) -> Result<PathBuf> {
    let target = dir.join(sha256);
    file.persist(&target)
        .with_context(|| format!("storing artifact {}", target.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(target)
}

/// A file name a device may be given: no path separators, no leading dot, printable ASCII.
pub fn valid_filename(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_as_it_writes_and_enforces_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut up = Upload::new(dir.path(), 5).unwrap();
        up.write(b"abc").unwrap();
        let (_, d) = up.finish().unwrap();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        let mut up = Upload::new(dir.path(), 5).unwrap();
        up.write(b"abc").unwrap();
        assert!(matches!(
            up.write(b"def"),
            Err(UploadError::TooLarge { limit: 5 })
        ));
    }

    #[test]
    fn file_names_cannot_escape() {
        assert!(valid_filename("image-1.0.swu"));
        for bad in ["", "../x", "a/b", ".hidden", "a b", "é"] {
            assert!(!valid_filename(bad), "{bad}");
        }
    }
}
