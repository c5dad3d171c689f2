//! Reading public keys from files (feature `fs`): one PEM file, or every `*.pem` of a directory.
//! The only file access in this crate, kept behind a feature so the verifying reader stays pure;
//! the device client, the host tool and the fleet server all load their keyrings through it.

use crate::{Keyring, PublicKey};
use std::path::{Path, PathBuf};

/// A key file that could not be used, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("public key {}: {source}", path.display())]
    Parse { path: PathBuf, source: crate::Error },
}

/// The public key in a PEM file.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    PublicKey::from_pem(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Every `*.pem` file in `dir`, sorted by name.
pub fn pem_files(dir: &Path) -> Result<Vec<PathBuf>, KeyFileError> {
    let entries = std::fs::read_dir(dir).map_err(|source| KeyFileError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The keys of `files`, then of every `*.pem` in `dir` (if given).
pub fn keyring(files: &[PathBuf], dir: Option<&Path>) -> Result<Keyring, KeyFileError> {
    let mut ring = Keyring::new();
    let from_dir = match dir {
        Some(dir) => pem_files(dir)?,
        None => Vec::new(),
    };
    for path in files.iter().chain(&from_dir) {
        ring.add(read_public_key(path)?);
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_files_and_a_directory_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!("rustupdate-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = |seed: u8| rustupdate_testkit::key(seed).public_key().to_pem().unwrap();
        std::fs::write(dir.join("a.pem"), pem(1)).unwrap();
        std::fs::write(dir.join("b.pem"), pem(2)).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a key").unwrap();
        let extra = dir.join("extra.key");
        std::fs::write(&extra, pem(3)).unwrap();
        let ring = keyring(&[extra], Some(&dir)).unwrap();
        assert_eq!(ring.keys().len(), 3);
        std::fs::write(dir.join("c.pem"), "garbage").unwrap();
        let err = keyring(&[], Some(&dir)).unwrap_err();
        assert!(err.to_string().contains("c.pem"), "{err}");
        let missing = keyring(&[], Some(&dir.join("missing"))).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
