//! `delta`: make a patch that rebuilds a format version 2 artifact on a device whose active slot
//! holds a known base image, or whose block index is given (see `rustupdate-delta`).

use crate::{EXIT_OK, cli::DeltaArgs, files, progress};
use anyhow::{Context, Result, bail};
use rustupdate_delta::{Base, BlockIndex, BuildOptions, build_patch};
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
    let image;
    let index;
    let base = match (&args.base, &args.base_index) {
        (Some(path), _) => {
            image = read_base(path)?;
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
        let stats = build_patch(
            &head,
            &mut payload,
            base,
            &options,
            &mut writer,
            &mut |done, _| bar.set_position(done),
        )
        .with_context(|| format!("making a patch for {}", args.target.display()))?;
        writer.flush()?;
        stats
    };
    bar.finish_and_clear();
    files::persist(out, &args.output)?;
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
/// unpacked (each chunk checked against its table; signatures are not needed for a base).
fn read_base(path: &std::path::Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading base {}", path.display()))?;
    if !bytes.starts_with(&rustupdate_format::header::MAGIC) {
        return Ok(bytes);
    }
    let mut image = Vec::new();
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut artifact =
        VerifiedArtifact::open(&bytes[..], &rustupdate_verify::Keyring::new(), &policy)
            .with_context(|| format!("base artifact {}", path.display()))?;
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
