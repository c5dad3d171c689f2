//! `delta`: make a patch that rebuilds a format version 2 artifact on a device whose active slot
//! holds a known base image, or whose block index is given (see `rustupdate-delta`). The patch of
//! an encrypted target is made from the target opened with a recipient key and sealed under its
//! content key.

use crate::{EXIT_OK, cli::DeltaArgs, files, progress};
use anyhow::{Context, Result, bail};
use rustupdate_delta::{Base, BlockIndex, BuildOptions, build_patch, seal_patch};
use rustupdate_verify::{ChunkData, SignaturePolicy, VerifiedArtifact};
use std::io::{BufReader, BufWriter, Write};

pub fn run(args: &DeltaArgs) -> Result<u8> {
    let policy = if args.keys.is_empty() {
        // The device checks every chunk the patch rebuilds against the signed tables; here the
        // target only has to be readable. --key makes the tool check its signatures too.
        SignaturePolicy::dangerous_accept_unsigned()
    } else {
        SignaturePolicy::threshold(1)?
    };
    let ring = files::keyring(&args.keys, None)?;
    let secret = args
        .decryption_key
        .as_deref()
        .map(files::read_decryption_key)
        .transpose()?;
    let image;
    let index;
    let base = match (&args.base, &args.base_index) {
        (Some(path), _) => {
            image = read_base(path, secret.as_ref())?;
            Base::Image(&image)
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading block index {}", path.display()))?;
            index = BlockIndex::from_bytes(&bytes)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("block index {}", path.display()))?;
            Base::Index(&index)
        }
        (None, None) => bail!("give --base or --base-index"),
    };
    let file = std::fs::File::open(&args.target)
        .with_context(|| format!("opening {}", args.target.display()))?;
    let target_len = file.metadata()?.len();
    let mut artifact =
        VerifiedArtifact::open(BufReader::with_capacity(1 << 20, file), &ring, &policy)
            .with_context(|| format!("target {}", args.target.display()))?;
    unlock(&mut artifact, secret.as_ref(), "target", &args.target)?;
    let content_key = artifact.content_key().cloned();
    let head = artifact.head().clone();
    let size = head.manifest.payloads.first().map_or(0, |p| p.size);
    let bar = progress::bar(size, "diffing");
    let options = BuildOptions {
        level: args.level,
        ..BuildOptions::default()
    };
    let out = files::temp_next_to(&args.output)?;
    let stats = {
        let mut writer = BufWriter::new(out.as_file());
        let mut payload = artifact
            .next_payload()?
            .context("the target artifact has no payload")?;
        // An encrypted target's patch is made in memory (the builder holds it whole anyway),
        // then sealed.
        let mut clear = Vec::new();
        let mut sink: &mut dyn Write = if content_key.is_some() {
            &mut clear
        } else {
            &mut writer
        };
        let mut stats = build_patch(
            &head,
            &mut payload,
            base,
            &options,
            &mut sink,
            &mut |done, _| bar.set_position(done),
        )
        .with_context(|| format!("making a patch for {}", args.target.display()))?;
        if let Some(key) = &content_key {
            stats.patch_bytes = seal_patch(key, &clear, &mut writer)?;
        }
        writer.flush()?;
        stats
    };
    bar.finish_and_clear();
    files::persist(out, &args.output)?;
    if content_key.is_some() {
        println!(
            "sealed for the recipients of {} (patch version 2)",
            args.target.display()
        );
    }
    let percent = |part: u64| part as f64 * 100.0 / target_len.max(1) as f64;
    println!(
        "{}: {} bytes, {:.1} % of the full artifact ({target_len} bytes)",
        args.output.display(),
        stats.patch_bytes,
        percent(stats.patch_bytes)
    );
    println!(
        "  {} chunks ({} bytes) copied from the base, {} chunks ({} bytes) sent in {} frames \
         ({} bytes), programs {} bytes",
        stats.copied_chunks,
        stats.copied_bytes,
        stats.literal_chunks,
        stats.literal_bytes,
        stats.frames,
        stats.literal_stored_bytes,
        stats.program_bytes
    );
    Ok(EXIT_OK)
}

/// The base as raw image bytes: an image file, or an artifact (`.rua`) whose first payload is
/// unpacked (each chunk checked against its table; signatures are not needed for a base; an
/// encrypted one is opened with `secret`).
fn read_base(
    path: &std::path::Path,
    secret: Option<&rustupdate_seal::RecipientSecretKey>,
) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading base {}", path.display()))?;
    if !bytes.starts_with(&rustupdate_format::header::MAGIC) {
        return Ok(bytes);
    }
    let mut image = Vec::new();
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut artifact =
        VerifiedArtifact::open(&bytes[..], &rustupdate_verify::Keyring::new(), &policy)
            .with_context(|| format!("base artifact {}", path.display()))?;
    unlock(&mut artifact, secret, "base artifact", path)?;
    let Some(mut payload) = artifact.next_payload()? else {
        bail!("base artifact {} has no payload", path.display());
    };
    while let Some(chunk) = payload.next_chunk()? {
        match chunk.data {
            ChunkData::Bytes(data) => image.extend_from_slice(data),
            ChunkData::Zeros(n) => image.resize(image.len() + n as usize, 0),
        }
    }
    Ok(image)
}

/// Opens an encrypted artifact with the recipient key, or says which option is missing.
fn unlock<R: std::io::Read>(
    artifact: &mut VerifiedArtifact<R>,
    secret: Option<&rustupdate_seal::RecipientSecretKey>,
    what: &str,
    path: &std::path::Path,
) -> Result<()> {
    if artifact.head().is_encrypted() && secret.is_none() {
        bail!(
            "{what} {} is encrypted: give --decryption-key (a recipient's key) to make its patch",
            path.display()
        );
    }
    artifact
        .unlock(secret)
        .with_context(|| format!("{what} {}", path.display()))
}
