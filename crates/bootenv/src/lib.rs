//! Bootloader environments as pure codecs: bytes in, values out, and back.
//!
//! - [`uboot`]: U-Boot environments (single and redundant copies, `fw_env.config`), byte-compatible
//!   with U-Boot, `mkenvimage` and libubootenv's `fw_printenv`/`fw_setenv`.
//! - [`grub`]: the 1024-byte GRUB environment block, byte-compatible with `grub-editenv`.
//!
//! This crate does no I/O: callers read and write the bytes (and decide how to do that safely
//! against power cuts; see `docs/bootenv.md`).

#![forbid(unsafe_code)]

pub mod grub;
pub mod uboot;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("a GRUB environment block is 1024 bytes, this one is {0}")]
    GrubSize(usize),
    #[error("missing \"# GRUB Environment Block\" header")]
    GrubHeader,
    #[error("GRUB environment: {0}")]
    GrubSyntax(String),
    #[error("the GRUB environment needs {needed} bytes, more than the 1024-byte block")]
    GrubTooLarge { needed: usize },
    #[error("invalid variable name {0:?}")]
    BadName(String),
    #[error("the value of {0:?} contains a NUL byte")]
    BadValue(String),
    #[error("a U-Boot environment of {0} bytes is too small")]
    UbootSize(usize),
    #[error("CRC32 mismatch: the environment is corrupt or was never written")]
    BadCrc,
    #[error("U-Boot environment: {0}")]
    UbootSyntax(String),
    #[error("the U-Boot environment needs {needed} bytes but only {available} are available")]
    UbootTooLarge { needed: usize, available: usize },
    #[error("fw_env.config line {line}: {reason}")]
    Config { line: usize, reason: String },
}
