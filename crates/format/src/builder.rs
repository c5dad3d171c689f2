//! Building payload bodies and assembling artifacts.
//!
//! [`write_payload_body`] streams an image through the [`Chunker`] and writes segment tables and
//! data to the body: for format version 2 each segment's data chunks as one compressed frame
//! (segments compressed on all the threads it is given), for version 1 each chunk compressed on its
//! own. It returns the [`Payload`] manifest entry. [`write_artifact_head`] then frames manifest and
//! signatures; the body follows it unchanged. Nothing here opens files: callers pass readers and
//! writers.

use crate::codec::{compress_chunk, compress_frame};
use crate::{
    ChunkEntry, ChunkKind, Chunker, Chunking, Compression, Cut, Error, Payload, PayloadType,
    Segment, Sha256Hex, TableLayout, limits,
};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Segments close at this many uncompressed data bytes so that a segment in flight stays small.
pub const SEGMENT_DATA_BUDGET: usize = 32 * 1024 * 1024;
/// The first segments close sooner, their budget doubling from this one up to
/// [`SEGMENT_DATA_BUDGET`]: a delta checks a whole segment's rebuilt table before it writes any
/// of its chunks, so the first segment's base reads come before the first write (at 32 MiB they
/// held a delta install on slow flash back by 0.4 s), and each next segment's reads run while the
/// one before is written.
pub const FIRST_SEGMENT_DATA_BUDGET: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BodyOptions {
    /// Format version of the artifact the body goes into (decides the table layout).
    pub format_version: u16,
    pub compression: Compression,
    pub level: i32,
    pub chunking: Chunking,
    /// Worker threads for compression (1 = on the calling thread).
    pub threads: usize,
    /// Entries per segment when fewer than the layout's limit (smaller resume steps, for tests).
    pub segment_entries: Option<u32>,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            format_version: crate::header::FORMAT_VERSION,
            compression: Compression::Zstd,
            level: 3,
            chunking: Chunking::default(),
            threads: 1,
            segment_entries: None,
        }
    }
}

/// Cuts, hashes and compresses `image` into `body`. `progress` is called with the number of image
/// bytes consumed so far.
pub fn write_payload_body<R: Read, W: Write>(
    mut image: R,
    body: &mut W,
    name: &str,
    options: &BodyOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Payload, Error> {
    let chunker = Chunker::new(options.chunking)?;
    let layout =
        TableLayout::for_version(options.format_version).ok_or(Error::UnsupportedVersion {
            found: options.format_version,
            supported: crate::header::FORMAT_VERSION,
        })?;
    if layout == TableLayout::Framed && options.compression == Compression::Gzip {
        return Err(Error::Compress(
            "format version 2 compresses with zstd or none; gzip needs version 1".into(),
        ));
    }
    let io_err = |source| Error::Io {
        part: "image",
        source,
    };
    let mut window: Vec<u8> = Vec::with_capacity(2 * Chunker::WINDOW);
    let mut start = 0usize; // first unconsumed byte in `window`
    let mut at_eof = false;
    let mut offset = 0u64;
    let mut image_hash = Sha256::new();
    let max_entries = options
        .segment_entries
        .unwrap_or(u32::MAX)
        .clamp(1, layout.max_segment_entries());
    let mut segment = SegmentInProgress::new(layout, max_entries, FIRST_SEGMENT_DATA_BUDGET);
    let mut writer = SegmentWriter::new(body, options);

    loop {
        if !at_eof && window.len() - start < Chunker::WINDOW {
            window.drain(..start);
            start = 0;
            let want = 2 * Chunker::WINDOW;
            while window.len() < want {
                let old = window.len();
                window.resize(want, 0);
                let n = image.read(&mut window[old..]).map_err(io_err)?;
                window.truncate(old + n);
                if n == 0 {
                    at_eof = true;
                    break;
                }
            }
        }
        let Some(cut) = chunker.next_cut(&window[start..], offset, at_eof) else {
            if at_eof {
                break;
            }
            // With a full window the chunker always decides; anything else is a bug, not input.
            return Err(Error::Chunking(format!(
                "chunker undecided at offset {offset}"
            )));
        };
        let len = match cut {
            Cut::Zero(n) | Cut::Data(n) => n,
        };
        let bytes = &window[start..start + len];
        image_hash.update(bytes);
        if offset + len as u64 > limits::MAX_PAYLOAD_SIZE {
            return Err(Error::PayloadLayout {
                payload: name.into(),
                reason: format!(
                    "image exceeds {}",
                    limits::bytes_text(limits::MAX_PAYLOAD_SIZE)
                ),
            });
        }
        match cut {
            Cut::Zero(n) => segment.push_zero(n as u64),
            Cut::Data(_) => segment.push_data(bytes),
        }
        start += len;
        offset += len as u64;
        if segment.is_full() {
            let next = SegmentInProgress::new(layout, max_entries, segment.next_data_budget());
            writer.push(std::mem::replace(&mut segment, next))?;
        }
        progress(offset);
    }
    if segment.entries() > 0 {
        writer.push(segment)?;
    }
    let segments = writer.finish()?;
    if offset == 0 {
        return Err(Error::PayloadLayout {
            payload: name.into(),
            reason: "the image is empty".into(),
        });
    }
    Ok(Payload {
        name: name.into(),
        payload_type: PayloadType::RootfsImage,
        target: "rootfs".into(),
        size: offset,
        sha256: Sha256Hex(image_hash.finalize().into()),
        compression: options.compression,
        chunking: options.chunking,
        segments,
    })
}

/// Writes segments in order. Version 2 segments are compressed `threads` at a time (one frame
/// each, so they are independent); version 1 segments compress their chunks in parallel instead.
struct SegmentWriter<'a, W: Write> {
    body: &'a mut W,
    options: &'a BodyOptions,
    pending: Vec<SegmentInProgress>,
    done: Vec<Segment>,
}

