//! Chunk table entries, stored in segments in front of their data. Two layouts, one per format
//! version ([`TableLayout`]).
//!
//! Version 1 ([`TableLayout::PerChunk`]), 48 bytes, every data chunk compressed on its own:
//!
//! ```text
//! 0  u8   kind: 0 = data, 1 = zero run
//! 1  u8   codec of the stored bytes: 0 = none, 1 = zstd, 2 = gzip (0 for zero runs)
//! 2  u16  reserved, zero
//! 4  u32  stored length in the body (0 for zero runs; at most `size` for data)
//! 8  u64  uncompressed size (data: 1 ..= MAX_CHUNK_SIZE; zero run: >= 1)
//! 16 [32] sha256 of the uncompressed bytes (all zero for zero runs)
//! ```
//!
//! Version 2 ([`TableLayout::Framed`]), 40 bytes: the segment's data chunks are compressed together
//! as one frame (the payload's codec), so an entry has no codec and no stored length:
//!
//! ```text
//! 0  u8   kind: 0 = data, 1 = zero run
//! 1  [3]  reserved, zero
//! 4  u32  uncompressed size (data: 1 ..= MAX_CHUNK_SIZE; zero run: >= 1)
//! 8  [32] sha256 of the uncompressed bytes (all zero for zero runs)
//! ```

use crate::{Compression, Error, limits};

/// Length of a version 1 entry.
pub const ENTRY_LEN: usize = 48;
/// Length of a version 2 entry.
pub const FRAMED_ENTRY_LEN: usize = 40;

/// How a segment's table and data are laid out; follows from the format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableLayout {
    /// Version 1: 48-byte entries, each data chunk stored (compressed) on its own.
    PerChunk,
    /// Version 2: 40-byte entries, the segment's data chunks stored as one compressed frame.
    Framed,
}

impl TableLayout {
    /// The layout of a format version this crate reads; `None` for any other.
    pub fn for_version(version: u16) -> Option<TableLayout> {
        match version {
            1 => Some(TableLayout::PerChunk),
            2 => Some(TableLayout::Framed),
            _ => None,
        }
    }

    pub fn entry_len(self) -> usize {
        match self {
            TableLayout::PerChunk => ENTRY_LEN,
            TableLayout::Framed => FRAMED_ENTRY_LEN,
        }
    }

    /// Most entries in one segment.
    pub fn max_segment_entries(self) -> u32 {
        match self {
            TableLayout::PerChunk => limits::MAX_SEGMENT_ENTRIES,
            TableLayout::Framed => limits::MAX_FRAMED_SEGMENT_ENTRIES,
        }
    }

    /// Appends the encoded entry to `table`.
    pub fn encode(self, entry: &ChunkEntry, table: &mut Vec<u8>) {
        match self {
            TableLayout::PerChunk => table.extend_from_slice(&entry.to_bytes()),
            TableLayout::Framed => table.extend_from_slice(&entry.to_framed_bytes()),
        }
    }

    /// Decodes and validates one entry of `entry_len()` bytes; `index` only names it in errors.
    pub fn decode(self, bytes: &[u8], index: u64) -> Result<ChunkEntry, Error> {
        let bad = |reason: String| Error::ChunkEntry { index, reason };
        match self {
            TableLayout::PerChunk => {
                let bytes: &[u8; ENTRY_LEN] = bytes
                    .try_into()
                    .map_err(|_| bad(format!("{} bytes, not {ENTRY_LEN}", bytes.len())))?;
                ChunkEntry::from_bytes(bytes, index)
            }
            TableLayout::Framed => {
                let bytes: &[u8; FRAMED_ENTRY_LEN] = bytes
                    .try_into()
                    .map_err(|_| bad(format!("{} bytes, not {FRAMED_ENTRY_LEN}", bytes.len())))?;
                ChunkEntry::from_framed_bytes(bytes, index)
            }
        }
    }
}

/// A segment's chunk table with every entry checked, kept as its encoded bytes: 40 (or 48) bytes
/// an entry where a decoded [`ChunkEntry`] takes 56, so the largest table costs its 320 KiB once
/// instead of that and 448 KiB decoded beside it. Entries are decoded again where they are
/// reached ([`CheckedTable::entry`]).
#[derive(Debug)]
pub struct CheckedTable {
    layout: TableLayout,
    bytes: Vec<u8>,
    summary: TableSummary,
}

