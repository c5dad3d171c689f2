//! `inspect`: what an artifact or a delta patch claims, without verifying it.

use crate::{EXIT_OK, cli::InspectArgs};
use anyhow::{Context, Result};
use rustupdate_format::read_head;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Seek};

pub fn run(args: &InspectArgs) -> Result<u8> {
    let file = std::fs::File::open(&args.artifact)
        .with_context(|| format!("opening {}", args.artifact.display()))?;
    let file_size = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    if is_patch(&mut reader)? {
        return inspect_patch(args, &mut reader, file_size);
    }
    let head =
        read_head(&mut reader).with_context(|| format!("reading {}", args.artifact.display()))?;
    let m = &head.manifest;
    let signatures: Vec<String> = head
        .signatures
        .iter()
        .map(|s| s.key_id.to_string())
        .collect();
    if args.json {
        let payloads: Vec<_> = m
            .payloads
            .iter()
            .map(|p| {
                json!({
                    "name": p.name, "type": "rootfs-image", "target": p.target, "size": p.size,
                    "sha256": p.sha256.to_string(), "compression": p.compression.name(),
                    "chunking": p.chunking.to_string(), "segments": p.segments.len(),
                    "chunks": p.segments.iter().map(|s| u64::from(s.entries)).sum::<u64>(),
                    "stored-bytes": p.segments.iter().map(|s| s.data_size).sum::<u64>(),
                    "table-bytes": p.segments.iter().map(|s| s.stored_table_len(head.layout(), head.is_encrypted())).sum::<u64>(),
                })
            })
            .collect();
        let trust_version = carried_trust_version(m);
        let recipients: Option<Vec<String>> = m
            .encryption
            .as_ref()
            .map(|e| e.recipients.iter().map(|r| r.key_id.to_string()).collect());
        let value = json!({
            "encrypted-to": recipients,
            "format-version": head.header.format_version, "file-size": file_size,
            "name": m.name, "version": m.version, "compatible": m.compatible,
            "security-version": m.security_version, "created": m.created,
            "trust-document-version": trust_version,
            "signatures": signatures, "payloads": payloads, "verified": false,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(EXIT_OK);
    }
    println!("artifact:         {}", args.artifact.display());
    println!("format version:   {}", head.header.format_version);
    println!("name:             {}", m.name);
    println!("version:          {}", m.version);
    println!("compatible:       {}", m.compatible.join(", "));
    match m.security_version {
        Some(v) => println!("security version: {v}"),
        None => println!("security version: (none)"),
    }
    println!("created:          {} (unix time)", m.created);
    if m.trust_document.is_some() {
        match carried_trust_version(m) {
            Some(v) => println!(
                "trust document:   version {v} (in force on devices when this release commits)"
            ),
            None => println!("trust document:   (does not parse: devices reject this artifact)"),
        }
    }
    if let Some(e) = &m.encryption {
        let ids: Vec<String> = e.recipients.iter().map(|r| r.key_id.to_string()).collect();
        println!("encrypted to:     {} ({})", ids.join(", "), e.scheme);
    }
    if signatures.is_empty() {
        println!("signatures:       none (UNSIGNED)");
    } else {
        println!(
            "signatures:       {} (key ids, not verified here)",
            signatures.join(", ")
        );
    }
    for p in &m.payloads {
        let chunks: u64 = p.segments.iter().map(|s| u64::from(s.entries)).sum();
        let stored: u64 = p.segments.iter().map(|s| s.data_size).sum();
        println!("payload {:?}: rootfs-image -> {}", p.name, p.target);
        println!("  size:           {} bytes", p.size);
        println!("  sha256:         {}", p.sha256);
        println!("  compression:    {}", p.compression.name());
        println!("  chunking:       {}", p.chunking);
        let tables: u64 = p
            .segments
            .iter()
            .map(|s| s.stored_table_len(head.layout(), head.is_encrypted()))
            .sum();
        println!(
            "  chunk entries:  {chunks} in {} segment(s), {stored} stored bytes, tables {tables} bytes",
            p.segments.len()
        );
        println!(
            "  download:       {:.1} % of the image size",
            (stored + tables) as f64 * 100.0 / p.size.max(1) as f64
        );
    }
    println!("file size:        {file_size} bytes");
    Ok(EXIT_OK)
}

/// A delta patch starts with its own magic.
fn is_patch<R: BufRead>(reader: &mut R) -> Result<bool> {
    let start = reader.fill_buf()?;
    Ok(start.starts_with(&rustupdate_delta::patch::MAGIC))
}

fn inspect_patch<R: Read + Seek>(args: &InspectArgs, reader: &mut R, file_size: u64) -> Result<u8> {
    let (fixed, count) = rustupdate_delta::read_fixed_header(reader)
        .with_context(|| format!("reading patch {}", args.artifact.display()))?;
    if fixed.sealed {
        return inspect_sealed_patch(args, &fixed, count, file_size);
    }
    let header = rustupdate_delta::read_header(reader)
        .with_context(|| format!("reading patch {}", args.artifact.display()))?;
    let programs: u64 = header.segments.iter().map(|(p, _)| u64::from(*p)).sum();
    let literals: u64 = header.segments.iter().map(|(_, l)| *l).sum();
    let target = hex::encode(header.target_manifest_sha256);
    let base = hex::encode(header.base_sha256);
    if args.json {
        let value = json!({
            "kind": "delta-patch", "file-size": file_size, "patch-size": header.patch_len(),
            "target-manifest-sha256": target, "base-sha256": base, "base-size": header.base_size,
            "segments": header.segments.len(), "program-bytes": programs, "literal-bytes": literals,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(EXIT_OK);
    }
    println!("delta patch:      {}", args.artifact.display());
    println!("rebuilds:         the artifact whose manifest has sha256 {target}");
    println!(
        "base image:       sha256 {base}, {} bytes",
        header.base_size
    );
    println!(
        "segments:         {}, programs {programs} bytes, literal frames {literals} bytes",
        header.segments.len()
    );
    println!(
        "file size:        {file_size} bytes (the patch says {})",
        header.patch_len()
    );
    Ok(EXIT_OK)
}

/// A sealed patch (of an encrypted release): only its fixed header is clear.
fn inspect_sealed_patch(
    args: &InspectArgs,
    header: &rustupdate_delta::PatchHeader,
    segments: u32,
    file_size: u64,
) -> Result<u8> {
    let target = hex::encode(header.target_manifest_sha256);
    let base = hex::encode(header.base_sha256);
    if args.json {
        let value = json!({
            "kind": "delta-patch", "sealed": true, "file-size": file_size,
            "target-manifest-sha256": target, "base-sha256": base, "base-size": header.base_size,
            "segments": segments,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(EXIT_OK);
    }
    println!("delta patch:      {} (sealed)", args.artifact.display());
    println!("rebuilds:         the artifact whose manifest has sha256 {target}");
    println!(
        "base image:       sha256 {base}, {} bytes",
        header.base_size
    );
    println!("segments:         {segments} (programs and frames sealed)");
    println!("file size:        {file_size} bytes");
    Ok(EXIT_OK)
}

/// The version of the trust document the manifest carries, if it carries one that parses.
fn carried_trust_version(m: &rustupdate_format::Manifest) -> Option<u64> {
    let text = m.trust_document.as_deref()?;
    rustupdate_trust::Document::parse(text.as_bytes())
        .ok()
        .map(|d| d.signed.version)
}
