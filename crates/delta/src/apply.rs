//! Rebuilding a target payload from a base image and a patch, verified chunk by chunk.
//!
//! Two passes per segment, so that nothing unverified is handed on and memory stays bounded
//! whatever the segment holds:
//! 1. rebuild the segment's chunk table from the bytes the patch points at (base blocks, literal
//!    frames), hashing each chunk, and compare the table's sha256 with the signed manifest;
//! 2. go through the same operations again and hand on each chunk after it matched its entry in
//!    the now trusted table (the base or the patch could change between the passes).
//!
//! Both passes read the base, through its cache where it has one ([`BaseImage::read_past_cache`]),
//! so that pass 2 finds what pass 1 read; a segment whose table does not match that way is rebuilt
//! once more past the cache (which may hold bytes the medium does not), and read past it in pass 2.
//!
//! Memory: one chunk, one literal frame and its reference in one buffer ([`MAX_FRAME_MEMORY`]),
//! 64 KiB of its compressed bytes at a time, one program and one segment table; frames are
//! decoded into their final buffer ([`crate::decode`]), so zstd needs no window of its own and
//! no frame is held compressed. The patch must be seekable (a local file): pass 2 reads each
//! segment's literal frames again.

use crate::decode::{DecodeError, decode_frame};
use crate::open::{PatchReader, delta, open_patch};
use crate::patch::{MAX_FRAME_MEMORY, MAX_PROGRAM, Op, PatchHeader, Range, decode_program};
use rustupdate_format::encryption::SEAL_TAG_LEN;
use rustupdate_format::{CheckedTable, ChunkEntry, ChunkKind, Head, Payload, TableLayout};
use rustupdate_seal::ContentKey;
use rustupdate_verify::{Chunk, ChunkData, ChunkSource, Error, ImageHash, ResumePoint};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};

/// The image a patch was made against, read by offset: on a device, its active slot.
pub trait BaseImage {
    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Bytes available (a slot may be larger than the image in it).
    fn size(&self) -> u64;

    /// Reads past any cache in front of the medium from now on (`past`), or through it again;
    /// returns whether reads may now see other bytes than before. A base without a cache of its
    /// own returns `false` (the default).
    fn read_past_cache(&mut self, past: bool) -> bool {
        let _ = past;
        false
    }

    /// A hint: `len` bytes at `offset` will be read soon. The applier announces every base range
    /// a segment reads, in the order it reads them (runs that follow each other merged), one
    /// segment ahead, so a base behind a cache can read exactly those bytes while the segment
    /// before is checked and written, instead of guessing. The default ignores it.
    fn will_read(&mut self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
}

/// Tells `base` what `ops` will read of it ([`BaseImage::will_read`]).
fn announce_reads<B: BaseImage>(ops: &[Op], base: &mut B) {
    for (offset, len) in base_runs(ops) {
        base.will_read(offset, len);
    }
}

/// The base ranges `ops` read, in the order they read them, as `(offset, len)` runs: a range
/// that starts where the previous one ended extends it.
fn base_runs(ops: &[Op]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut ranges = ops.iter().flat_map(|op| {
        let (copy, reference) = match op {
            Op::Copy { offset, size } => (Some((*offset, u64::from(*size))), &[][..]),
            Op::Frame { reference, .. } => (None, &reference[..]),
            Op::Zero { .. } | Op::Literal { .. } => (None, &[][..]),
        };
        copy.into_iter()
            .chain(reference.iter().map(|range| (range.offset, range.len)))
    });
    let mut run = ranges.next();
    std::iter::from_fn(move || {
        let (start, mut len) = run?;
        run = None;
        for (offset, next_len) in ranges.by_ref() {
            if offset == start + len {
                len += next_len;
            } else {
                run = Some((offset, next_len));
                break;
            }
        }
        Some((start, len))
    })
}

impl BaseImage for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A [`ChunkSource`] that rebuilds the first payload of a signed format version 2 artifact from
/// its verified `head`, a patch and the base image.
pub struct DeltaPayload<P: Read + Seek, B: BaseImage> {
    payload: Payload,
    header: PatchHeader,
    patch: PatchReader<P>,
    /// An encrypted target's content key: its signed tables are digests of sealed tables.
    content_key: Option<ContentKey>,
    base: B,
    segment: usize,
    ops: Vec<Op>,
    /// The next segment's operations, read one segment ahead so that its base reads run behind
    /// this segment's (see [`BaseImage::will_read`]). Segments load in order, so these are
    /// always segment `segment`'s.
    next_ops: Option<Vec<Op>>,
    op: usize,
    /// The current segment's rebuilt and checked table, kept encoded.
    table: CheckedTable,
    entry: usize,
    offset: u64,
    image_hash: Option<ImageHash>,
    chunk: Vec<u8>,
    /// The current literal frame: its reference, then its content (`literal`).
    frame: Vec<u8>,
    literal: std::ops::Range<usize>,
    /// A frame's compressed bytes, a piece at a time ([`crate::decode`]).
    input: Vec<u8>,
    literal_pos: usize,
    done: bool,
    stats: DeltaStats,
}

/// What rebuilding the payload read, for the caller's log and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Bytes of the base the patch copies (each copy counted once).
    pub copied: u64,
    /// Bytes of the base the literal frames use as reference (each frame counted once).
    pub referenced: u64,
    /// Literal frames, and how many times one was read and decompressed (both passes).
    pub frames: u64,
    pub frame_loads: u64,
    /// Bytes asked of the base, both passes together.
    pub base_requested: u64,
    /// Segments whose table was rebuilt a second time, past the base's cache.
    pub segments_reread: u64,
}

