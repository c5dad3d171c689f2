//! Arbitrary bytes through the verifying reader, both with a trusted key (the fuzzer rarely gets
//! past the signature) and with the dangerous unsigned policy (so tables, chunks and codecs are
//! exercised). Nothing may panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustupdate_verify::{Keyring, SecretKey, SignaturePolicy, VerifiedArtifact};

fn read_all(data: &[u8], ring: &Keyring, policy: &SignaturePolicy) {
    let Ok(mut artifact) = VerifiedArtifact::open(data, ring, policy) else { return };
    loop {
        let Ok(Some(mut payload)) = artifact.next_payload() else { return };
        loop {
            match payload.next_chunk() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ring = Keyring::new();
    ring.add(SecretKey::from_seed(&[7; 32]).public_key());
    read_all(data, &ring, &SignaturePolicy::default());
    read_all(data, &Keyring::new(), &SignaturePolicy::dangerous_accept_unsigned());
});