impl<'a, W: Write> SegmentWriter<'a, W> {
    fn new(body: &'a mut W, options: &'a BodyOptions) -> Self {
        SegmentWriter {
            body,
            options,
            pending: Vec::new(),
            done: Vec::new(),
        }
    }

    fn push(&mut self, segment: SegmentInProgress) -> Result<(), Error> {
        match segment.layout {
            TableLayout::PerChunk => {
                let mut segment = segment;
                let written = segment.flush(self.body, self.options)?;
                self.done.push(written);
            }
            TableLayout::Framed => {
                self.pending.push(segment);
                if self.pending.len() >= self.options.threads.max(1) {
                    self.write_pending()?;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Segment>, Error> {
        self.write_pending()?;
        Ok(self.done)
    }

    fn write_pending(&mut self) -> Result<(), Error> {
        let pending = std::mem::take(&mut self.pending);
        let options = self.options;
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .iter()
                .map(|segment| scope.spawn(move || segment.encode_framed(options)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .map_err(|_| Error::Compress("a compression thread panicked".into()))?
                })
                .collect::<Result<_, Error>>()
        })?;
        for (table, frame) in encoded {
            write_body(self.body, &table)?;
            write_body(self.body, &frame)?;
            self.done.push(Segment {
                entries: u32::try_from(table.len() / TableLayout::Framed.entry_len())
                    .unwrap_or(u32::MAX),
                table_sha256: Sha256Hex(Sha256::digest(&table).into()),
                data_size: frame.len() as u64,
                data_sha256: None,
            });
        }
        Ok(())
    }
}

fn write_body<W: Write>(body: &mut W, bytes: &[u8]) -> Result<(), Error> {
    body.write_all(bytes).map_err(|source| Error::Io {
        part: "artifact body",
        source,
    })
}

/// Entries of one segment before compression: zero runs and raw data ranges in `data`.
struct SegmentInProgress {
    layout: TableLayout,
    max_entries: u32,
    /// Uncompressed data bytes at which it closes.
    data_budget: usize,
    pieces: Vec<Piece>,
    data: Vec<u8>,
}

enum Piece {
    Zero(u64),
    Data { start: usize, len: usize },
}

impl SegmentInProgress {
    fn new(layout: TableLayout, max_entries: u32, data_budget: usize) -> Self {
        SegmentInProgress {
            layout,
            max_entries,
            data_budget,
            pieces: Vec::new(),
            data: Vec::new(),
        }
    }

    fn entries(&self) -> usize {
        self.pieces.len()
    }

    /// The data budget of the segment after this one.
    fn next_data_budget(&self) -> usize {
        self.data_budget.saturating_mul(2).min(SEGMENT_DATA_BUDGET)
    }

    fn is_full(&self) -> bool {
        self.pieces.len() >= self.max_entries as usize || self.data.len() >= self.data_budget
    }

    fn push_zero(&mut self, n: u64) {
        // Consecutive zero cuts (a run longer than the read window) become one entry, up to
        // what a version 2 entry's size field holds.
        let max_run = match self.layout {
            TableLayout::PerChunk => u64::MAX,
            TableLayout::Framed => {
                u64::from(u32::MAX) / limits::ZERO_GRANULE as u64 * limits::ZERO_GRANULE as u64
            }
        };
        let mut n = n;
        if let Some(Piece::Zero(run)) = self.pieces.last_mut() {
            let add = n.min(max_run - *run);
            *run += add;
            n -= add;
        }
        while n > 0 {
            let add = n.min(max_run);
            self.pieces.push(Piece::Zero(add));
            n -= add;
        }
    }

    /// Version 2: the table and the segment's data chunks compressed as one frame.
    fn encode_framed(&self, options: &BodyOptions) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut table = Vec::with_capacity(self.pieces.len() * TableLayout::Framed.entry_len());
        for piece in &self.pieces {
            let entry = match *piece {
                Piece::Zero(n) => ChunkEntry::zero_run(n),
                Piece::Data { start, len } => ChunkEntry::framed_data(
                    u32::try_from(len).unwrap_or(u32::MAX),
                    Sha256::digest(&self.data[start..start + len]).into(),
                ),
            };
            TableLayout::Framed.encode(&entry, &mut table);
        }
        let frame = compress_frame(&self.data, options.compression, options.level)?;
        Ok((table, frame))
    }

    fn push_data(&mut self, bytes: &[u8]) {
        self.pieces.push(Piece::Data {
            start: self.data.len(),
            len: bytes.len(),
        });
        self.data.extend_from_slice(bytes);
    }

    /// Version 1: compresses the pieces (in parallel), writes table and data, and returns the
    /// manifest entry.
    fn flush<W: Write>(&mut self, body: &mut W, options: &BodyOptions) -> Result<Segment, Error> {
        let pieces = std::mem::take(&mut self.pieces);
        let data = std::mem::take(&mut self.data);
        let encoded = encode_pieces(&pieces, &data, options)?;
        let mut table = Vec::with_capacity(encoded.len() * TableLayout::PerChunk.entry_len());
        let mut data_size = 0u64;
        for (entry, _) in &encoded {
            TableLayout::PerChunk.encode(entry, &mut table);
            data_size += u64::from(entry.stored_len);
        }
        write_body(body, &table)?;
        for (_, stored) in &encoded {
            write_body(body, stored)?;
        }
        Ok(Segment {
            entries: u32::try_from(encoded.len()).unwrap_or(u32::MAX),
            table_sha256: Sha256Hex(Sha256::digest(&table).into()),
            data_size,
            data_sha256: None,
        })
    }
}

fn encode_pieces(
    pieces: &[Piece],
    data: &[u8],
    options: &BodyOptions,
) -> Result<Vec<(ChunkEntry, Vec<u8>)>, Error> {
    let encode_one = |piece: &Piece| -> Result<(ChunkEntry, Vec<u8>), Error> {
        match *piece {
            Piece::Zero(n) => Ok((ChunkEntry::zero_run(n), Vec::new())),
            Piece::Data { start, len } => {
                let bytes = &data[start..start + len];
                let (codec, stored) = compress_chunk(bytes, options.compression, options.level)?;
                let entry = ChunkEntry {
                    kind: ChunkKind::Data,
                    codec,
                    stored_len: u32::try_from(stored.len()).unwrap_or(u32::MAX),
                    size: len as u64,
                    sha256: Sha256::digest(bytes).into(),
                };
                Ok((entry, stored))
            }
        }
    };
    let threads = options.threads.max(1).min(pieces.len().max(1));
    if threads == 1 {
        return pieces.iter().map(encode_one).collect();
    }
    // Contiguous slices per thread keep the output in table order without sorting.
    let per_thread = pieces.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .chunks(per_thread)
            .map(|slice| {
                scope.spawn(move || {
                    slice
                        .iter()
                        .map(encode_one)
                        .collect::<Result<Vec<_>, Error>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(pieces.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| Error::Compress("a compression thread panicked".into()))??;
            out.extend(part);
        }
        Ok(out)
    })
}

/// Writes header, manifest and signature block; the body (as written by
/// [`write_payload_body`] for each payload in order) must follow.
pub fn write_artifact_head<W: Write>(out: &mut W, head: &crate::Head) -> Result<(), Error> {
    out.write_all(&head.to_bytes()?)
        .map_err(|source| Error::Io {
            part: "artifact head",
            source,
        })
}
