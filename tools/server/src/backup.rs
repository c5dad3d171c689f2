//! `rustupdate-server backup --to DIR`: a consistent copy of a running (or stopped) server's
//! SQLite data directory, from which a server starts as it was: `DIR/fleet.db`, the tokens, the
//! trusted keys and every artifact file.
//!
//! Online and consistent: the database is copied by SQLite's `VACUUM INTO` inside one read
//! transaction (WAL lets the running server go on writing meanwhile), then the files are copied.
//! The order matters: an artifact's file is complete before its row is inserted, so every
//! artifact the copied database names has its file by then (a later upload may add a file the
//! copy does not name, which is harmless).
//!
//! PostgreSQL: back up with PostgreSQL's own tools (`pg_dump`, or continuous archiving); this
//! command refuses, and `docs/server.md` says what else to copy.

use crate::config::Settings;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// What a backup copied.
#[derive(Debug, Default)]
pub struct Copied {
    pub database_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
}

pub async fn backup(settings: &Settings, to: &Path) -> Result<Copied> {
    if settings.database_url.starts_with("postgres") {
        bail!(
            "the database is PostgreSQL: back it up with pg_dump (docs/server.md, Backups); copy DATA_DIR's tokens, keys/ and artifacts/ beside it"
        );
    }
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!("{} exists and is not empty", to.display());
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let database = to.join("fleet.db");
    let store = Store::open(&settings.database_url).await?;
    store.copy_sqlite_into(&database).await?;
    let mut copied = Copied {
        database_bytes: std::fs::metadata(&database)?.len(),
        ..Copied::default()
    };
    for token in [settings.admin_token_path(), settings.gateway_token_path()] {
        if token.is_file() {
            copy_file(&token, &to.join(file_name(&token)?), &mut copied)?;
        }
    }
    for dir in [settings.keys_dir(), settings.artifacts_dir()] {
        if dir.is_dir() {
            copy_dir(&dir, &to.join(file_name(&dir)?), &mut copied)?;
        }
    }
    Ok(copied)
}

fn file_name(path: &Path) -> Result<&std::ffi::OsStr> {
    path.file_name()
        .with_context(|| format!("{} has no file name", path.display()))
}

/// Copies the regular files of `from` (not recursive: keys and artifacts are flat directories).
fn copy_dir(from: &Path, to: &Path, copied: &mut Copied) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            copy_file(&entry.path(), &to.join(entry.file_name()), copied)?;
        }
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path, copied: &mut Copied) -> Result<()> {
    let bytes = std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    // The tokens are secrets: the copy keeps the original's permissions (fs::copy does).
    copied.files += 1;
    copied.file_bytes += bytes;
    Ok(())
}