impl<P: Read + Seek, B: BaseImage> std::fmt::Debug for DeltaPayload<P, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaPayload")
            .field("segment", &self.segment)
            .field("offset", &self.offset)
            .finish()
    }
}

impl<P: Read + Seek, B: BaseImage> DeltaPayload<P, B> {
    /// Checks that the patch rebuilds this clear artifact (`head`, whose signatures the caller
    /// checked) from a base of this size; nothing else is read yet.
    pub fn open(head: &Head, patch: P, base: B, parallel_hash: bool) -> Result<Self, Error> {
        Self::open_with_key(head, patch, base, parallel_hash, None)
    }

    /// [`DeltaPayload::open`] for any artifact: an encrypted one's patch is sealed and opens with
    /// its content `key` (from [`rustupdate_seal::unwrap`]).
    pub fn open_with_key(
        head: &Head,
        patch: P,
        base: B,
        parallel_hash: bool,
        key: Option<&ContentKey>,
    ) -> Result<Self, Error> {
        if head.layout() != TableLayout::Framed {
            return Err(delta("patches rebuild format version 2 artifacts only"));
        }
        let Some(payload) = head.manifest.payloads.first() else {
            return Err(delta("the artifact has no payload"));
        };
        let (patch, header) = open_patch(patch, head, key)?;
        if base.size() < header.base_size {
            return Err(delta(format!(
                "the base holds {} bytes, the patch was made against {}",
                base.size(),
                header.base_size
            )));
        }
        Ok(DeltaPayload {
            payload: payload.clone(),
            header,
            patch,
            content_key: key.filter(|_| head.is_encrypted()).cloned(),
            base,
            segment: 0,
            ops: Vec::new(),
            next_ops: None,
            op: 0,
            table: CheckedTable::empty(TableLayout::Framed),
            entry: 0,
            offset: 0,
            image_hash: Some(ImageHash::new(parallel_hash)),
            chunk: Vec::new(),
            // The whole bound at once: grown range by range, the buffer was reallocated up to a
            // few dozen times per frame, and a reallocation that copies holds the old and the new
            // block together (the delta install's peak RSS went over 16 MiB in some runs). Pages
            // are only resident once written, so the unused part costs nothing.
            frame: Vec::with_capacity(MAX_FRAME_MEMORY + 1),
            literal: 0..0,
            input: Vec::new(),
            literal_pos: 0,
            done: false,
            stats: DeltaStats::default(),
        })
    }

    /// The patch's header (its base hash tells a caller whether its base is the right one).
    pub fn header(&self) -> &PatchHeader {
        &self.header
    }

    /// What was read so far.
    pub fn stats(&self) -> DeltaStats {
        self.stats
    }

    /// The base image (for its own counters).
    pub fn base(&self) -> &B {
        &self.base
    }

