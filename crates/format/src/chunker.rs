//! Cutting an image into chunks.
//!
//! The image is first split into all-zero runs and non-zero extents at a granule of
//! [`ZERO_GRANULE`](crate::limits::ZERO_GRANULE) (4 KiB, the ext4 block): a zero run becomes one
//! table entry with no payload, so the unused part of a sparse filesystem image costs 48 bytes.
//! Non-zero extents are cut by the artifact's [`Chunking`]: fixed-size blocks aligned to the image
//! start, or FastCDC content-defined chunks. The default is chosen by measurement; see
//! `docs/artifact-format.md`.
//!
//! [`Chunker::next_cut`] is pure: it looks at a window of the image and says how long the next
//! chunk is, or that it needs more bytes. Callers keep at least [`Chunker::WINDOW`] bytes buffered
//! unless they are at the end of the image.

use crate::{Error, limits};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const GRANULE: usize = limits::ZERO_GRANULE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Blocks of `size` bytes aligned to multiples of `size` from the image start.
    Fixed { size: u32 },
    /// FastCDC (2020) with minimum, average and maximum chunk sizes.
    FastCdc { min: u32, avg: u32, max: u32 },
}

impl Default for Chunking {
    /// Fixed 4 KiB blocks: the filesystem block size, which keeps matching across image versions
    /// when files move (measured in `bench/README.md`).
    fn default() -> Self {
        Chunking::Fixed { size: 4096 }
    }
}

impl Chunking {
    pub fn validate(&self) -> Result<(), Error> {
        let max_chunk = limits::MAX_CHUNK_SIZE;
        let ok = match *self {
            Chunking::Fixed { size } => (512..=max_chunk).contains(&size),
            Chunking::FastCdc { min, avg, max } => {
                min >= 64
                    && avg >= 256
                    && max >= 1024
                    && min <= avg
                    && avg <= max
                    && max <= max_chunk
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Chunking(self.to_string()))
        }
    }

    /// Largest data chunk this chunking produces.
    pub fn max_chunk(&self) -> usize {
        match *self {
            Chunking::Fixed { size } => size as usize,
            Chunking::FastCdc { max, .. } => max as usize,
        }
    }
}

impl fmt::Display for Chunking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunking::Fixed { size } => write!(f, "fixed:{size}"),
            Chunking::FastCdc { min, avg, max } => write!(f, "fastcdc:{min}:{avg}:{max}"),
        }
    }
}

impl FromStr for Chunking {
    type Err = Error;

    /// `fixed:SIZE` or `fastcdc:MIN:AVG:MAX` (bytes).
    fn from_str(text: &str) -> Result<Chunking, Error> {
        let bad = || Error::Chunking(text.to_string());
        let mut parts = text.split(':');
        let kind = parts.next().ok_or_else(bad)?;
        let numbers: Vec<u32> = parts
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let chunking = match (kind, numbers.as_slice()) {
            ("fixed", [size]) => Chunking::Fixed { size: *size },
            ("fastcdc", [min, avg, max]) => Chunking::FastCdc {
                min: *min,
                avg: *avg,
                max: *max,
            },
            _ => return Err(bad()),
        };
        chunking.validate()?;
        Ok(chunking)
    }
}

impl Serialize for Chunking {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Chunking {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The next piece of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// `n` zero bytes (whole granules, or the tail of the image).
    Zero(usize),
    /// A data chunk of `n` bytes.
    Data(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    chunking: Chunking,
}

impl Chunker {
    /// Bytes a caller must have buffered (unless at the end of the image) for `next_cut` to decide.
    pub const WINDOW: usize = limits::MAX_CHUNK_SIZE as usize + GRANULE;

    pub fn new(chunking: Chunking) -> Result<Chunker, Error> {
        chunking.validate()?;
        Ok(Chunker { chunking })
    }

    /// Length of the next chunk of `data`, which starts at image offset `offset`. `at_eof` says
    /// that `data` runs to the end of the image. Returns `None` when `data` is empty, or when it
    /// is shorter than [`Self::WINDOW`] and more bytes are needed to decide.
    pub fn next_cut(&self, data: &[u8], offset: u64, at_eof: bool) -> Option<Cut> {
        if data.is_empty() {
            return None;
        }
        let to_boundary = GRANULE - (offset % GRANULE as u64) as usize;
        if to_boundary == GRANULE {
            let zero_len = zero_prefix(data, at_eof);
            if zero_len > 0 {
                return Some(Cut::Zero(zero_len));
            }
        }
        let limit = self.chunk_limit(offset).min(data.len());
        // The data extent ends at the first aligned all-zero granule after `offset`.
        let mut extent = to_boundary.min(data.len());
        let mut ended_by_zero = false;
        while extent < limit {
            let granule_end = (extent + GRANULE).min(data.len());
            let granule = &data[extent..granule_end];
            if (granule.len() == GRANULE || at_eof) && is_zero(granule) {
                ended_by_zero = true;
                break;
            }
            extent = granule_end;
        }
        let extent = extent.min(limit);
        let decided = ended_by_zero || at_eof || extent >= self.chunk_limit(offset);
        if !decided {
            return None;
        }
        let len = match self.chunking {
            Chunking::Fixed { .. } => extent,
            Chunking::FastCdc { min, avg, max } => {
                fastcdc::v2020::FastCDC::new(&data[..extent], min, avg, max)
                    .next()
                    .map_or(extent, |chunk| chunk.length)
            }
        };
        Some(Cut::Data(len))
    }

