//! `inspect`: what an artifact claims, without verifying it.

use crate::{EXIT_OK, cli::InspectArgs};
use anyhow::{Context, Result};
use rustupdate_format::read_head;
use serde_json::json;
use std::io::BufReader;

pub fn run(args: &InspectArgs) -> Result<u8> {
    let file = std::fs::File::open(&args.artifact)
        .with_context(|| format!("opening {}", args.artifact.display()))?;
    let file_size = file.metadata()?.len();
    let head = read_head(&mut BufReader::new(file))
        .with_context(|| format!("reading {}", args.artifact.display()))?;
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
                })
            })
            .collect();
        let value = json!({
            "format-version": head.header.format_version, "file-size": file_size,
            "name": m.name, "version": m.version, "compatible": m.compatible,
            "security-version": m.security_version, "created": m.created,
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
        println!(
            "  chunk entries:  {chunks} in {} segment(s), {stored} stored bytes",
            p.segments.len()
        );
    }
    println!("file size:        {file_size} bytes");
    Ok(EXIT_OK)
}
