//! Hard limits on every length in the format. A reader rejects anything above them before
//! allocating, so a hostile artifact cannot make a device allocate more than a few MiB. Messages
//! about a limit are built from these constants (with [`bytes_text`]), never retyped.

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
/// Most entries in one segment of a version 1 chunk table (a segment table is at most 192 KiB).
pub const MAX_SEGMENT_ENTRIES: u32 = 4096;
/// Most entries in one segment of a version 2 chunk table (at most 320 KiB): 32 MiB of 4 KiB
/// chunks per compressed frame, where frames stop costing compression (measured in
/// `docs/artifact-format.md`).
pub const MAX_FRAMED_SEGMENT_ENTRIES: u32 = 8192;
/// Largest window a version 2 frame may need (2^23 = 8 MiB): what a decoder allocates at most.
pub const MAX_FRAME_WINDOW_LOG: u32 = 23;
/// Longest name, version, device type or other short string in the manifest.
pub const MAX_SHORT_STRING: usize = 128;
/// Most compatible device types listed in a manifest.
pub const MAX_COMPATIBLE: usize = 64;
/// Granule at which zero runs are detected (the filesystem block size of ext4 images).
pub const ZERO_GRANULE: usize = 4096;

/// A byte count as a message states a limit: `1 MiB`, `1 TiB`, or plain bytes when it is not a
/// whole number of a binary unit.
pub fn bytes_text(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_before() {
        assert_eq!(bytes_text(MAX_MANIFEST_LEN as u64), "1 MiB");
        assert_eq!(bytes_text(MAX_PAYLOAD_SIZE), "1 TiB");
        assert_eq!(bytes_text(4096), "4 KiB");
        assert_eq!(bytes_text(1000), "1000 bytes");
    }
}