    fn chunk_limit(&self, offset: u64) -> usize {
        match self.chunking {
            Chunking::Fixed { size } => (u64::from(size) - offset % u64::from(size)) as usize,
            Chunking::FastCdc { max, .. } => max as usize,
        }
    }
}

/// Length of the all-zero prefix made of whole granules (plus a zero tail at the end of the image).
fn zero_prefix(data: &[u8], at_eof: bool) -> usize {
    let mut len = 0;
    while len < data.len() {
        let end = (len + GRANULE).min(data.len());
        let granule = &data[len..end];
        if (granule.len() < GRANULE && !at_eof) || !is_zero(granule) {
            break;
        }
        len = end;
    }
    len
}

/// Branch-free OR over the bytes: vectorises well, faster than an early-exit scan for 4 KiB.
pub fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_all(chunking: Chunking, image: &[u8]) -> Vec<Cut> {
        let chunker = Chunker::new(chunking).unwrap();
        let mut cuts = Vec::new();
        let mut offset = 0usize;
        // Feed a sliding window no larger than WINDOW to exercise the "need more" path.
        while offset < image.len() {
            let end = (offset + Chunker::WINDOW).min(image.len());
            let at_eof = end == image.len();
            let cut = chunker
                .next_cut(&image[offset..end], offset as u64, at_eof)
                .unwrap();
            let len = match cut {
                Cut::Zero(n) | Cut::Data(n) => n,
            };
            assert!(len > 0);
            offset += len;
            cuts.push(cut);
        }
        cuts
    }

    fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
        rustupdate_testkit::pseudo_random(len, seed.into())
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            "fixed:4096".parse::<Chunking>().unwrap(),
            Chunking::Fixed { size: 4096 }
        );
        let cdc: Chunking = "fastcdc:4096:16384:65536".parse().unwrap();
        assert_eq!(cdc.to_string(), "fastcdc:4096:16384:65536");
        for bad in [
            "fixed",
            "fixed:1",
            "fixed:99999999",
            "fastcdc:1:2:3",
            "cdc:1",
            "fastcdc:9000:4096:65536",
            "",
        ] {
            assert!(bad.parse::<Chunking>().is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_runs_are_coalesced_and_data_is_aligned() {
        let mut image = vec![0u8; 64 * 1024];
        image.extend(pseudo_random(10_000, 1));
        image.extend(vec![0u8; 3 * 4096 - 10_000 % 4096]);
        image.extend(vec![0u8; 1 << 20]);
        image.extend(pseudo_random(100, 2));
        let cuts = cut_all(Chunking::Fixed { size: 4096 }, &image);
        assert_eq!(cuts[0], Cut::Zero(64 * 1024));
        assert_eq!(
            &cuts[1..4],
            &[Cut::Data(4096), Cut::Data(4096), Cut::Data(4096)]
        );
        // The rest of the third granule is zero but shares a granule with data: stays data above.
        let zeros: usize = cuts
            .iter()
            .filter_map(|c| if let Cut::Zero(n) = c { Some(*n) } else { None })
            .sum();
        let total: usize = cuts
            .iter()
            .map(|c| match c {
                Cut::Zero(n) | Cut::Data(n) => *n,
            })
            .sum();
        assert_eq!(total, image.len());
        assert!(zeros >= (1 << 20) + 64 * 1024);
        assert_eq!(*cuts.last().unwrap(), Cut::Data(100));
    }

    #[test]
    fn fastcdc_cuts_stay_in_bounds_and_resynchronise() {
        let chunking = Chunking::FastCdc {
            min: 2048,
            avg: 8192,
            max: 32768,
        };
        let base = pseudo_random(512 * 1024, 7);
        let mut shifted = pseudo_random(1000, 9);
        shifted.extend_from_slice(&base);
        let a = cut_all(chunking, &base);
        let b = cut_all(chunking, &shifted);
        for cut in a.iter().chain(&b) {
            let Cut::Data(n) = cut else {
                panic!("no zeros in random data")
            };
            assert!(*n <= 32768);
        }
        // Content-defined: after the inserted prefix the cut points line up again.
        let lens = |cuts: &[Cut]| {
            cuts.iter()
                .map(|c| match c {
                    Cut::Data(n) | Cut::Zero(n) => *n,
                })
                .collect::<Vec<_>>()
        };
        let (la, lb) = (lens(&a), lens(&b));
        let common = la
            .iter()
            .rev()
            .zip(lb.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(
            common + 3 >= la.len(),
            "only {common} of {} chunks matched",
            la.len()
        );
    }

    #[test]
    fn needs_more_data_before_the_window_is_full() {
        let chunker = Chunker::new(Chunking::FastCdc {
            min: 2048,
            avg: 8192,
            max: 32768,
        })
        .unwrap();
        let data = pseudo_random(10_000, 3);
        assert_eq!(chunker.next_cut(&data, 0, false), None);
        assert!(matches!(
            chunker.next_cut(&data, 0, true),
            Some(Cut::Data(_))
        ));
        assert_eq!(chunker.next_cut(&[], 0, true), None);
    }
}
