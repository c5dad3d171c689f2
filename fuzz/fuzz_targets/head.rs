//! Arbitrary bytes through the header, manifest and signature block parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    let _ = rustupdate_format::read_head(&mut reader);
    let _ = rustupdate_format::Manifest::from_bytes(data);
});
