//! `trust init` and the editing commands: each reads the document, has `rustupdate-trust` make
//! the next version (unsigned) or refuse with the rule it would break, and only then writes it.

use super::files::{read_document, read_public_keys, write_document};
use crate::EXIT_OK;
use crate::cli::{
    TrustEditTarget, TrustInitArgs, TrustKeysArgs, TrustRevokeArgs, TrustThresholdArgs,
};
use anyhow::{Context, Result, bail};
use rustupdate_trust::document::parse_key_id;
use rustupdate_trust::{Document, Edit, Role, Signed};

pub fn init(args: &TrustInitArgs) -> Result<u8> {
    if args.output.exists() && !args.force {
        bail!(
            "{} already exists; refusing to overwrite it (--force does)",
            args.output.display()
        );
    }
    let root = Role::of(args.root_threshold, &read_public_keys(&args.root_keys)?);
    let release = Role::of(
        args.release_threshold,
        &read_public_keys(&args.release_keys)?,
    );
    let signed = Signed::first(root, release).context("refusing to write the document")?;
    let document = Document::unsigned(signed);
    write_document(&args.output, &document)?;
    report(&args.output, &document);
    Ok(EXIT_OK)
}

pub fn add_key(args: &TrustKeysArgs) -> Result<u8> {
    let edit = Edit::AddKeys {
        root: read_public_keys(&args.root_keys)?,
        release: read_public_keys(&args.release_keys)?,
    };
    apply(&args.target, &edit)
}

pub fn remove_key(args: &TrustKeysArgs) -> Result<u8> {
    let ids =
        |paths| -> Result<Vec<_>> { Ok(read_public_keys(paths)?.iter().map(|k| k.id()).collect()) };
    let edit = Edit::RemoveKeys {
        root: ids(&args.root_keys)?,
        release: ids(&args.release_keys)?,
    };
    apply(&args.target, &edit)
}

pub fn revoke(args: &TrustRevokeArgs) -> Result<u8> {
    let mut ids: Vec<_> = read_public_keys(&args.keys)?
        .iter()
        .map(|k| k.id())
        .collect();
    for text in &args.key_ids {
        match parse_key_id(text) {
            Some(id) => ids.push(id),
            None => bail!("--key-id {text:?} is not a key id (16 hex digits)"),
        }
    }
    apply(&args.target, &Edit::Revoke(ids))
}

pub fn set_threshold(args: &TrustThresholdArgs) -> Result<u8> {
    let edit = Edit::SetThreshold {
        root: args.root,
        release: args.release,
    };
    apply(&args.target, &edit)
}

/// The file is written only when the edit is accepted: a refused edit leaves it as it was.
fn apply(target: &TrustEditTarget, edit: &Edit) -> Result<u8> {
    let document = read_document(&target.file)?;
    let edited = document
        .edited(edit, target.version)
        .with_context(|| format!("{} is unchanged", target.file.display()))?;
    write_document(&target.file, &edited)?;
    report(&target.file, &edited);
    Ok(EXIT_OK)
}

fn report(path: &std::path::Path, document: &Document) {
    println!(
        "{}: version {}, UNSIGNED (sign it with `rustupdate-artifact trust sign`)",
        path.display(),
        document.signed.version
    );
}
