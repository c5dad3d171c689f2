//! Documents and keys on disk for the `trust` commands: parse on read, parse back before an
//! atomic write.

use crate::files;
use anyhow::{Context, Result};
use rustupdate_trust::Document;
use rustupdate_verify::PublicKey;
use std::path::{Path, PathBuf};

/// Reads and parses a document (every structural rule checked).
pub fn read_document(path: &Path) -> Result<Document> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Document::parse(&bytes).with_context(|| format!("trust document {}", path.display()))
}

/// Writes `document` to `path` at once (temporary file, fsync, rename): a power cut leaves the
/// old or the new document, never a torn one. What is written is parsed back first, so the tool
/// never writes a file it would refuse to read (e.g. one signature too many).
pub fn write_document(path: &Path, document: &Document) -> Result<()> {
    let bytes = document.to_bytes();
    Document::parse(&bytes).with_context(|| format!("not writing {}", path.display()))?;
    let mut out = files::temp_next_to(path)?;
    std::io::Write::write_all(&mut out, &bytes)?;
    files::persist(out, path)
}

pub fn read_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>> {
    paths.iter().map(|p| files::read_public_key(p)).collect()
}

/// Key ids joined for people.
pub fn id_list<T: ToString>(ids: impl IntoIterator<Item = T>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    if ids.is_empty() {
        "(none)".to_string()
    } else {
        ids.join(", ")
    }
}
