//! The patch layout, version 1 (clear) and 2 (sealed). All integers little-endian.
//!
//! ```text
//! 0   [8]  magic 89 52 55 44 0d 0a 1a 0a ("\x89RUD\r\n\x1a\n")
//! 8   u16  patch version (1; 2: sealed, below)
//! 10  u16  reserved, zero
//! 12  u32  segment count (that of the target's first payload)
//! 16  [32] sha256 of the target's manifest bytes (the signed bytes): the artifact it rebuilds
//! 48  [32] sha256 of the whole base image the patch was made against
//! 80  u64  size of the base image
//! 88  [8]  reserved, zero
//! 96  segment directory: per segment u32 program length, u64 literal length (12 bytes each)
//!     then per segment: its program (one zstd frame), then its literal frames
//! ```
//!
//! A segment's program, once decompressed, is a list of operations, one per chunk table entry of
//! the target segment, in table order, with `frame` operations in front of the literals they feed.
//! Numbers are LEB128 varints; base offsets are zigzag deltas from the end of the previous copy
//! (or reference range), so runs of unchanged blocks cost a byte or two each.
//!
//! | code | operation | fields | rebuilt entry |
//! | --- | --- | --- | --- |
//! | 0 | zero | size | a zero run |
//! | 1 | copy | offset delta, size | data: `size` bytes of the base at the offset |
//! | 2 | literal | size | data: the next `size` bytes of the current literal frame |
//! | 3 | frame | range count, (offset delta, length) per range, stored length, content length | starts a literal frame |
//!
//! A literal frame is a zstd frame of `stored length` bytes in the segment's literal area, which
//! decompresses to exactly `content length` bytes with the concatenated base ranges as its
//! reference prefix (zstd's "patch-from"): new versions of changed files compress against their
//! old versions without the device holding more than [`MAX_REFERENCE`] bytes of base.
//!
//! A **sealed** patch (version 2), the patch of an encrypted release, is the same patch with its
//! fixed header in clear (version 2) and everything after it sealed under the target's content
//! key ([`rustupdate_seal::SealedFile`]: a 32-byte salt, then 64 KiB STREAM blocks with the
//! fixed header as associated data). Opened, it reads exactly as the clear patch at the same
//! offsets ([`crate::sealed`]).

use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 8] = *b"\x89RUD\r\n\x1a\n";
pub const PATCH_VERSION: u16 = 1;
/// The version of a sealed patch (a clear fixed header, the rest sealed).
pub const SEALED_PATCH_VERSION: u16 = 2;
pub const HEADER_LEN: usize = 96;
pub const DIRECTORY_ENTRY_LEN: usize = 12;

/// Most segments a patch describes (a 1 TiB payload of 4 KiB chunks has fewer).
pub const MAX_SEGMENTS: u32 = 1 << 20;
/// Largest compressed program of one segment.
pub const MAX_PROGRAM_STORED: u32 = 4 << 20;
/// Largest decompressed program of one segment (8192 entries need at most ~200 KiB).
pub const MAX_PROGRAM: usize = 1 << 20;
/// Largest literal frame content: what a device holds of new bytes at a time.
pub const MAX_LITERAL_FRAME: usize = 4 << 20;
/// Largest reference prefix of a literal frame: what a device holds of the base at a time.
pub const MAX_REFERENCE: usize = 4 << 20;
/// Largest reference and content of one literal frame together: the one buffer a device holds
/// for a frame (patches against an image use 1 MiB of content and up to 4 MiB of reference,
/// patches against a device's index 4 MiB of content and no reference).
pub const MAX_FRAME_MEMORY: usize = 5 << 20;
/// Most reference ranges of one literal frame.
pub const MAX_RANGES: usize = 4096;
/// Window a literal frame may need (reference plus content, rounded up): 2^23 = 8 MiB.
pub const MAX_WINDOW_LOG: u32 = 23;

