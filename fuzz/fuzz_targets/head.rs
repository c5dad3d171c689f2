//! Arbitrary bytes through the head parsers: `read_head` (header, manifest, signature block) on the
//! input as an artifact, and `Manifest::from_bytes` on the input as manifest text. A manifest that
//! parses must encode again and parse back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustupdate_format::Manifest;

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    if let Ok(head) = rustupdate_format::read_head(&mut reader) {
        let bytes = head.to_bytes().expect("a head that parsed encodes again");
        assert_eq!(bytes.len() as u64, head.body_offset());
        assert_eq!(
            &bytes[..],
            &data[..bytes.len()],
            "the head encodes to the bytes it came from"
        );
    }
    if let Ok(manifest) = Manifest::from_bytes(data) {
        let text = manifest.to_bytes().expect("a valid manifest encodes");
        let again = Manifest::from_bytes(&text).expect("an encoded manifest parses");
        assert_eq!(again, manifest);
    }
});
