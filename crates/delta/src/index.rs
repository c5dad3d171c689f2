//! A device's block index (`.ruindex`): what a device holds, without the bytes. For every 4 KiB
//! block of a slot from offset 0, the first 8 bytes of its sha256. A patch made against an index
//! ("any base": the builder knows the device's blocks by hash only) copies the blocks it names and
//! sends everything else; the device still checks every rebuilt chunk against the signed tables,
//! so a wrong guess (a stale index, a prefix collision) can only make the patch fail and fall back.
//!
//! ```text
//! 0   [8]  magic 89 52 55 49 0d 0a 1a 0a ("\x89RUI\r\n\x1a\n")
//! 8   u16  index version (1)
//! 10  u16  reserved, zero
//! 12  u32  block size (4096)
//! 16  u64  block count
//! 24  one zstd frame: block count x 8 bytes (sha256 prefixes, in block order)
//! ```
//!
//! 8 bytes a block: 1 MiB for a 512 MiB slot before compression (zero blocks repeat and compress
//! away). Pure: it hashes any [`Read`] and encodes to bytes.

use sha2::{Digest, Sha256};
use std::io::Read;

pub const MAGIC: [u8; 8] = *b"\x89RUI\r\n\x1a\n";
pub const INDEX_VERSION: u16 = 1;
pub const BLOCK: usize = 4096;
const HEADER_LEN: usize = 24;
/// Most blocks an index describes: 1 TiB of slot.
pub const MAX_BLOCKS: u64 = 1 << 28;

/// The sha256 prefix an index keeps per block.
pub type BlockKey = [u8; 8];

pub fn block_key(block: &[u8]) -> BlockKey {
    let digest = Sha256::digest(block);
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    key
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIndex {
    pub keys: Vec<BlockKey>,
}

impl BlockIndex {
    /// Indexes `len` bytes of `slot` (a trailing partial block counts as a block).
    pub fn of<R: Read>(slot: &mut R, len: u64) -> std::io::Result<BlockIndex> {
        let mut keys = Vec::with_capacity(len.div_ceil(BLOCK as u64) as usize);
        let mut block = vec![0u8; BLOCK];
        let mut left = len;
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            slot.read_exact(&mut block[..n])?;
            keys.push(block_key(&block[..n]));
            left -= n as u64;
        }
        Ok(BlockIndex { keys })
    }

    /// Bytes of slot the index covers.
    pub fn size(&self) -> u64 {
        self.keys.len() as u64 * BLOCK as u64
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut raw = Vec::with_capacity(self.keys.len() * 8);
        for key in &self.keys {
            raw.extend_from_slice(key);
        }
        // Level 3: a device makes the index, and level 19 takes more memory than an install.
        let packed = zstd::bulk::compress(&raw, 3).map_err(|err| err.to_string())?;
        let mut out = Vec::with_capacity(HEADER_LEN + packed.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(BLOCK as u32).to_le_bytes());
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        out.extend_from_slice(&packed);
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<BlockIndex, String> {
        if bytes.len() < HEADER_LEN || bytes[..8] != MAGIC {
            return Err("not a rustupdate block index (bad magic bytes)".into());
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        let block = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let count = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or([0; 8]));
        if version != INDEX_VERSION || bytes[10..12] != [0, 0] || block as usize != BLOCK {
            return Err(format!(
                "unsupported index (version {version}, block size {block})"
            ));
        }
        if count > MAX_BLOCKS {
            return Err(format!("an index of {count} blocks"));
        }
        let raw = zstd::bulk::decompress(&bytes[HEADER_LEN..], count as usize * 8 + 1)
            .map_err(|err| format!("the index does not decompress: {err}"))?;
        if raw.len() as u64 != count * 8 {
            return Err("the index holds another number of blocks than it says".into());
        }
        let keys = raw
            .chunks_exact(8)
            .map(|k| {
                let mut key = [0u8; 8];
                key.copy_from_slice(k);
                key
            })
            .collect();
        Ok(BlockIndex { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut slot = vec![0u8; 5 * BLOCK + 100];
        slot[BLOCK + 3] = 7;
        let index = BlockIndex::of(&mut &slot[..], slot.len() as u64).unwrap();
        assert_eq!(index.keys.len(), 6);
        assert_eq!(index.keys[0], index.keys[2]);
        assert_ne!(index.keys[0], index.keys[1]);
        let bytes = index.to_bytes().unwrap();
        assert_eq!(BlockIndex::from_bytes(&bytes).unwrap(), index);
        let mut bad = bytes.clone();
        bad[16] = 9; // claims more blocks
        assert!(BlockIndex::from_bytes(&bad).is_err());
        assert!(BlockIndex::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(BlockIndex::from_bytes(b"not an index at all, really no").is_err());
    }
}