/// What is wrong with a patch's framing or program. Reported by the applier as
/// [`rustupdate_verify::Error::Delta`].
pub type PatchError = String;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchHeader {
    pub target_manifest_sha256: [u8; 32],
    pub base_sha256: [u8; 32],
    pub base_size: u64,
    /// Per segment: (program length, literal length).
    pub segments: Vec<(u32, u64)>,
    /// Version 2: everything after the fixed header is sealed.
    pub sealed: bool,
}

impl PatchHeader {
    /// Encodes the header and the segment directory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&MAGIC);
        let version = if self.sealed {
            SEALED_PATCH_VERSION
        } else {
            PATCH_VERSION
        };
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.target_manifest_sha256);
        out.extend_from_slice(&self.base_sha256);
        out.extend_from_slice(&self.base_size.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        for (program, literal) in &self.segments {
            out.extend_from_slice(&program.to_le_bytes());
            out.extend_from_slice(&literal.to_le_bytes());
        }
        out
    }

    /// Decodes the fixed header; returns it with an empty directory and the segment count, whose
    /// directory ([`PatchHeader::read_directory`]) follows.
    pub fn from_fixed(bytes: &[u8; HEADER_LEN]) -> Result<(PatchHeader, u32), PatchError> {
        if bytes[..8] != MAGIC {
            return Err("not a rustupdate delta patch (bad magic bytes)".into());
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != PATCH_VERSION && version != SEALED_PATCH_VERSION {
            return Err(format!(
                "unsupported patch version {version} (this build reads {PATCH_VERSION} and \
                 {SEALED_PATCH_VERSION})"
            ));
        }
        if bytes[10..12] != [0, 0] || bytes[88..96] != [0; 8] {
            return Err("reserved header bytes are not zero".into());
        }
        let count = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if count == 0 || count > MAX_SEGMENTS {
            return Err(format!(
                "segment count {count} is outside 1..={MAX_SEGMENTS}"
            ));
        }
        let mut header = PatchHeader {
            target_manifest_sha256: [0; 32],
            base_sha256: [0; 32],
            base_size: u64::from_le_bytes(bytes[80..88].try_into().unwrap_or([0; 8])),
            segments: Vec::new(),
            sealed: version == SEALED_PATCH_VERSION,
        };
        header
            .target_manifest_sha256
            .copy_from_slice(&bytes[16..48]);
        header.base_sha256.copy_from_slice(&bytes[48..80]);
        Ok((header, count))
    }

    /// Decodes the segment directory of `count` entries.
    pub fn read_directory(&mut self, bytes: &[u8], count: u32) -> Result<(), PatchError> {
        if bytes.len() != count as usize * DIRECTORY_ENTRY_LEN {
            return Err("the segment directory is cut short".into());
        }
        self.segments = bytes
            .chunks_exact(DIRECTORY_ENTRY_LEN)
            .map(|entry| {
                let program = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
                let literal = u64::from_le_bytes(entry[4..12].try_into().unwrap_or([0; 8]));
                (program, literal)
            })
            .collect();
        if let Some((index, _)) = self
            .segments
            .iter()
            .enumerate()
            .find(|(_, (program, _))| *program == 0 || *program > MAX_PROGRAM_STORED)
        {
            return Err(format!("segment {index}: program length out of range"));
        }
        Ok(())
    }

    /// Length of the header and directory.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.segments.len() * DIRECTORY_ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Offset of segment `index`'s program in the patch file.
    pub fn segment_offset(&self, index: usize) -> u64 {
        self.len() as u64
            + self.segments[..index.min(self.segments.len())]
                .iter()
                .map(|(program, literal)| u64::from(*program) + literal)
                .sum::<u64>()
    }

    /// Length of the whole patch file.
    pub fn patch_len(&self) -> u64 {
        self.segment_offset(self.segments.len())
    }
}

/// The sha256 that names a target artifact in a patch: that of its signed manifest bytes.
pub fn manifest_id(manifest_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(manifest_bytes).into()
}

