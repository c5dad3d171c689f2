//! A delta patch applied as a device applies one: the input is an artifact and a patch (see
//! `rustupdate_fuzz::split_delta_input`), the base fixed (`rustupdate_fuzz::delta_base`). The
//! seeds are a clear release with its clear patch and an encrypted release with its sealed patch,
//! so mutations reach the patch header, the sealed blocks, the programs and the literal frames.
//! Nothing may panic, allocate without bound, or hand on chunks that break the contract.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rustupdate_fuzz::apply_delta(data);
});
