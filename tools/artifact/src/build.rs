//! `build`: pack a filesystem image into an artifact, signed when keys are given.

use crate::{EXIT_OK, cli::BuildArgs, files, progress};
use anyhow::{Context, Result, bail};
use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_format::{Chunking, Compression, Manifest};
use std::io::{BufReader, BufWriter, Seek, Write};

pub fn run(args: &BuildArgs) -> Result<u8> {
    let compression = match args.compression.as_str() {
        "zstd" => Compression::Zstd,
        "gzip" => Compression::Gzip,
        "none" => Compression::None,
        other => bail!("unknown compression {other:?}"),
    };
    if compression == Compression::Gzip && args.format_version != 1 {
        bail!(
            "gzip compression needs --format-version 1 (format version 2 frames are zstd or none)"
        );
    }
    let level = args.level.unwrap_or(compression.default_level());
    match compression {
        Compression::Zstd if !(1..=22).contains(&level) => {
            bail!("zstd level {level} is outside 1-22")
        }
        Compression::Gzip if !(0..=9).contains(&level) => {
            bail!("gzip level {level} is outside 0-9")
        }
        _ => {}
    }
    let chunking: Chunking = args.chunking.parse().context("--chunking")?;
    if !args.encrypt_to.is_empty() && args.format_version != 2 {
        bail!("--encrypt-to needs format version 2");
    }
    let recipients = args
        .encrypt_to
        .iter()
        .map(|p| files::read_recipient_key(p))
        .collect::<Result<Vec<_>>>()?;
    let trust_document = args
        .trust_document
        .as_deref()
        .map(read_trust_document)
        .transpose()?;
    let keys = args
        .keys
        .iter()
        .map(|p| files::read_secret_key(p))
        .collect::<Result<Vec<_>>>()?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let created = match args.created {
        Some(t) => t,
        None => created_now()?,
    };

    let image = std::fs::File::open(&args.image)
        .with_context(|| format!("opening image {}", args.image.display()))?;
    let image_len = image.metadata()?.len();
    // The manifest needs the chunk table hashes, so the body goes to a temporary file first.
    let mut body = tempfile::tempfile_in(parent_dir(&args.output))
        .context("creating a temporary body file")?;
    let bar = progress::bar(image_len, "building");
    let options = BodyOptions {
        format_version: args.format_version,
        compression,
        level,
        chunking,
        threads,
        segment_entries: None,
    };
    let mut payload = {
        let mut writer = BufWriter::with_capacity(1 << 20, &mut body);
        let payload = write_payload_body(
            BufReader::with_capacity(1 << 20, image),
            &mut writer,
            "rootfs",
            &options,
            &mut |n| bar.set_position(n),
        )
        .with_context(|| format!("packing {}", args.image.display()))?;
        writer.flush()?;
        payload
    };
    bar.finish_and_clear();
    let encryption = if recipients.is_empty() {
        None
    } else {
        let key = rustupdate_seal::ContentKey::generate();
        body = seal_body(&key, &mut payload, body, &args.output)?;
        Some(rustupdate_seal::wrap(&key, &recipients)?)
    };

    let manifest = Manifest {
        format_version: args.format_version,
        name: args.name.clone(),
        version: args.version.clone(),
        compatible: args.device_types.clone(),
        security_version: args.security_version,
        created,
        trust_document,
        encryption,
        payloads: vec![payload],
    };
    let head = rustupdate_verify::signed_head(manifest, &keys.iter().collect::<Vec<_>>())?;

    let out = files::temp_next_to(&args.output)?;
    {
        let mut writer = BufWriter::with_capacity(1 << 20, out.as_file());
        writer.write_all(&head.to_bytes()?)?;
        body.rewind()?;
        std::io::copy(&mut body, &mut writer)?;
        writer.flush()?;
    }
    files::persist(out, &args.output)?;

    let size = std::fs::metadata(&args.output)?.len();
    let payload = &head.manifest.payloads[0];
    println!(
        "{}: {} {} ({} image bytes -> {} artifact bytes, {:.1}%), {}",
        args.output.display(),
        head.manifest.name,
        head.manifest.version,
        payload.size,
        size,
        100.0 * size as f64 / payload.size as f64,
        match &head.manifest.encryption {
            Some(e) => format!("encrypted to {} recipient(s), ", e.recipients.len()),
            None => String::new(),
        } + &if head.signatures.is_empty() {
            "UNSIGNED (sign it with `rustupdate-artifact sign`)".to_string()
        } else {
            format!(
                "signed by {}",
                head.signatures
                    .iter()
                    .map(|s| s.key_id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(EXIT_OK)
}

/// The clear body sealed into a new temporary file (docs/encryption.md); `payload`'s segments
/// then describe the sealed bytes.
fn seal_body(
    key: &rustupdate_seal::ContentKey,
    payload: &mut rustupdate_format::Payload,
    mut clear: std::fs::File,
    output: &std::path::Path,
) -> Result<std::fs::File> {
    let mut sealed =
        tempfile::tempfile_in(parent_dir(output)).context("creating a temporary body file")?;
    clear.rewind()?;
    {
        let mut reader = BufReader::with_capacity(1 << 20, &mut clear);
        let mut writer = BufWriter::with_capacity(1 << 20, &mut sealed);
        rustupdate_seal::seal_payload_body(key, 0, payload, &mut reader, &mut writer)
            .context("encrypting the body")?;
        writer.flush()?;
    }
    Ok(sealed)
}

fn created_now() -> Result<u64> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return epoch
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={epoch:?} is not a number"));
    }
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs())
}

fn parent_dir(path: &std::path::Path) -> std::path::PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// The trust document to embed, as written, once it parses (checked before the image is read).
fn read_trust_document(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    rustupdate_trust::Document::parse(&bytes)
        .with_context(|| format!("--trust-document {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("--trust-document {}", path.display()))
}
