//! Cutting an image into chunk table entries.
//!
//! The image is first split into all-zero runs and non-zero extents at a 4 KiB granule (the ext4
//! block); every zero run becomes one entry without payload. Non-zero extents are then cut by the
//! strategy. This mirrors `Chunker` in `crates/format` (fixed blocks aligned to multiples of their
//! size from the image start, cut short where a zero granule begins; FastCDC restarted at every
//! extent), so the numbers measured here are the numbers that crate would produce.
//!
//! [`Strategy::FixedWhole`] is the simpler variant in which a fixed block joins a zero run only
//! when the whole block is zero; it is measured for comparison and not used by `crates/format`.

use std::fmt;
use std::str::FromStr;

/// Granule at which zero runs are detected.
pub const GRANULE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Zero granules first, then blocks of `size` aligned to multiples of `size`.
    Fixed { size: usize },
    /// Blocks of `size`; a block is a zero run only when all of it is zero.
    FixedWhole { size: usize },
    /// FastCDC 2020 over each non-zero extent.
    FastCdc { min: u32, avg: u32, max: u32 },
}

impl Strategy {
    /// The strategies of the study: fixed 4/16/64 KiB, FastCDC with average 8/16/32 KiB
    /// (min = avg / 4, max = avg * 4), and the whole-block zero variant of fixed 16/64 KiB.
    pub fn defaults() -> Vec<Strategy> {
        let mut all: Vec<Strategy> = [4, 16, 64]
            .iter()
            .map(|k| Strategy::Fixed { size: k * 1024 })
            .collect();
        all.extend([8u32, 16, 32].iter().map(|k| Strategy::fastcdc(k * 1024)));
        all.extend(
            [16, 64]
                .iter()
                .map(|k| Strategy::FixedWhole { size: k * 1024 }),
        );
        all
    }

    pub fn fastcdc(avg: u32) -> Strategy {
        Strategy::FastCdc {
            min: avg / 4,
            avg,
            max: avg * 4,
        }
    }

    /// Human-readable name for reports.
    pub fn label(&self) -> String {
        match *self {
            Strategy::Fixed { size } => format!("fixed {}", kib(size as u64)),
            Strategy::FixedWhole { size } => {
                format!("fixed {}, whole-block zero", kib(size as u64))
            }
            Strategy::FastCdc { avg, .. } => format!("FastCDC avg {}", kib(u64::from(avg))),
        }
    }
}

fn kib(bytes: u64) -> String {
    format!("{} KiB", bytes / 1024)
}

/// The spelling of `crates/format` (`fixed:SIZE`, `fastcdc:MIN:AVG:MAX`), plus `fixed-whole:SIZE`.
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Fixed { size } => write!(f, "fixed:{size}"),
            Strategy::FixedWhole { size } => write!(f, "fixed-whole:{size}"),
            Strategy::FastCdc { min, avg, max } => write!(f, "fastcdc:{min}:{avg}:{max}"),
        }
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Strategy, String> {
        let bad =
            || format!("bad strategy {text:?} (fixed:SIZE, fixed-whole:SIZE, fastcdc:MIN:AVG:MAX)");
        let mut parts = text.split(':');
        let kind = parts.next().ok_or_else(bad)?;
        let numbers: Vec<u32> = parts
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let strategy = match (kind, numbers.as_slice()) {
            ("fixed", [size]) => Strategy::Fixed {
                size: *size as usize,
            },
            ("fixed-whole", [size]) => Strategy::FixedWhole {
                size: *size as usize,
            },
            ("fastcdc", [min, avg, max]) => Strategy::FastCdc {
                min: *min,
                avg: *avg,
                max: *max,
            },
            _ => return Err(bad()),
        };
        let valid = match strategy {
            Strategy::Fixed { size } | Strategy::FixedWhole { size } => {
                (512..=1 << 20).contains(&size)
            }
            Strategy::FastCdc { min, avg, max } => {
                min >= 64 && avg >= 256 && max >= 1024 && min <= avg && avg <= max && max <= 1 << 20
            }
        };
        if valid { Ok(strategy) } else { Err(bad()) }
    }
}

/// One chunk table entry before hashing: a zero run or a data chunk, by position in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Zero { len: u64 },
    Data { offset: usize, len: usize },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match *self {
            Piece::Zero { len } => len,
            Piece::Data { len, .. } => len as u64,
        }
    }
}

/// A maximal run of zero granules, or the non-zero bytes between two such runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: usize,
    pub end: usize,
    pub zero: bool,
}

/// Splits `image` into zero runs (whole granules; a short tail counts if it is zero) and
/// non-zero extents, in order, covering every byte.
pub fn extents(image: &[u8]) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    for (i, granule) in image.chunks(GRANULE).enumerate() {
        let start = i * GRANULE;
        let end = start + granule.len();
        let zero = is_zero(granule);
        match out.last_mut() {
            Some(last) if last.zero == zero => last.end = end,
            _ => out.push(Extent { start, end, zero }),
        }
    }
    out
}

/// Branch-free OR over the bytes: vectorises well.
pub fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

