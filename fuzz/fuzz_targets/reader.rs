//! Arbitrary bytes through the verifying reader, as a device reads a download: open, every chunk
//! of every payload, then `finish`. Each input is read three ways (`rustupdate_fuzz::PASSES`): with
//! the fuzz key trusted, with the dangerous unsigned policy, and unsigned with the segment table
//! hashes fixed up so that mutated chunk tables get through. Nothing may panic, allocate without
//! bound, or yield chunks that break the reader's contract.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for pass in rustupdate_fuzz::PASSES {
        let _ = rustupdate_fuzz::read(data, pass);
    }
});
