//! Trust decisions for rustupdate artifacts.
//!
//! - [`keys`]: ed25519 public and secret keys in PEM (PKCS#8 / SubjectPublicKeyInfo, the formats
//!   `openssl genpkey -algorithm ed25519` writes), and their [`KeyId`]s.
//! - [`policy`]: the keyring of trusted keys and the threshold of distinct keys that must sign.
//! - [`reader`]: [`VerifiedArtifact`], a streaming reader that checks the signature policy before
//!   it yields any payload byte and yields each chunk only after its sha256 matched.
//!
//! Pure: keys are parsed from strings (reading key files is the optional `fs` feature,
//! [`key_files`](crate::key_files)), randomness for new keys comes from the caller, and the reader
//! works on any [`std::io::Read`]. Device policy (compatible device types, security version) is
//! the client's business, decided from [`VerifiedArtifact::manifest`] before it reads payloads.

#![forbid(unsafe_code)]

mod chunk;
mod error;
mod image_hash;
#[cfg(feature = "fs")]
pub mod key_files;
pub mod keys;
pub mod policy;
pub mod reader;
pub mod sealed;

pub use error::Error;
pub use image_hash::ImageHash;
pub use keys::{PublicKey, SecretKey, signed_head};
pub use policy::{Keyring, SignaturePolicy, check_manifest_signatures, check_signatures};
pub use reader::{
    Chunk, ChunkData, ChunkSource, PayloadReader, ResumePoint, VerifiedArtifact, read_verified_head,
};
pub use rustupdate_format::{KeyId, SignatureEntry};
pub use sealed::check_sealed_body;