    /// Pass 1 for the next segment: rebuild and check its table; leaves the patch at the start of
    /// its literal frames for pass 2.
    fn load_segment(&mut self) -> Result<(), Error> {
        let index = self.segment;
        // The last segment's table is done with: not held beside the one rebuilt now.
        self.table = CheckedTable::empty(TableLayout::Framed);
        let (_, literal_len) = self.header.segments[index];
        // Through the base's cache first (a slot's page cache): pass 2 then finds what pass 1
        // read there, and the medium is read about once. A cache may hold bytes the medium does
        // not (a mounted ext4 changes its journal superblock in the block device's cache without
        // writing it), so a table that does not match is rebuilt once more past the cache, and
        // that segment's pass 2 reads past it as well. Reads are announced through the cache.
        self.base.read_past_cache(false);
        self.ops = match self.next_ops.take() {
            Some(ops) => ops,
            None => {
                let ops = self.read_program(index)?;
                announce_reads(&ops, &mut self.base);
                ops
            }
        };
        let literal_start = self.literal_start(index);
        self.patch
            .seek(SeekFrom::Start(literal_start))
            .map_err(|err| delta(format!("reading the patch: {err}")))?;
        let counted = self.stats;
        let mut table = self.rebuild_table(index, literal_len);
        // A reference read wrong makes its frame fail to decompress: retried as well.
        if !matches!(table, Ok(Some(_))) && self.base.read_past_cache(true) {
            self.stats.copied = counted.copied;
            self.stats.referenced = counted.referenced;
            self.stats.frames = counted.frames;
            self.stats.segments_reread += 1;
            self.patch
                .seek(SeekFrom::Start(literal_start))
                .map_err(|err| delta(format!("reading the patch: {err}")))?;
            table = self.rebuild_table(index, literal_len);
        }
        let Some(table) = table? else {
            return Err(delta(format!(
                "segment {index}: the rebuilt chunk table does not match the signed one (the base \
                 is not the image the patch was made against, or the patch is damaged)"
            )));
        };
        // The table is the signed one: every entry checked as the reader checks them.
        self.table = CheckedTable::check(TableLayout::Framed, table)?;
        // The next segment's base reads start now, once this base proved right (a wrong base
        // costs no reads beyond its first segment): the medium reads them while this segment's
        // chunks are checked again and written.
        if index + 1 < self.header.segments.len() {
            let next = self.read_program(index + 1)?;
            announce_reads(&next, &mut self.base);
            self.next_ops = Some(next);
        }
        self.patch
            .seek(SeekFrom::Start(literal_start))
            .map_err(|err| delta(format!("reading the patch: {err}")))?;
        self.op = 0;
        self.entry = 0;
        self.segment += 1;
        Ok(())
    }

    /// Reads and decodes segment `index`'s program from the patch.
    fn read_program(&mut self, index: usize) -> Result<Vec<Op>, Error> {
        let (program_len, _) = self.header.segments[index];
        self.patch
            .seek(SeekFrom::Start(self.header.segment_offset(index)))
            .map_err(|err| delta(format!("reading the patch: {err}")))?;
        // Zeroed by the allocator (fresh pages): only what the program fills becomes resident.
        let mut program = vec![0u8; MAX_PROGRAM + 1];
        let len = decode_frame(
            &mut self.patch,
            u64::from(program_len),
            &[],
            &mut program,
            &mut self.input,
        )
        .map_err(|err| failed(err, &format!("segment {index}: the program")))?;
        if len > MAX_PROGRAM {
            return Err(delta(format!(
                "segment {index}: the program is larger than {MAX_PROGRAM} bytes"
            )));
        }
        decode_program(&program[..len], self.header.base_size)
            .map_err(|reason| delta(format!("segment {index}: {reason}")))
    }

    /// Where segment `index`'s literal frames start in the patch.
    fn literal_start(&self, index: usize) -> u64 {
        self.header.segment_offset(index) + u64::from(self.header.segments[index].0)
    }