/// Cuts `image` (already split into `extents`) with `strategy`.
pub fn cut(image: &[u8], extents: &[Extent], strategy: Strategy) -> Vec<Piece> {
    let mut pieces = Vec::new();
    match strategy {
        Strategy::FixedWhole { size } => cut_fixed_whole(image, size, &mut pieces),
        Strategy::Fixed { size } => {
            for e in extents {
                if e.zero {
                    pieces.push(Piece::Zero {
                        len: (e.end - e.start) as u64,
                    });
                    continue;
                }
                let mut offset = e.start;
                while offset < e.end {
                    let len = (size - offset % size).min(e.end - offset);
                    pieces.push(Piece::Data { offset, len });
                    offset += len;
                }
            }
        }
        Strategy::FastCdc { min, avg, max } => {
            for e in extents {
                if e.zero {
                    pieces.push(Piece::Zero {
                        len: (e.end - e.start) as u64,
                    });
                    continue;
                }
                let chunker = fastcdc::v2020::FastCDC::new(&image[e.start..e.end], min, avg, max);
                pieces.extend(chunker.map(|c| Piece::Data {
                    offset: e.start + c.offset,
                    len: c.length,
                }));
            }
        }
    }
    pieces
}

fn cut_fixed_whole(image: &[u8], size: usize, pieces: &mut Vec<Piece>) {
    for (i, block) in image.chunks(size).enumerate() {
        if is_zero(block) {
            if let Some(Piece::Zero { len }) = pieces.last_mut() {
                *len += block.len() as u64;
            } else {
                pieces.push(Piece::Zero {
                    len: block.len() as u64,
                });
            }
        } else {
            pieces.push(Piece::Data {
                offset: i * size,
                len: block.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    fn covers(image: &[u8], pieces: &[Piece]) {
        let total: u64 = pieces.iter().map(Piece::len).sum();
        assert_eq!(total, image.len() as u64);
        let mut pos = 0u64;
        for p in pieces {
            match *p {
                Piece::Zero { len } => {
                    assert!(is_zero(&image[pos as usize..(pos + len) as usize]));
                }
                Piece::Data { offset, .. } => assert_eq!(offset as u64, pos),
            }
            pos += p.len();
        }
    }

    fn image() -> Vec<u8> {
        let mut image = vec![0u8; 3 * GRANULE];
        image.extend(noise(10_000, 1));
        image.resize(image.len().next_multiple_of(GRANULE) + 5 * GRANULE, 0);
        image.extend(noise(200_000, 2));
        image.extend(vec![0u8; 100]);
        image
    }

    #[test]
    fn extents_alternate_and_cover() {
        let img = image();
        let ext = extents(&img);
        assert_eq!(
            ext.first().map(|e| (e.zero, e.end)),
            Some((true, 3 * GRANULE))
        );
        assert!(
            ext.windows(2)
                .all(|w| w[0].end == w[1].start && w[0].zero != w[1].zero)
        );
        assert_eq!(ext.last().map(|e| e.end), Some(img.len()));
    }

    #[test]
    fn every_strategy_covers_the_image() {
        let img = image();
        let ext = extents(&img);
        for s in Strategy::defaults() {
            let pieces = cut(&img, &ext, s);
            covers(&img, &pieces);
            assert!(
                pieces
                    .windows(2)
                    .all(|w| !matches!(w, [Piece::Zero { .. }, Piece::Zero { .. }])),
                "{s}: zero runs are coalesced"
            );
        }
    }

    #[test]
    fn fixed_blocks_are_aligned_and_cut_at_zero_granules() {
        let img = image();
        let pieces = cut(&img, &extents(&img), Strategy::Fixed { size: 16384 });
        for p in &pieces {
            if let Piece::Data { offset, len } = *p {
                assert!(len <= 16384);
                assert!(
                    (offset % 16384) + len <= 16384,
                    "no block crosses a 16 KiB boundary"
                );
            }
        }
        // The first data piece starts at the first non-zero granule, not at 0.
        assert_eq!(
            pieces[1],
            Piece::Data {
                offset: 3 * GRANULE,
                len: GRANULE
            }
        );
    }

    #[test]
    fn whole_block_zero_keeps_partly_zero_blocks_as_data() {
        let img = image();
        let pieces = cut(&img, &extents(&img), Strategy::FixedWhole { size: 65536 });
        assert_eq!(
            pieces[0],
            Piece::Data {
                offset: 0,
                len: 65536
            }
        );
    }

    #[test]
    fn fastcdc_resynchronises_after_an_insertion() {
        let base = noise(1 << 20, 7);
        let mut shifted = noise(1000, 9);
        shifted.extend_from_slice(&base);
        let s = Strategy::fastcdc(8192);
        let a = cut(&base, &extents(&base), s);
        let b = cut(&shifted, &extents(&shifted), s);
        let lens = |p: &[Piece]| p.iter().map(Piece::len).collect::<Vec<_>>();
        let (la, lb) = (lens(&a), lens(&b));
        let common = la
            .iter()
            .rev()
            .zip(lb.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(common + 3 >= la.len(), "{common} of {}", la.len());
    }

    #[test]
    fn parse_round_trips() {
        for s in Strategy::defaults() {
            assert_eq!(s.to_string().parse::<Strategy>(), Ok(s));
        }
        for bad in ["fixed", "fixed:1", "fastcdc:1:2:3", "cdc:4096", ""] {
            assert!(bad.parse::<Strategy>().is_err(), "{bad}");
        }
    }
}
