//! Which base blocks look like some new bytes, wherever they sit in the base.
//!
//! Every 4 KiB block is summarised by its content-defined anchors: a gear hash over the last 64
//! bytes, kept where its top [`ANCHOR_BITS`] bits are zero (one position in 32 on average, the
//! same positions in a file whatever its offset). A literal frame's base reference is the blocks
//! that share the most anchors with its content (and their neighbours, as changed content shifts
//! across block boundaries): the old versions of changed files even where the new image wrote them
//! in another order (pip does), which the position predicted from the last copy misses.
//!
//! Pure: bytes in, block offsets out. Memory: 8 bytes per anchor, about 90 MB for a 512 MiB base
//! with 350 MB of data (the builder's host or server, never a device).

use crate::index::BLOCK;
use std::collections::HashMap;

/// One anchor in 2^ANCHOR_BITS positions. Measured on the application-release pair
/// (`bench/delta-pairs.sh`), both with the neighbours' votes: one in 256 positions made 1.5 %
/// more patch than one in 32 (docs/bandwidth.md).
const ANCHOR_BITS: u32 = 5;
/// Bytes a gear hash depends on: positions before it in a block are not anchors.
const GEAR_SPAN: usize = 64;
/// Votes for a block that holds an anchor of the content, and for each of its neighbours.
const VOTE_HELD: u32 = 2;
const VOTE_NEIGHBOUR: u32 = 1;
/// The block of an anchor that several base blocks hold: it names none of them.
const AMBIGUOUS: u32 = u32::MAX;

const GEAR: [u64; 256] = gear_table();

/// A fixed table (splitmix64), the same on every host: patches are reproducible.
const fn gear_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state = 0u64;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
}

/// The anchor keys of one block; the hash starts afresh at the block's start, so a block has the
/// same anchors wherever it is.
fn anchors(block: &[u8], mut each: impl FnMut(u32)) {
    let mut hash = 0u64;
    for (i, &byte) in block.iter().enumerate() {
        hash = (hash << 1).wrapping_add(GEAR[byte as usize]);
        if i + 1 >= GEAR_SPAN && hash >> (64 - ANCHOR_BITS) == 0 {
            // The top bits are zero by selection: the key is the low half.
            each(hash as u32);
        }
    }
}

/// The anchors of a base image's non-zero 4 KiB blocks.
pub struct SimilarityIndex {
    /// (anchor key, block number), sorted by key; one entry per key.
    anchors: Vec<(u32, u32)>,
    /// Which blocks hold data (a zero block is never worth reference bytes).
    data: Vec<bool>,
}

impl SimilarityIndex {
    pub fn of_image(image: &[u8]) -> SimilarityIndex {
        let mut entries = Vec::new();
        let mut data = vec![false; image.len() / BLOCK];
        for (i, block) in image.chunks_exact(BLOCK).enumerate() {
            if block.iter().all(|b| *b == 0) {
                continue;
            }
            data[i] = true;
            anchors(block, |key| entries.push((key, i as u32)));
        }
        entries.sort_unstable();
        // One entry per key, in place: the block when only one holds it, else AMBIGUOUS.
        let mut kept = 0;
        for i in 0..entries.len() {
            let (key, block) = entries[i];
            if kept > 0 && entries[kept - 1].0 == key {
                if entries[kept - 1].1 != block {
                    entries[kept - 1].1 = AMBIGUOUS;
                }
            } else {
                entries[kept] = (key, block);
                kept += 1;
            }
        }
        entries.truncate(kept);
        SimilarityIndex {
            anchors: entries,
            data,
        }
    }

    fn block_of(&self, key: u32) -> Option<u32> {
        let at = self.anchors.binary_search_by_key(&key, |e| e.0).ok()?;
        Some(self.anchors[at].1).filter(|&block| block != AMBIGUOUS)
    }

    /// Up to `cap` offsets of the base blocks most like `content` (4 KiB blocks), in base order.
    pub fn similar_blocks<'a>(
        &self,
        content: impl Iterator<Item = &'a [u8]>,
        cap: usize,
    ) -> Vec<u64> {
        let mut votes: HashMap<u32, u32> = HashMap::new();
        for block in content {
            anchors(block, |key| {
                let Some(held) = self.block_of(key) else {
                    return;
                };
                *votes.entry(held).or_default() += VOTE_HELD;
                for neighbour in [held.wrapping_sub(1), held + 1] {
                    if self.data.get(neighbour as usize) == Some(&true) {
                        *votes.entry(neighbour).or_default() += VOTE_NEIGHBOUR;
                    }
                }
            });
        }
        let mut ranked: Vec<(u32, u32)> = votes.into_iter().collect();
        // Most votes first; ties to the lower block, so the choice is reproducible.
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(cap);
        let mut offsets: Vec<u64> = ranked
            .into_iter()
            .map(|(block, _)| u64::from(block) * BLOCK as u64)
            .collect();
        offsets.sort_unstable();
        offsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that do not repeat.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        rustupdate_testkit::pseudo_random(len, seed)
    }

    #[test]
    fn a_changed_block_finds_its_old_version_wherever_it_sits() {
        // Base: 64 blocks of unrelated data; block 40 is the old version of the new block.
        let mut base = noise(1, 64 * BLOCK);
        let old = noise(7, BLOCK);
        base[40 * BLOCK..41 * BLOCK].copy_from_slice(&old);
        // The new version: the old one with 100 bytes inserted near the front (shifted).
        let mut new = old[..300].to_vec();
        new.extend_from_slice(&noise(9, 100));
        new.extend_from_slice(&old[300..BLOCK - 100]);
        let index = SimilarityIndex::of_image(&base);
        let found = index.similar_blocks(std::iter::once(&new[..]), 1);
        assert_eq!(found, vec![40 * BLOCK as u64]);
        // With room for more, the neighbours come along (they may hold the shifted-out bytes).
        let found = index.similar_blocks(std::iter::once(&new[..]), 3);
        assert_eq!(found, [39u64, 40, 41].map(|b| b * BLOCK as u64).to_vec());
    }

    #[test]
    fn zero_blocks_and_unrelated_content_are_never_chosen() {
        let mut base = noise(3, 8 * BLOCK);
        base[2 * BLOCK..3 * BLOCK].fill(0);
        let index = SimilarityIndex::of_image(&base);
        // A copy of block 1: its neighbour 2 is zero and is not offered.
        let found = index.similar_blocks(std::iter::once(&base[BLOCK..2 * BLOCK]), 8);
        assert_eq!(found, vec![0, BLOCK as u64]);
        let unrelated = noise(11, BLOCK);
        assert!(
            index
                .similar_blocks(std::iter::once(&unrelated[..]), 8)
                .is_empty()
        );
    }

    #[test]
    fn content_many_blocks_hold_names_none_of_them() {
        let block = noise(5, BLOCK);
        let mut base = block.repeat(4);
        base.extend_from_slice(&noise(6, BLOCK));
        let index = SimilarityIndex::of_image(&base);
        assert!(
            index
                .similar_blocks(std::iter::once(&block[..]), 8)
                .is_empty()
        );
    }
}
