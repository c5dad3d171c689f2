//! Who signs: a secret key file, or an external signer command (an HSM, a smart card, another
//! machine) with its public key. Used by `sign` (artifacts) and `trust sign` (trust documents);
//! the protocol is in `docs/artifact-tool.md` (External signers).

use crate::files;
use anyhow::{Context, Result, bail};
use rustupdate_verify::{PublicKey, SecretKey};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug)]
pub enum Signer {
    Key(SecretKey),
    External { public: PublicKey, command: String },
}

impl Signer {
    /// `--key`, or `--signer-cmd` with `--public-key`.
    pub fn from_args(
        key: Option<&Path>,
        command: Option<&str>,
        public: Option<&Path>,
    ) -> Result<Signer> {
        match (key, command, public) {
            (Some(key), None, None) => Ok(Signer::Key(files::read_secret_key(key)?)),
            (None, Some(command), Some(public)) => Ok(Signer::External {
                public: files::read_public_key(public)?,
                command: command.to_string(),
            }),
            _ => bail!("give either --key, or --signer-cmd with --public-key"),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            Signer::Key(secret) => secret.public_key(),
            Signer::External { public, .. } => public.clone(),
        }
    }

    /// The signature over `message`, checked against the public key before it is returned.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let signature = match self {
            Signer::Key(secret) => secret.sign(message),
            Signer::External { command, .. } => external_signature(command, message)?,
        };
        let public = self.public_key();
        if !public.verify(message, &signature) {
            bail!(
                "the signature does not verify with public key {}: wrong key or a broken signer",
                public.id()
            );
        }
        Ok(signature)
    }
}

/// Runs the signer with the message on stdin; accepts a raw 64-byte signature or 128 hex digits.
fn external_signature(command: &str, message: &[u8]) -> Result<[u8; 64]> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting signer command {command:?}"))?;
    let mut stdin = child.stdin.take().context("signer stdin")?;
    let message_owned = message.to_vec();
    // Write from a thread so that a signer that prints before reading everything cannot deadlock.
    let writer = std::thread::spawn(move || stdin.write_all(&message_owned));
    let output = child
        .wait_with_output()
        .with_context(|| format!("running signer command {command:?}"))?;
    let _ = writer.join();
    if !output.status.success() {
        bail!("signer command {command:?} failed with {}", output.status);
    }
    let out = output.stdout;
    let mut signature = [0u8; 64];
    if out.len() == 64 {
        signature.copy_from_slice(&out);
        return Ok(signature);
    }
    let text = String::from_utf8_lossy(&out);
    if hex::decode_to_slice(text.trim(), &mut signature).is_ok() {
        return Ok(signature);
    }
    bail!(
        "signer command {command:?} printed {} bytes; expected a raw 64-byte signature or 128 hex digits",
        out.len()
    )
}
