//! Hashing, compressing, tabulating and decoding the chunks of one strategy.
//!
//! Everything timed here runs on one thread, reusing one zstd context, as a device would. Only
//! [`compress_parallel`] (the informational high-level pass) uses several threads.

use crate::segment::{self, Extent, Piece, Strategy};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::io;
use std::time::{Duration, Instant};

pub type Digest = [u8; 32];

/// Size of one chunk table entry in `crates/format`.
pub const ENTRY_LEN: usize = 48;
const KIND_DATA: u8 = 0;
const KIND_ZERO: u8 = 1;
const CODEC_NONE: u8 = 0;
const CODEC_ZSTD: u8 = 1;

/// An image cut into pieces, with the sha256 of every data piece.
#[derive(Debug)]
pub struct Index {
    pub pieces: Vec<Piece>,
    /// One per data piece, in order.
    pub hashes: Vec<Digest>,
    pub cut_time: Duration,
    pub hash_time: Duration,
}

impl Index {
    pub fn data_pieces(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.pieces.iter().filter_map(|p| match *p {
            Piece::Data { offset, len } => Some((offset, len)),
            Piece::Zero { .. } => None,
        })
    }

    pub fn data_count(&self) -> usize {
        self.hashes.len()
    }

    pub fn zero_count(&self) -> usize {
        self.pieces.len() - self.hashes.len()
    }

    pub fn hash_set(&self) -> HashSet<Digest> {
        self.hashes.iter().copied().collect()
    }
}

/// Cuts and hashes `image`, timing both steps.
pub fn index(image: &[u8], extents: &[Extent], strategy: Strategy) -> Index {
    let start = Instant::now();
    let pieces = segment::cut(image, extents, strategy);
    let cut_time = start.elapsed();
    let start = Instant::now();
    let hashes = pieces
        .iter()
        .filter_map(|p| match *p {
            Piece::Data { offset, len } => {
                Some(Sha256::digest(&image[offset..offset + len]).into())
            }
            Piece::Zero { .. } => None,
        })
        .collect();
    let hash_time = start.elapsed();
    Index {
        pieces,
        hashes,
        cut_time,
        hash_time,
    }
}

/// How one data chunk is stored: zstd, or raw when compression does not make it smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub len: u32,
    pub zstd: bool,
}

/// The stored bytes of every data chunk of an index, back to back.
#[derive(Debug)]
pub struct Payload {
    pub bytes: Vec<u8>,
    pub stored: Vec<Stored>,
    pub time: Duration,
}

