//! Bootloader environments as pure codecs: bytes in, variables out, and back.
//!
//! - [`uboot`]: U-Boot environments, byte-compatible with U-Boot, `mkenvimage` and libubootenv's
//!   `fw_printenv`/`fw_setenv`: the single-copy image, the two copies of a redundant environment
//!   (which copy is current, which copy the next write goes to) and the `fw_env.config` file that
//!   says where the copies live.
//! - [`grub`]: the 1024-byte GRUB environment block, byte-compatible with `grub-editenv` and GRUB's
//!   `load_env`/`save_env`, and the boot contract's two copies framed by sequence numbers.
//! - [`bls`]: systemd-boot's boot counting over the two slot entries on the ESP (entry names with
//!   their tries counter, the generation that orders them, which entry boots, and the steps that
//!   arm, bless and reject one), as `bootctl` lists them.
//!
//! What this crate does not do: any I/O (callers read and write the bytes, and decide how to do
//! that safely against power cuts: see `docs/bootenv.md` for the write order), locking against a
//! concurrent `fw_setenv`, probing devices (MTD, UBI, eMMC boot partitions), negative
//! (from-the-end) offsets in `fw_env.config`, the NOR-flash "boolean" flags of redundant
//! environments, big-endian CRCs (`mkenvimage -b`), and U-Boot's `.flags` variable attributes
//! (`.flags` is kept as an ordinary variable).

#![forbid(unsafe_code)]

pub mod bls;
pub mod grub;
pub mod uboot;

use thiserror::Error;

/// Everything that can go wrong decoding or encoding an environment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A variable name that the format cannot store.
    #[error("invalid variable name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    /// A value that the format cannot store.
    #[error("invalid value for {name:?}: {reason}")]
    BadValue { name: String, reason: &'static str },

    /// A U-Boot environment (or one copy of a redundant one) of an unusable size.
    #[error(
        "a U-Boot environment of {size} bytes is out of range ({min}..={max} bytes)",
        min = uboot::MIN_ENV_SIZE,
        max = uboot::MAX_ENV_SIZE
    )]
    UbootSize { size: usize },
    /// The stored CRC32 does not match the data.
    #[error(
        "CRC32 mismatch (stored {stored:#010x}, computed {computed:#010x}): \
         the environment is corrupt or was never written"
    )]
    BadCrc { stored: u32, computed: u32 },
    /// Neither copy of a redundant environment has a valid CRC32.
    #[error(
        "neither copy of the redundant environment is valid (copy 0: stored CRC {:#010x}, \
         computed {:#010x}; copy 1: stored {:#010x}, computed {:#010x})",
        stored[0], computed[0], stored[1], computed[1]
    )]
    NoValidCopy {
        stored: [u32; 2],
        computed: [u32; 2],
    },
    /// The two copies of a redundant environment differ in size.
    #[error("the copies of a redundant environment differ in size ({size0} and {size1} bytes)")]
    CopySizeMismatch { size0: usize, size1: usize },
    /// An entry of a U-Boot environment is not UTF-8.
    #[error("the U-Boot environment entry at byte {offset} is not UTF-8")]
    NotUtf8 { offset: usize },
    /// The variables do not fit the U-Boot environment.
    #[error(
        "the variables need {needed} bytes but a U-Boot environment of {size} bytes holds \
         {available} ({excess} too many)",
        excess = needed - available
    )]
    DoesNotFit {
        needed: usize,
        available: usize,
        size: usize,
    },

    /// A line of `fw_env.config` is wrong.
    #[error("fw_env.config line {line}: {problem}")]
    Config { line: usize, problem: ConfigProblem },
    /// `fw_env.config` names no environment location.
    #[error(
        "fw_env.config names no environment location (expected 1 line, or 2 for a redundant one)"
    )]
    ConfigEmpty,

    /// A GRUB environment block that is not 1024 bytes.
    #[error(
        "a GRUB environment block is exactly {expected} bytes, this one is {size}",
        expected = grub::BLOCK_SIZE
    )]
    GrubSize { size: usize },
    /// A GRUB environment block without its `# GRUB Environment Block` header.
    #[error("not a GRUB environment block: missing the \"# GRUB Environment Block\" header")]
    GrubHeader,
    /// A GRUB environment block line that cannot be read.
    #[error("GRUB environment block, byte {offset}: {problem}")]
    GrubSyntax {
        offset: usize,
        problem: &'static str,
    },
    /// The variables do not fit the 1024-byte GRUB environment block.
    #[error(
        "the GRUB environment needs {needed} bytes, {excess} more than the {size}-byte block",
        excess = needed - grub::BLOCK_SIZE,
        size = grub::BLOCK_SIZE
    )]
    GrubTooLarge { needed: usize },
}

/// What is wrong with one line of `fw_env.config`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigProblem {
    /// Not `device offset envsize [sectorsize [sectors [disable-lock]]]`.
    #[error(
        "expected `device offset envsize [sectorsize [sectors [disable-lock]]]`, found {found} fields"
    )]
    FieldCount { found: usize },
    /// A field that is not a number in the notation libubootenv reads it in.
    #[error("{field} {text:?} is not {notation}")]
    Number {
        field: &'static str,
        text: String,
        notation: &'static str,
    },
    /// A negative offset (libubootenv counts it from the end of a block device).
    #[error("negative offset {text:?} (from the end of the device) is not supported")]
    NegativeOffset { text: String },
    /// An environment size out of range.
    #[error(
        "environment size {size:#x} is out of range ({min:#x}..={max:#x})",
        min = uboot::MIN_ENV_SIZE,
        max = uboot::MAX_ENV_SIZE
    )]
    Size { size: u64 },
    /// The second copy of a redundant environment has another size than the first.
    #[error("the second copy's size {size:#x} differs from the first copy's {first:#x}")]
    SizeMismatch { size: u64, first: u64 },
    /// A third location: libubootenv reads at most two.
    #[error("a third environment location (1 = single copy, 2 = redundant, no more)")]
    TooManyLocations,
}
