//! Encryption of rustupdate artifacts (`docs/encryption.md`): nothing here is new cryptography.
//!
//! - A random 32-byte **content key** per artifact, wrapped for each recipient's X25519 key with
//!   HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; the
//!   `hpke` crate) into the signed manifest's `[[encryption.recipient]]` ([`wrap`], [`unwrap`]).
//! - Per segment, two keys derived from it with HKDF-SHA256 (bound to the payload and segment
//!   index, so a sealed part moved elsewhere does not open): the segment's **table** is sealed
//!   whole with ChaCha20-Poly1305 ([`seal_table`]), its **frame** with the STREAM construction
//!   (`aead::stream`, big-endian 32-bit counter and last-block flag) in 64 KiB blocks, so a
//!   device opens it block by block with bounded memory ([`FrameOpener`], [`seal_frame`]).
//! - Delta patches of an encrypted release: a clear header, a salt, and the rest sealed in
//!   STREAM blocks under a key derived from the content key and the salt, opened by position
//!   ([`SealedFile`], [`seal_file`]).
//!
//! The manifest's `table-sha256` and `data-sha256` cover the sealed bytes: the signatures vouch
//! for the ciphertext, which a device checks before it opens a table (and a frame's digest when
//! its last block was read); every chunk is still checked against the signed table before it is
//! written. Pure except for [`ContentKey::generate`] and [`RecipientSecretKey::generate`], which
//! take randomness from the operating system.

#![forbid(unsafe_code)]

mod body;
mod error;
mod keys;
mod sealed_file;
mod wrap;

pub use body::{
    FrameOpener, open_table, open_table_in_place, seal_frame, seal_payload_body, seal_table,
    sealed_table_sha256,
};
pub use error::SealError;
pub use keys::{RecipientPublicKey, RecipientSecretKey, key_id_text};
pub use sealed_file::{SALT_LEN, SealedFile, seal_file};
pub use wrap::{ContentKey, unwrap, wrap};
