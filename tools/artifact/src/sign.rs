//! `sign`: add a signature to an existing artifact. Only the head is rewritten; the body is copied
//! as is, so nothing is rebuilt or recompressed.

use crate::{EXIT_OK, cli::SignArgs, files, signer::Signer};
use anyhow::{Context, Result, bail};
use rustupdate_format::{Head, Header, SignatureEntry, limits, read_head, signing_message};
use std::io::{BufReader, BufWriter, Write};

pub fn run(args: &SignArgs) -> Result<u8> {
    let input = std::fs::File::open(&args.artifact)
        .with_context(|| format!("opening {}", args.artifact.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut head =
        read_head(&mut reader).with_context(|| format!("reading {}", args.artifact.display()))?;
    let message = signing_message(&head.manifest_bytes);

    let signer = Signer::from_args(
        args.key.as_deref(),
        args.signer_cmd.as_deref(),
        args.public_key.as_deref(),
    )?;
    let public = signer.public_key();
    let signature = signer.sign(&message)?;
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