    /// Pass 1 proper: rebuilds segment `index`'s chunk table from the base and the patch (read
    /// from the start of its literal frames); `None` when it is not the signed table.
    fn rebuild_table(&mut self, index: usize, literal_len: u64) -> Result<Option<Vec<u8>>, Error> {
        let expected = &self.payload.segments[index];
        let (expected_entries, expected_sha256) =
            (u64::from(expected.entries), expected.table_sha256.0);
        let mut table = Vec::with_capacity(
            expected_entries as usize * TableLayout::Framed.entry_len() + SEAL_TAG_LEN as usize,
        );
        let mut literal_used = 0u64;
        let mut entries = 0u64;
        for op in 0..self.ops.len() {
            let entry = match self.ops[op].clone() {
                Op::Frame {
                    reference,
                    stored,
                    content,
                } => {
                    self.stats.frames += 1;
                    self.stats.referenced += reference.iter().map(|r| r.len).sum::<u64>();
                    literal_used += u64::from(stored);
                    self.load_frame(&reference, stored, content)?;
                    continue;
                }
                Op::Zero { size } => ChunkEntry::zero_run(size),
                Op::Copy { .. } | Op::Literal { .. } => {
                    let size = self.fill_chunk(op)?;
                    if let Op::Copy { size, .. } = self.ops[op] {
                        self.stats.copied += u64::from(size);
                    }
                    ChunkEntry::framed_data(size, Sha256::digest(&self.chunk).into())
                }
            };
            entries += 1;
            if entries > expected_entries {
                break;
            }
            TableLayout::Framed.encode(&entry, &mut table);
        }
        // An encrypted target signs its sealed tables: sealing is deterministic under the
        // segment's key, so the rebuilt table sealed must be the signed bytes.
        // Sealed where it lies (its capacity has room for the tag): no second table in memory.
        let digest: [u8; 32] = match &self.content_key {
            Some(key) => rustupdate_seal::sealed_table_sha256(key, 0, index as u32, &mut table),
            None => Sha256::digest(&table).into(),
        };
        let matches = entries == expected_entries
            && literal_used == literal_len
            && digest[..] == expected_sha256[..];
        Ok(matches.then_some(table))
    }

    /// Reads a literal frame's reference from the base and its bytes from the patch, and
    /// decompresses it: `self.frame` holds the reference, then the content (one buffer of at most
    /// [`MAX_FRAME_MEMORY`] bytes, checked when the program was decoded).
    fn load_frame(&mut self, reference: &[Range], stored: u32, content: u32) -> Result<(), Error> {
        self.frame.clear();
        self.stats.frame_loads += 1;
        for range in reference {
            self.stats.base_requested += range.len;
            let at = self.frame.len();
            self.frame.resize(at + range.len as usize, 0);
            self.base
                .read_at(range.offset, &mut self.frame[at..])
                .map_err(|err| delta(format!("reading the base at {}: {err}", range.offset)))?;
        }
        let reference_len = self.frame.len();
        // One byte of room more than the content tells "too much" from "exactly right".
        self.frame.resize(reference_len + content as usize + 1, 0);
        debug_assert!(self.frame.len() <= MAX_FRAME_MEMORY + 1);
        let (prefix, out) = self.frame.split_at_mut(reference_len);
        let what = || format!("segment {}: a literal frame", self.segment);
        let produced = decode_frame(
            &mut self.patch,
            u64::from(stored),
            prefix,
            out,
            &mut self.input,
        )
        .map_err(|err| failed(err, &what()))?;
        if produced != content as usize {
            return Err(delta(format!(
                "{} holds {produced} bytes, not {content}",
                what()
            )));
        }
        self.literal = reference_len..reference_len + content as usize;
        self.literal_pos = 0;
        Ok(())
    }

    /// Puts the bytes of the copy or literal operation `op` into `self.chunk`; returns its size.
    fn fill_chunk(&mut self, op: usize) -> Result<u32, Error> {
        match self.ops[op] {
            Op::Copy { offset, size } => {
                self.stats.base_requested += u64::from(size);
                self.chunk.resize(size as usize, 0);
                self.base
                    .read_at(offset, &mut self.chunk)
                    .map_err(|err| delta(format!("reading the base at {offset}: {err}")))?;
                Ok(size)
            }
            Op::Literal { size } => {
                let end = self.literal_pos + size as usize;
                let bytes = self
                    .frame
                    .get(self.literal.clone())
                    .and_then(|literal| literal.get(self.literal_pos..end))
                    .ok_or_else(|| delta("a literal runs past its frame"))?;
                self.chunk.clear();
                self.chunk.extend_from_slice(bytes);
                self.literal_pos = end;
                Ok(size)
            }
            Op::Zero { .. } | Op::Frame { .. } => Err(delta("not a data operation")),
        }
    }