/// A base range a literal frame uses as reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Zero {
        size: u64,
    },
    Copy {
        offset: u64,
        size: u32,
    },
    Literal {
        size: u32,
    },
    Frame {
        reference: Vec<Range>,
        stored: u32,
        content: u32,
    },
}

/// Encodes a segment's operations (before compression).
pub fn encode_program(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cursor = 0u64; // end of the last base range used
    for op in ops {
        match op {
            Op::Zero { size } => {
                out.push(0);
                put_varint(&mut out, *size);
            }
            Op::Copy { offset, size } => {
                out.push(1);
                put_varint(&mut out, zigzag(*offset, cursor));
                put_varint(&mut out, u64::from(*size));
                cursor = offset + u64::from(*size);
            }
            Op::Literal { size } => {
                out.push(2);
                put_varint(&mut out, u64::from(*size));
            }
            Op::Frame {
                reference,
                stored,
                content,
            } => {
                out.push(3);
                put_varint(&mut out, reference.len() as u64);
                for range in reference {
                    put_varint(&mut out, zigzag(range.offset, cursor));
                    put_varint(&mut out, range.len);
                    cursor = range.offset + range.len;
                }
                put_varint(&mut out, u64::from(*stored));
                put_varint(&mut out, u64::from(*content));
            }
        }
    }
    out
}

/// Decodes a segment's operations, checking every bound a device relies on: chunk sizes, frame
/// and reference sizes, base ranges inside `base_size`, literals that use up their frame exactly.
pub fn decode_program(bytes: &[u8], base_size: u64) -> Result<Vec<Op>, PatchError> {
    let mut input = bytes;
    let mut ops = Vec::new();
    let mut cursor = 0u64;
    let mut literal_left: u64 = 0;
    let in_base =
        |offset: u64, len: u64| offset.checked_add(len).is_some_and(|end| end <= base_size);
    while let Some((&code, rest)) = input.split_first() {
        input = rest;
        let op = match code {
            0 => {
                let size = get_varint(&mut input)?;
                if size == 0 {
                    return Err("a zero run of 0 bytes".into());
                }
                Op::Zero { size }
            }
            1 => {
                let offset = unzigzag(get_varint(&mut input)?, cursor)?;
                let size = chunk_size(get_varint(&mut input)?)?;
                if !in_base(offset, u64::from(size)) {
                    return Err(format!(
                        "a copy of {size} bytes at {offset} runs past the base"
                    ));
                }
                cursor = offset + u64::from(size);
                Op::Copy { offset, size }
            }
            2 => {
                let size = chunk_size(get_varint(&mut input)?)?;
                literal_left = literal_left
                    .checked_sub(u64::from(size))
                    .ok_or("a literal runs past the end of its frame")?;
                Op::Literal { size }
            }
            3 => {
                if literal_left != 0 {
                    return Err("a literal frame starts before the previous one is used up".into());
                }
                let count = get_varint(&mut input)?;
                if count > MAX_RANGES as u64 {
                    return Err(format!("a frame with {count} reference ranges"));
                }
                let mut reference = Vec::with_capacity(count as usize);
                let mut total = 0u64;
                for _ in 0..count {
                    let offset = unzigzag(get_varint(&mut input)?, cursor)?;
                    let len = get_varint(&mut input)?;
                    total = total.saturating_add(len);
                    if len == 0 || !in_base(offset, len) || total > MAX_REFERENCE as u64 {
                        return Err(
                            "a reference range is empty, too large or outside the base".into()
                        );
                    }
                    cursor = offset + len;
                    reference.push(Range { offset, len });
                }
                let stored = get_varint(&mut input)?;
                let content = get_varint(&mut input)?;
                if content == 0
                    || content > MAX_LITERAL_FRAME as u64
                    || total + content > MAX_FRAME_MEMORY as u64
                    || stored == 0
                    || stored > 2 * MAX_LITERAL_FRAME as u64
                {
                    return Err("a literal frame of out-of-range size".into());
                }
                literal_left = content;
                Op::Frame {
                    reference,
                    stored: stored as u32,
                    content: content as u32,
                }
            }
            other => return Err(format!("unknown operation {other}")),
        };
        ops.push(op);
    }
    if literal_left != 0 {
        return Err("the last literal frame is not used up".into());
    }
    Ok(ops)
}

