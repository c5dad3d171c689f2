//! Writes the seed corpus: small real artifacts (signed with the fuzz key of seed [7; 32], and
//! unsigned) across codecs and chunkings. Run: `cargo run --bin make-seeds` from fuzz/.

use rustupdate_format::builder::{BodyOptions, write_payload_body};
use rustupdate_format::{Chunking, Compression, Manifest};
use rustupdate_verify::{SecretKey, signed_head};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = SecretKey::from_seed(&[7; 32]);
    let mut image = b"superblock data ".repeat(300);
    image.resize(12 * 1024, 0);
    image.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    image.extend(b"tail");
    let variants = [
        ("zstd-fixed", Compression::Zstd, Chunking::Fixed { size: 4096 }),
        ("gzip-cdc", Compression::Gzip, Chunking::FastCdc { min: 256, avg: 1024, max: 4096 }),
        ("none-fixed", Compression::None, Chunking::Fixed { size: 2048 }),
    ];
    for (name, compression, chunking) in variants {
        let mut body = Vec::new();
        let options = BodyOptions { compression, level: 3, chunking, threads: 1 };
        let payload = write_payload_body(image.as_slice(), &mut body, "rootfs", &options, &mut |_| {})?;
        let manifest = Manifest {
            format_version: 1,
            name: "seed".into(),
            version: "1".into(),
            compatible: vec!["fuzz".into()],
            security_version: Some(1),
            created: 0,
            payloads: vec![payload],
        };
        for (suffix, keys) in [("signed", vec![&key]), ("unsigned", vec![])] {
            let head = signed_head(manifest.clone(), &keys)?;
            let mut bytes = head.to_bytes()?;
            bytes.extend_from_slice(&body);
            std::fs::write(format!("corpus/reader/seed-{name}-{suffix}"), &bytes)?;
            std::fs::write(format!("corpus/head/seed-{name}-{suffix}"), &head.to_bytes()?)?;
        }
    }
    Ok(())
}