impl Payload {
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// Compresses every data chunk on its own at `level`, with `dictionary` when it is not empty,
/// single-threaded with one reused context.
pub fn compress(image: &[u8], index: &Index, level: i32, dictionary: &[u8]) -> io::Result<Payload> {
    let start = Instant::now();
    let mut compressor = zstd::bulk::Compressor::with_dictionary(level, dictionary)?;
    let mut scratch = Vec::new();
    let mut bytes = Vec::new();
    let mut stored = Vec::with_capacity(index.data_count());
    for (offset, len) in index.data_pieces() {
        let chunk = &image[offset..offset + len];
        let s = store(&mut compressor, chunk, &mut scratch)?;
        bytes.extend_from_slice(if s.zstd { &scratch } else { chunk });
        stored.push(s);
    }
    Ok(Payload {
        bytes,
        stored,
        time: start.elapsed(),
    })
}

/// Like [`compress`] without a dictionary, on all cores (for the slow high levels); `time` is
/// the wall time.
pub fn compress_parallel(image: &[u8], index: &Index, level: i32) -> io::Result<Payload> {
    let start = Instant::now();
    let chunks: Vec<(usize, usize)> = index.data_pieces().collect();
    let frames: Vec<(Stored, Vec<u8>)> = chunks
        .par_iter()
        .map_init(
            || (zstd::bulk::Compressor::new(level), Vec::new()),
            |(compressor, scratch), &(offset, len)| {
                let chunk = &image[offset..offset + len];
                let c = compressor
                    .as_mut()
                    .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
                let s = store(c, chunk, scratch)?;
                Ok((
                    s,
                    if s.zstd {
                        scratch.clone()
                    } else {
                        chunk.to_vec()
                    },
                ))
            },
        )
        .collect::<io::Result<_>>()?;
    let mut bytes = Vec::with_capacity(frames.iter().map(|(s, _)| s.len as usize).sum());
    let mut stored = Vec::with_capacity(frames.len());
    for (s, frame) in frames {
        bytes.extend_from_slice(&frame);
        stored.push(s);
    }
    Ok(Payload {
        bytes,
        stored,
        time: start.elapsed(),
    })
}

fn store(
    compressor: &mut zstd::bulk::Compressor<'_>,
    chunk: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<Stored> {
    scratch.clear();
    scratch.reserve(zstd::zstd_safe::compress_bound(chunk.len()));
    let n = compressor.compress_to_buffer(chunk, scratch)?;
    Ok(if n < chunk.len() {
        Stored {
            len: n as u32,
            zstd: true,
        }
    } else {
        Stored {
            len: chunk.len() as u32,
            zstd: false,
        }
    })
}

/// The chunk table of `index` in the byte layout of `crates/format` (48 bytes per entry).
pub fn table(index: &Index, stored: &[Stored]) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.pieces.len() * ENTRY_LEN);
    let mut data = index.hashes.iter().zip(stored);
    for piece in &index.pieces {
        let mut entry = [0u8; ENTRY_LEN];
        entry[8..16].copy_from_slice(&piece.len().to_le_bytes());
        match piece {
            Piece::Zero { .. } => entry[0] = KIND_ZERO,
            Piece::Data { .. } => {
                // Invariant: `index.hashes` and `stored` have one element per data piece.
                let Some((hash, s)) = data.next() else { break };
                entry[0] = KIND_DATA;
                entry[1] = if s.zstd { CODEC_ZSTD } else { CODEC_NONE };
                entry[4..8].copy_from_slice(&s.len.to_le_bytes());
                entry[16..48].copy_from_slice(hash);
            }
        }
        out.extend_from_slice(&entry);
    }
    out
}

/// What a device that holds `have` must download of `index`'s data chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub chunks: usize,
    pub raw: u64,
    pub stored: u64,
}

/// Sums the chunks of `index` whose hash is neither in `have` nor earlier in `index` itself.
pub fn delta(have: &HashSet<Digest>, index: &Index, stored: &[Stored]) -> Delta {
    let mut seen = HashSet::new();
    let mut d = Delta::default();
    for ((hash, s), (_, len)) in index.hashes.iter().zip(stored).zip(index.data_pieces()) {
        if !have.contains(hash) && seen.insert(*hash) {
            d.chunks += 1;
            d.raw += len as u64;
            d.stored += u64::from(s.len);
        }
    }
    d
}

/// Decode throughput of a payload: median wall time over `reps` runs of decompressing every
/// chunk into one reused buffer, without and with the sha256 check of each chunk.
#[derive(Debug, Clone, Copy)]
pub struct DecodeTimes {
    pub decompress: Duration,
    pub decompress_verify: Duration,
}