fn chunk_size(size: u64) -> Result<u32, PatchError> {
    if size == 0 || size > u64::from(rustupdate_format::limits::MAX_CHUNK_SIZE) {
        return Err(format!("a chunk of {size} bytes"));
    }
    Ok(size as u32)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, PatchError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = input.split_first() else {
            return Err("the program is cut short".into());
        };
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a number in the program is too long".into())
}

/// `offset - cursor` as a zigzag number (small for nearby offsets either side).
fn zigzag(offset: u64, cursor: u64) -> u64 {
    let delta = offset.wrapping_sub(cursor) as i64;
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(value: u64, cursor: u64) -> Result<u64, PatchError> {
    let delta = ((value >> 1) as i64) ^ -((value & 1) as i64);
    cursor
        .checked_add_signed(delta)
        .ok_or_else(|| "a base offset before the start of the base".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_round_trip_and_are_bounded() {
        let ops = vec![
            Op::Zero { size: 1 << 30 },
            Op::Copy {
                offset: 8192,
                size: 4096,
            },
            Op::Copy {
                offset: 0,
                size: 4096,
            },
            Op::Frame {
                reference: vec![Range {
                    offset: 40960,
                    len: 8192,
                }],
                stored: 100,
                content: 8192,
            },
            Op::Literal { size: 4096 },
            Op::Copy {
                offset: 12288,
                size: 4096,
            },
            Op::Literal { size: 4096 },
        ];
        let bytes = encode_program(&ops);
        assert_eq!(decode_program(&bytes, 1 << 20).unwrap(), ops);
        // Base too small for the ranges; cut short; literal past its frame; unknown operation.
        assert!(decode_program(&bytes, 16384).is_err());
        assert!(decode_program(&bytes[..bytes.len() - 1], 1 << 20).is_err());
        let mut over = ops.clone();
        over.push(Op::Literal { size: 1 });
        assert!(decode_program(&encode_program(&over), 1 << 20).is_err());
        assert!(decode_program(&[9], 1 << 20).is_err());
        let big = vec![Op::Copy {
            offset: 0,
            size: 2 << 20,
        }];
        assert!(decode_program(&encode_program(&big), 4 << 20).is_err());
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = PatchHeader {
            target_manifest_sha256: [1; 32],
            base_sha256: [2; 32],
            base_size: 1 << 29,
            segments: vec![(10, 20), (30, 0)],
            sealed: false,
        };
        let bytes = header.to_bytes();
        assert_eq!(bytes.len(), header.len());
        let fixed: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
        let (mut decoded, count) = PatchHeader::from_fixed(&fixed).unwrap();
        decoded.read_directory(&bytes[HEADER_LEN..], count).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(header.segment_offset(1), header.len() as u64 + 30);
        assert_eq!(header.patch_len(), header.len() as u64 + 60);
        let mut bad = fixed;
        bad[0] ^= 1;
        assert!(PatchHeader::from_fixed(&bad).unwrap_err().contains("magic"));
        let sealed = PatchHeader {
            sealed: true,
            ..header.clone()
        };
        let sealed_fixed: [u8; HEADER_LEN] = sealed.to_bytes()[..HEADER_LEN].try_into().unwrap();
        assert_eq!(sealed_fixed[8], 2);
        assert!(PatchHeader::from_fixed(&sealed_fixed).unwrap().0.sealed);
        let mut bad = fixed;
        bad[8] = 3;
        assert!(
            PatchHeader::from_fixed(&bad)
                .unwrap_err()
                .contains("version")
        );
        let mut bad = fixed;
        bad[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert!(PatchHeader::from_fixed(&bad).is_err());
    }
}
