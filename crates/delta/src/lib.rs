//! Delta patches (`.rudelta`): a signed format version 2 artifact rebuilt on the device from a
//! base image it already holds (its active slot) plus a small patch.
//!
//! - [`patch`]: the patch layout, a pure encode/decode of its header and per-segment programs.
//! - [`build`]: makes a patch for a target artifact against a base image (known base) or a
//!   device's [`index`] of its blocks (any base); `similar` finds the base blocks most like a
//!   literal frame's content, for its reference.
//! - [`open`]: reading a patch's header against its target; a sealed patch (of an encrypted
//!   release) opened with the content key, and [`seal_patch`].
//! - `decode`: one zstd frame of the patch decoded into its final buffer, its compressed bytes
//!   read a piece at a time.
//! - [`apply`]: [`DeltaPayload`], a [`ChunkSource`](rustupdate_verify::ChunkSource) that rebuilds
//!   the target's payload chunk by chunk and hands a chunk on only after it matched the signed
//!   chunk table.
//!
//! A patch of an encrypted release is sealed under the release's content key: only its
//! recipients (and the release pipeline that made it) can read it.
//!
//! The patch itself is not signed and need not be: it only says where each chunk of the signed
//! target comes from (a block of the base, or bytes in the patch). For each segment the device
//! first rebuilds the whole chunk table from those bytes and compares its sha256 with the signed
//! manifest, and only then hands the chunks on, each checked again against the now trusted table.
//! A wrong or modified base, or a damaged patch, therefore fails before anything of that segment
//! is handed on ([`rustupdate_verify::Error::Delta`]), and the caller falls back to a full
//! download. This crate does no I/O of its own: the base and the patch are passed in.

#![forbid(unsafe_code)]

pub mod apply;
pub mod build;
mod decode;
pub mod index;
pub mod open;
pub mod patch;
mod similar;

pub use apply::{BaseImage, DeltaPayload, DeltaStats};
pub use build::{Base, BuildError, BuildOptions, PatchStats, build_patch};
pub use index::BlockIndex;
pub use open::{
    PatchReader, is_sealed_patch_len, open_patch, read_fixed_header, read_header, read_header_for,
    seal_patch,
};
pub use patch::PatchHeader;