pub fn decode(
    payload: &Payload,
    index: &Index,
    dictionary: &[u8],
    reps: usize,
) -> io::Result<DecodeTimes> {
    let max = index.data_pieces().map(|(_, len)| len).max().unwrap_or(0);
    let mut decompressor = zstd::bulk::Decompressor::with_dictionary(dictionary)?;
    let mut buf = Vec::with_capacity(max);
    let mut run = |verify: bool| -> io::Result<Duration> {
        let start = Instant::now();
        let mut pos = 0usize;
        for (s, hash) in payload.stored.iter().zip(&index.hashes) {
            let frame = &payload.bytes[pos..pos + s.len as usize];
            pos += s.len as usize;
            if s.zstd {
                buf.clear();
                decompressor.decompress_to_buffer(frame, &mut buf)?;
            } else {
                buf.clear();
                buf.extend_from_slice(frame);
            }
            if verify && Sha256::digest(&buf).as_slice() != hash {
                return Err(io::Error::other("chunk hash mismatch after decompression"));
            }
        }
        Ok(start.elapsed())
    };
    Ok(DecodeTimes {
        decompress: median((0..reps).map(|_| run(false)).collect::<io::Result<_>>()?),
        decompress_verify: median((0..reps).map(|_| run(true)).collect::<io::Result<_>>()?),
    })
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Trains a zstd dictionary of at most `max_size` bytes on data chunks of `index` picked evenly
/// through the image, about 100 times `max_size` of them (zstd's rule of thumb).
pub fn train_dictionary(image: &[u8], index: &Index, max_size: usize) -> io::Result<Vec<u8>> {
    let data: u64 = index.data_pieces().map(|(_, len)| len as u64).sum();
    let stride = (data / (100 * max_size as u64).max(1)).max(1) as usize;
    let samples: Vec<&[u8]> = index
        .data_pieces()
        .step_by(stride)
        .map(|(offset, len)| &image[offset..offset + len])
        .collect();
    zstd::dict::from_samples(&samples, max_size)
}

/// Compressed size of `bytes` at `level` (one frame).
pub fn zstd_len(bytes: &[u8], level: i32) -> io::Result<u64> {
    Ok(zstd::bulk::compress(bytes, level)?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::extents;

    fn sample() -> Vec<u8> {
        let mut image = vec![0u8; 8192];
        image.extend((0..40_000u32).map(|i| (i * 7 % 251) as u8));
        image.extend(vec![0u8; 4096 * 3]);
        image
    }

    #[test]
    fn table_has_one_entry_per_piece_and_decodes() {
        let img = sample();
        let idx = index(&img, &extents(&img), Strategy::Fixed { size: 4096 });
        let payload = compress(&img, &idx, 3, &[]).unwrap();
        let t = table(&idx, &payload.stored);
        assert_eq!(t.len(), idx.pieces.len() * ENTRY_LEN);
        assert_eq!(t[0], KIND_ZERO);
        assert_eq!(u64::from_le_bytes(t[8..16].try_into().unwrap()), 8192);
        assert_eq!(t[ENTRY_LEN], KIND_DATA);
        let times = decode(&payload, &idx, &[], 1).unwrap();
        assert!(times.decompress_verify >= Duration::ZERO);
    }

    #[test]
    fn delta_counts_new_chunks_once() {
        let img = sample();
        let ext = extents(&img);
        let s = Strategy::Fixed { size: 4096 };
        let idx = index(&img, &ext, s);
        let payload = compress(&img, &idx, 3, &[]).unwrap();
        assert_eq!(
            delta(&idx.hash_set(), &idx, &payload.stored),
            Delta::default()
        );
        let d = delta(&HashSet::new(), &idx, &payload.stored);
        let unique: HashSet<_> = idx.hashes.iter().collect();
        assert_eq!(d.chunks, unique.len());
        assert!(d.stored <= payload.len());
    }

    #[test]
    fn incompressible_chunks_are_stored_raw() {
        let mut x = 12345u32;
        let img: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let idx = index(&img, &extents(&img), Strategy::Fixed { size: 4096 });
        let payload = compress(&img, &idx, 3, &[]).unwrap();
        assert_eq!(
            payload.stored,
            vec![Stored {
                len: 4096,
                zstd: false
            }]
        );
        let parallel = compress_parallel(&img, &idx, 19).unwrap();
        assert_eq!(parallel.stored, payload.stored);
        assert_eq!(parallel.bytes, payload.bytes);
    }
}