    fn finish(&mut self) -> Result<(), Error> {
        if self.offset != self.payload.size {
            return Err(delta(format!(
                "the chunks cover {} bytes, the image has {}",
                self.offset, self.payload.size
            )));
        }
        let digest = self.image_hash.take().and_then(ImageHash::finish);
        if digest != Some(self.payload.sha256.0) {
            return Err(Error::ImageHashMismatch {
                payload: self.payload.name.clone(),
            });
        }
        self.done = true;
        Ok(())
    }
}

impl<P: Read + Seek, B: BaseImage> ChunkSource for DeltaPayload<P, B> {
    fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.entry < self.table.len() {
                break;
            }
            if self.segment == self.payload.segments.len() {
                self.finish()?;
                return Ok(None);
            }
            self.load_segment()?;
        }
        // Pass 2: the next entry's operation, after any frame it needs.
        while let Op::Frame {
            reference,
            stored,
            content,
        } = self.ops[self.op].clone()
        {
            self.load_frame(&reference, stored, content)?;
            self.op += 1;
        }
        let entry = self.table.entry(self.entry)?;
        let op = self.op;
        self.op += 1;
        self.entry += 1;
        let offset = self.offset;
        if entry.size > self.payload.size - offset {
            return Err(delta(format!(
                "chunk at offset {offset} runs past the image"
            )));
        }
        self.offset += entry.size;
        match entry.kind {
            ChunkKind::Zero => {
                if let Some(hash) = self.image_hash.as_mut() {
                    hash.zeros(entry.size);
                }
                Ok(Some(Chunk {
                    offset,
                    data: ChunkData::Zeros(entry.size),
                }))
            }
            ChunkKind::Data => {
                self.fill_chunk(op)?;
                if Sha256::digest(&self.chunk)[..] != entry.sha256[..] {
                    // It matched in pass 1: the base or the patch changed in between.
                    return Err(delta(format!(
                        "the chunk at offset {offset} changed since its table was checked"
                    )));
                }
                if let Some(hash) = self.image_hash.as_mut() {
                    hash.data(&self.chunk);
                }
                Ok(Some(Chunk {
                    offset,
                    data: ChunkData::Bytes(&self.chunk),
                }))
            }
        }
    }

    /// A delta restarts from its first segment after an interruption (its base and patch are
    /// local, and writes of blocks already in place are skipped), so it offers no resume point.
    fn segment_end(&self) -> Option<ResumePoint> {
        None
    }
}

/// The error for a frame (`what`) that could not be decoded.
fn failed(err: DecodeError, what: &str) -> Error {
    delta(match err {
        DecodeError::Read(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the patch is truncated".to_string()
        }
        DecodeError::Read(err) => format!("reading the patch: {err}"),
        DecodeError::Codec(why) => format!("{what} does not decompress: {why}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_runs_merge_ranges_that_follow_each_other_in_read_order() {
        let frame = |reference: &[(u64, u64)]| Op::Frame {
            reference: reference
                .iter()
                .map(|&(offset, len)| Range { offset, len })
                .collect(),
            stored: 1,
            content: 1,
        };
        let ops = [
            Op::Copy {
                offset: 0,
                size: 4096,
            },
            Op::Zero { size: 8192 },
            Op::Copy {
                offset: 4096,
                size: 4096,
            },
            frame(&[(8192, 100), (20_000, 50)]),
            Op::Literal { size: 10 },
            Op::Copy {
                offset: 20_050,
                size: 10,
            },
            // Back to a range already read: announced again, in its place.
            Op::Copy {
                offset: 0,
                size: 4096,
            },
            frame(&[]),
        ];
        let runs: Vec<_> = base_runs(&ops).collect();
        assert_eq!(runs, vec![(0, 8292), (20_000, 60), (0, 4096)]);
        assert_eq!(base_runs(&[Op::Zero { size: 1 }]).count(), 0);
    }
}
