//! `sign`: add a signature to an existing artifact. Only the head is rewritten; the body is copied
//! as is, so nothing is rebuilt or recompressed.

use crate::{EXIT_OK, cli::SignArgs, files};
use anyhow::{Context, Result, bail};
use rustupdate_format::{Head, Header, SignatureEntry, limits, read_head, signing_message};
use std::io::{BufReader, BufWriter, Write};
use std::process::{Command, Stdio};

pub fn run(args: &SignArgs) -> Result<u8> {
    let input = std::fs::File::open(&args.artifact)
        .with_context(|| format!("opening {}", args.artifact.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut head =
        read_head(&mut reader).with_context(|| format!("reading {}", args.artifact.display()))?;
    let message = signing_message(&head.manifest_bytes);

    let (public, signature) = match (&args.key, &args.signer_cmd, &args.public_key) {
        (Some(key), None, None) => {
            let secret = files::read_secret_key(key)?;
            (secret.public_key(), secret.sign(&message))
        }
        (None, Some(command), Some(public)) => {
            let public = files::read_public_key(public)?;
            (public, external_signature(command, &message)?)
        }
        _ => bail!("give either --key, or --signer-cmd with --public-key"),
    };
    if !public.verify(&message, &signature) {
        bail!(
            "the signature does not verify with public key {}: wrong key or a broken signer",
            public.id()
        );
    }
    if head.signatures.iter().any(|s| s.key_id == public.id()) {
        bail!("the artifact is already signed by key {}", public.id());
    }
    if head.signatures.len() >= limits::MAX_SIGNATURES {
        bail!(
            "the artifact already carries the maximum of {} signatures",
            limits::MAX_SIGNATURES
        );
    }
    head.signatures.push(SignatureEntry {
        key_id: public.id(),
        signature,
    });
    head = Head {
        header: Header::new(
            head.header.format_version,
            head.manifest_bytes.len(),
            head.signatures.len(),
        )?,
        ..head
    };

    let target = args.output.clone().unwrap_or_else(|| args.artifact.clone());
    let out = files::temp_next_to(&target)?;
    {
        let mut writer = BufWriter::with_capacity(1 << 20, out.as_file());
        writer.write_all(&head.to_bytes()?)?;
        std::io::copy(&mut reader, &mut writer)?;
        writer.flush()?;
    }
    files::persist(out, &target)?;
    println!(
        "{}: signed by {} ({} signature(s))",
        target.display(),
        public.id(),
        head.signatures.len()
    );
    Ok(EXIT_OK)
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
