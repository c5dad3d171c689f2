//! File helpers: atomic replacement and key loading with paths in every error.

use anyhow::{Context, Result};
use rustupdate_verify::{Keyring, PublicKey, SecretKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Creates a temporary file next to `target`; `persist` it to make it appear at once.
pub fn temp_next_to(target: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".rustupdate-artifact-")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Flushes, fsyncs and renames the temporary file onto `target`.
pub fn persist(mut file: tempfile::NamedTempFile, target: &Path) -> Result<()> {
    file.flush()?;
    file.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", target.display()))?;
    file.persist(target)
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}

pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading secret key {}", path.display()))?;
    SecretKey::from_pem(&text).with_context(|| format!("secret key {}", path.display()))
}

/// An X25519 recipient public key (`build --encrypt-to`).
pub fn read_recipient_key(path: &Path) -> Result<rustupdate_seal::RecipientPublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading recipient key {}", path.display()))?;
    rustupdate_seal::RecipientPublicKey::from_pem(&text)
        .with_context(|| format!("recipient key {}", path.display()))
}

/// An X25519 recipient secret key (`verify --decryption-key`).
pub fn read_decryption_key(path: &Path) -> Result<rustupdate_seal::RecipientSecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading decryption key {}", path.display()))?;
    rustupdate_seal::RecipientSecretKey::from_pem(&text)
        .with_context(|| format!("decryption key {}", path.display()))
}

pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    Ok(rustupdate_verify::key_files::read_public_key(path)?)
}

/// Keys from explicit files plus every `*.pem` in `dir`.
pub fn keyring(files: &[PathBuf], dir: Option<&Path>) -> Result<Keyring> {
    Ok(rustupdate_verify::key_files::keyring(files, dir)?)
}
