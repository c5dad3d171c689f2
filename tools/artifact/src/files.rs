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

pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    PublicKey::from_pem(&text).with_context(|| format!("public key {}", path.display()))
}

/// Keys from explicit files plus every `*.pem` in `dir`.
pub fn keyring(files: &[PathBuf], dir: Option<&Path>) -> Result<Keyring> {
    let mut ring = Keyring::new();
    for path in files {
        ring.add(read_public_key(path)?);
    }
    if let Some(dir) = dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading key directory {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pem"))
            .collect();
        paths.sort();
        for path in paths {
            ring.add(read_public_key(&path)?);
        }
    }
    Ok(ring)
}
