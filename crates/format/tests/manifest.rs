//! The manifest against the shared sample (`rustupdate_testkit::sample_manifest`): TOML round
//! trip, unknown keys, and values outside the limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use rustupdate_format::{Manifest, limits};
use rustupdate_testkit::sample_manifest;

#[test]
fn round_trip() {
    let manifest = sample_manifest();
    let bytes = manifest.to_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("security-version = 2"), "{text}");
    assert!(text.contains("chunking = \"fixed:4096\""), "{text}");
    assert_eq!(Manifest::from_bytes(&bytes).unwrap(), manifest);
}

#[test]
fn rejects_unknown_keys_and_bad_values() {
    let text = String::from_utf8(sample_manifest().to_bytes().unwrap()).unwrap();
    let unknown = text.replacen("name = ", "surprise = 1\nname = ", 1);
    assert!(
        Manifest::from_bytes(unknown.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("surprise")
    );
    let upper = text.replace(
        &hex::encode([1u8; 32]),
        &hex::encode([1u8; 32]).replace('1', "A"),
    );
    assert!(Manifest::from_bytes(upper.as_bytes()).is_err());
    let mut m = sample_manifest();
    m.compatible.clear();
    assert!(m.validate().is_err());
    let mut m = sample_manifest();
    m.payloads[0].size = limits::MAX_PAYLOAD_SIZE + 1;
    assert!(m.validate().is_err());
    let mut m = sample_manifest();
    m.payloads[0].segments[0].entries = 9000;
    assert!(m.validate().is_err());
    let mut m = sample_manifest();
    m.name = "a\nb".into();
    assert!(m.validate().is_err());
    assert!(Manifest::from_bytes(&[0xff, 0xfe]).is_err());
}