/// What a reader needs of a whole table before its first chunk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TableSummary {
    /// Stored bytes of the data entries (version 1; version 2 entries store none).
    pub stored_total: u64,
    /// Index of the last data entry (version 2: the frame ends right after it).
    pub last_data: Option<usize>,
}

impl CheckedTable {
    /// An empty table (no segment loaded yet).
    pub fn empty(layout: TableLayout) -> CheckedTable {
        CheckedTable {
            layout,
            bytes: Vec::new(),
            summary: TableSummary::default(),
        }
    }

    /// Checks every entry of `bytes`, a whole number of `layout` entries.
    pub fn check(layout: TableLayout, bytes: Vec<u8>) -> Result<CheckedTable, Error> {
        let len = layout.entry_len();
        if !bytes.len().is_multiple_of(len) {
            return Err(Error::ChunkEntry {
                index: (bytes.len() / len) as u64,
                reason: format!("a table of {} bytes ends inside an entry", bytes.len()),
            });
        }
        let mut summary = TableSummary::default();
        for (i, raw) in bytes.chunks_exact(len).enumerate() {
            let entry = layout.decode(raw, i as u64)?;
            if entry.kind == ChunkKind::Data {
                summary.stored_total += u64::from(entry.stored_len);
                summary.last_data = Some(i);
            }
        }
        Ok(CheckedTable {
            layout,
            bytes,
            summary,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / self.layout.entry_len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn summary(&self) -> TableSummary {
        self.summary
    }

    /// Entry `index` (checked by [`CheckedTable::check`]; an index past the end is an error).
    pub fn entry(&self, index: usize) -> Result<ChunkEntry, Error> {
        let len = self.layout.entry_len();
        let raw = self
            .bytes
            .get(index * len..(index + 1) * len)
            .ok_or_else(|| Error::ChunkEntry {
                index: index as u64,
                reason: format!("past the table's {} entries", self.len()),
            })?;
        self.layout.decode(raw, index as u64)
    }

    /// The buffer back, emptied, for the next table.
    pub fn into_buffer(self) -> Vec<u8> {
        let mut bytes = self.bytes;
        bytes.clear();
        bytes
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// Bytes stored in the body, compressed with `codec`.
    Data,
    /// `size` zero bytes; nothing is stored.
    Zero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    pub kind: ChunkKind,
    pub codec: Compression,
    pub stored_len: u32,
    pub size: u64,
    pub sha256: [u8; 32],
}

impl ChunkEntry {
    pub fn zero_run(size: u64) -> ChunkEntry {
        ChunkEntry {
            kind: ChunkKind::Zero,
            codec: Compression::None,
            stored_len: 0,
            size,
            sha256: [0; 32],
        }
    }

    /// Decodes and validates one entry; `index` only names it in errors.
    pub fn from_bytes(bytes: &[u8; ENTRY_LEN], index: u64) -> Result<ChunkEntry, Error> {
        let bad = |reason: String| Error::ChunkEntry { index, reason };
        let kind = match bytes[0] {
            0 => ChunkKind::Data,
            1 => ChunkKind::Zero,
            other => return Err(bad(format!("unknown kind {other}"))),
        };
        let codec = Compression::from_id(bytes[1])
            .ok_or_else(|| bad(format!("unknown codec {}", bytes[1])))?;
        if bytes[2] != 0 || bytes[3] != 0 {
            return Err(bad("reserved bytes are not zero".into()));
        }
        let stored_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let mut size_bytes = [0u8; 8];
        size_bytes.copy_from_slice(&bytes[8..16]);
        let size = u64::from_le_bytes(size_bytes);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[16..48]);
        let entry = ChunkEntry {
            kind,
            codec,
            stored_len,
            size,
            sha256,
        };
        entry.check().map_err(bad)?;
        Ok(entry)
    }

    /// A version 2 data entry: no codec and no stored length (the segment's frame stores it).
    pub fn framed_data(size: u32, sha256: [u8; 32]) -> ChunkEntry {
        ChunkEntry {
            kind: ChunkKind::Data,
            codec: Compression::None,
            stored_len: 0,
            size: u64::from(size),
            sha256,
        }
    }

    /// Decodes and validates one version 2 entry; `index` only names it in errors.
    pub fn from_framed_bytes(
        bytes: &[u8; FRAMED_ENTRY_LEN],
        index: u64,
    ) -> Result<ChunkEntry, Error> {
        let bad = |reason: String| Error::ChunkEntry { index, reason };
        let kind = match bytes[0] {
            0 => ChunkKind::Data,
            1 => ChunkKind::Zero,
            other => return Err(bad(format!("unknown kind {other}"))),
        };
        if bytes[1..4] != [0, 0, 0] {
            return Err(bad("reserved bytes are not zero".into()));
        }
        let size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&bytes[8..40]);
        let entry = match kind {
            ChunkKind::Data => ChunkEntry::framed_data(size, sha256),
            ChunkKind::Zero => ChunkEntry {
                sha256,
                ..ChunkEntry::zero_run(u64::from(size))
            },
        };
        entry.check_framed().map_err(bad)?;
        Ok(entry)
    }

    /// Encodes a version 2 entry. Zero runs longer than `u32::MAX` must have been split.
    pub fn to_framed_bytes(&self) -> [u8; FRAMED_ENTRY_LEN] {
        let mut out = [0u8; FRAMED_ENTRY_LEN];
        out[0] = match self.kind {
            ChunkKind::Data => 0,
            ChunkKind::Zero => 1,
        };
        out[4..8].copy_from_slice(&u32::try_from(self.size).unwrap_or(u32::MAX).to_le_bytes());
        out[8..40].copy_from_slice(&self.sha256);
        out
    }

    fn check_framed(&self) -> Result<(), String> {
        if self.size == 0 {
            return Err("size is zero".into());
        }
        match self.kind {
            ChunkKind::Zero if self.sha256 != [0; 32] => Err("a zero run must have no hash".into()),
            ChunkKind::Data if self.size > u64::from(limits::MAX_CHUNK_SIZE) => Err(format!(
                "data chunk of {} bytes exceeds {}",
                self.size,
                limits::bytes_text(limits::MAX_CHUNK_SIZE.into())
            )),
            _ => Ok(()),
        }
    }

    pub fn to_bytes(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0] = match self.kind {
            ChunkKind::Data => 0,
            ChunkKind::Zero => 1,
        };
        out[1] = self.codec.id();
        out[4..8].copy_from_slice(&self.stored_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.size.to_le_bytes());
        out[16..48].copy_from_slice(&self.sha256);
        out
    }

    fn check(&self) -> Result<(), String> {
        if self.size == 0 {
            return Err("size is zero".into());
        }
        match self.kind {
            ChunkKind::Zero => {
                if self.codec != Compression::None || self.stored_len != 0 || self.sha256 != [0; 32]
                {
                    return Err(
                        "a zero run must have codec none, no stored bytes and no hash".into(),
                    );
                }
                if self.size > limits::MAX_PAYLOAD_SIZE {
                    return Err(format!(
                        "zero run of {} bytes exceeds the payload limit",
                        self.size
                    ));
                }
            }
            ChunkKind::Data => {
                if self.size > u64::from(limits::MAX_CHUNK_SIZE) {
                    return Err(format!(
                        "data chunk of {} bytes exceeds {} bytes",
                        self.size,
                        limits::MAX_CHUNK_SIZE
                    ));
                }
                if u64::from(self.stored_len) > self.size || self.stored_len == 0 {
                    return Err(format!(
                        "stored length {} must be between 1 and the chunk size {}",
                        self.stored_len, self.size
                    ));
                }
                if self.codec == Compression::None && u64::from(self.stored_len) != self.size {
                    return Err("an uncompressed chunk must store exactly its size".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 data entry: 4 KiB stored as 100 bytes of zstd.
    fn per_chunk_data() -> ChunkEntry {
        ChunkEntry {
            kind: ChunkKind::Data,
            codec: Compression::Zstd,
            stored_len: 100,
            size: 4096,
            sha256: [7; 32],
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let data = per_chunk_data();
        assert_eq!(ChunkEntry::from_bytes(&data.to_bytes(), 0).unwrap(), data);
        let zero = ChunkEntry::zero_run(1 << 30);
        assert_eq!(ChunkEntry::from_bytes(&zero.to_bytes(), 0).unwrap(), zero);

        let mut bytes = data.to_bytes();
        bytes[0] = 9;
        assert!(
            ChunkEntry::from_bytes(&bytes, 3)
                .unwrap_err()
                .to_string()
                .contains("entry 3")
        );
        let mut bytes = data.to_bytes();
        bytes[4..8].copy_from_slice(&5000u32.to_le_bytes()); // stored > size
        assert!(ChunkEntry::from_bytes(&bytes, 0).is_err());
        let mut bytes = data.to_bytes();
        bytes[8..16].copy_from_slice(&(2u64 << 20).to_le_bytes()); // too large
        assert!(ChunkEntry::from_bytes(&bytes, 0).is_err());
        let mut bytes = zero.to_bytes();
        bytes[20] = 1; // zero run with a hash
        assert!(ChunkEntry::from_bytes(&bytes, 0).is_err());
        let mut bytes = data.to_bytes();
        bytes[1] = 0; // codec none but stored != size
        assert!(ChunkEntry::from_bytes(&bytes, 0).is_err());
    }

    #[test]
    fn framed_round_trip_and_validation() {
        let layout = TableLayout::Framed;
        let data = ChunkEntry::framed_data(4096, [7; 32]);
        let zero = ChunkEntry::zero_run(u64::from(u32::MAX));
        for entry in [data, zero] {
            let mut table = Vec::new();
            layout.encode(&entry, &mut table);
            assert_eq!(table.len(), FRAMED_ENTRY_LEN);
            assert_eq!(layout.decode(&table, 0).unwrap(), entry);
        }
        let mut bytes = data.to_framed_bytes();
        bytes[4..8].copy_from_slice(&(2u32 << 20).to_le_bytes()); // larger than a chunk
        assert!(ChunkEntry::from_framed_bytes(&bytes, 0).is_err());
        let mut bytes = data.to_framed_bytes();
        bytes[2] = 1; // reserved
        assert!(ChunkEntry::from_framed_bytes(&bytes, 0).is_err());
        let mut bytes = zero.to_framed_bytes();
        bytes[9] = 1; // zero run with a hash
        let err = ChunkEntry::from_framed_bytes(&bytes, 5).unwrap_err();
        assert!(err.to_string().contains("entry 5"), "{err}");
        let mut bytes = data.to_framed_bytes();
        bytes[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(ChunkEntry::from_framed_bytes(&bytes, 0).is_err());
        assert!(layout.decode(&[0u8; ENTRY_LEN], 0).is_err(), "wrong length");
    }

    #[test]
    fn checked_table_checks_every_entry_and_decodes_on_reach() {
        let layout = TableLayout::Framed;
        let entries = [
            ChunkEntry::framed_data(4096, [1; 32]),
            ChunkEntry::zero_run(8192),
            ChunkEntry::framed_data(100, [2; 32]),
            ChunkEntry::zero_run(4096),
        ];
        let mut bytes = Vec::new();
        for entry in &entries {
            layout.encode(entry, &mut bytes);
        }
        let table = CheckedTable::check(layout, bytes.clone()).unwrap();
        assert_eq!(table.len(), 4);
        assert_eq!(
            table.summary(),
            TableSummary {
                stored_total: 0,
                last_data: Some(2),
            }
        );
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(table.entry(i).unwrap(), *entry);
        }
        assert!(
            table
                .entry(4)
                .unwrap_err()
                .to_string()
                .contains("past the table")
        );
        assert!(table.into_buffer().is_empty());

        // A bad entry anywhere fails the whole table, naming it; so does a cut one.
        let mut bad = bytes.clone();
        bad[3 * FRAMED_ENTRY_LEN + 9] = 1; // zero run with a hash
        let err = CheckedTable::check(layout, bad).unwrap_err();
        assert!(err.to_string().contains("entry 3"), "{err}");
        let err = CheckedTable::check(layout, bytes[..bytes.len() - 1].to_vec()).unwrap_err();
        assert!(err.to_string().contains("ends inside an entry"), "{err}");

        // Version 1 sums what its data entries store.
        let v1 = per_chunk_data();
        let mut bytes = Vec::new();
        for entry in [v1, ChunkEntry::zero_run(4096), v1] {
            TableLayout::PerChunk.encode(&entry, &mut bytes);
        }
        let table = CheckedTable::check(TableLayout::PerChunk, bytes).unwrap();
        assert_eq!(table.summary().stored_total, 200);
        assert_eq!(table.summary().last_data, Some(2));
        assert!(CheckedTable::empty(layout).is_empty());
    }
}
