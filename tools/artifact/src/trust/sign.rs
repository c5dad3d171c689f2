//! `trust sign`: root signatures over the document's signing message. Every signer is checked
//! to be a root key (of the document, or of `--previous` for a root rotation) before the first
//! signature is made, and every signature is verified before it is added.

use super::files::{read_document, write_document};
use crate::EXIT_OK;
use crate::cli::TrustSignArgs;
use crate::signer::Signer;
use anyhow::{Result, bail};

pub fn run(args: &TrustSignArgs) -> Result<u8> {
    let mut document = read_document(&args.file)?;
    let previous = args.previous.as_deref().map(read_document).transpose()?;
    let signers = if args.keys.is_empty() {
        vec![Signer::from_args(
            None,
            args.signer_cmd.as_deref(),
            args.public_key.as_deref(),
        )?]
    } else {
        args.keys
            .iter()
            .map(|key| Signer::from_args(Some(key), None, None))
            .collect::<Result<Vec<_>>>()?
    };
    // Plan: every signer must be a root key somewhere, before anything is signed.
    let mut roles = Vec::with_capacity(signers.len());
    for signer in &signers {
        let id = signer.public_key().id();
        let here = document.signed.has_root_key(id);
        let before = previous.as_ref().is_some_and(|p| p.signed.has_root_key(id));
        roles.push(match (here, before) {
            (true, true) => "root key of this and the previous document",
            (true, false) => "root key",
            (false, true) => "root key of the previous document",
            (false, false) => bail!(
                "key {id} is not a root key of {}{}; only root keys sign trust documents",
                args.file.display(),
                match &args.previous {
                    Some(p) => format!(" nor of {}", p.display()),
                    None => " (for a root rotation, give the old document with --previous)".into(),
                }
            ),
        });
    }
    let message = document.signed.signing_message();
    for signer in &signers {
        let signature = signer.sign(&message)?;
        document.add_signature(signer.public_key().id(), &signature);
    }
    write_document(&args.file, &document)?;
    for (signer, role) in signers.iter().zip(roles) {
        println!(
            "{}: signed by {} ({role})",
            args.file.display(),
            signer.public_key().id()
        );
    }
    println!(
        "{}: version {}, {} signature(s); check with `rustupdate-artifact trust inspect`",
        args.file.display(),
        document.signed.version,
        document.signatures.len()
    );
    Ok(EXIT_OK)
}
