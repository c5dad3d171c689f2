//! Hard limits on every length in the format. A reader rejects anything above them before
//! allocating, so a hostile artifact cannot make a device allocate more than a few MiB.

/// Largest manifest (TOML) accepted.
pub const MAX_MANIFEST_LEN: usize = 1024 * 1024;
/// Most signatures an artifact may carry.
pub const MAX_SIGNATURES: usize = 16;
/// Most payloads in one artifact.
pub const MAX_PAYLOADS: usize = 8;
/// Largest payload (uncompressed image) accepted: 1 TiB.
pub const MAX_PAYLOAD_SIZE: u64 = 1 << 40;
/// Largest uncompressed data chunk. Zero runs are not chunks of data and may be longer.
pub const MAX_CHUNK_SIZE: u32 = 1024 * 1024;
/// Most entries in one segment of a chunk table (a segment table is at most 192 KiB).
pub const MAX_SEGMENT_ENTRIES: u32 = 4096;
/// Longest name, version, device type or other short string in the manifest.
pub const MAX_SHORT_STRING: usize = 128;
/// Most compatible device types listed in a manifest.
pub const MAX_COMPATIBLE: usize = 64;
/// Granule at which zero runs are detected (the filesystem block size of ext4 images).
pub const ZERO_GRANULE: usize = 4096;
