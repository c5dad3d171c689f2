//! Building payload bodies and assembling artifacts.
//!
//! [`write_payload_body`] streams an image through the [`Chunker`], compresses the chunks of each
//! segment on all the threads it is given, and writes segment tables and data to the body. It
//! returns the [`Payload`] manifest entry. [`write_artifact_head`] then frames manifest and
//! signatures; the body follows it unchanged. Nothing here opens files: callers pass readers and
//! writers.

use crate::chunk_table::ENTRY_LEN;
use crate::codec::compress_chunk;
use crate::{
    ChunkEntry, ChunkKind, Chunker, Chunking, Compression, Cut, Error, Payload, PayloadType,
    Segment, Sha256Hex, limits,
};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Segments close at this many uncompressed data bytes so that a segment in flight stays small.
pub const SEGMENT_DATA_BUDGET: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BodyOptions {
    pub compression: Compression,
    pub level: i32,
    pub chunking: Chunking,
    /// Worker threads for compression (1 = on the calling thread).
    pub threads: usize,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            compression: Compression::Zstd,
            level: 3,
            chunking: Chunking::default(),
            threads: 1,
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
    let io_err = |source| Error::Io {
        part: "image",
        source,
    };
    let mut window: Vec<u8> = Vec::with_capacity(2 * Chunker::WINDOW);
    let mut start = 0usize; // first unconsumed byte in `window`
    let mut at_eof = false;
    let mut offset = 0u64;
    let mut image_hash = Sha256::new();
    let mut segment = SegmentInProgress::default();
    let mut segments = Vec::new();

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
            segments.push(segment.flush(body, options)?);
        }
        progress(offset);
    }
    if segment.entries() > 0 {
        segments.push(segment.flush(body, options)?);
    }
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

/// Entries of one segment before compression: zero runs and raw data ranges in `data`.
#[derive(Default)]
struct SegmentInProgress {
    pieces: Vec<Piece>,
    data: Vec<u8>,
}

enum Piece {
    Zero(u64),
    Data { start: usize, len: usize },
}

impl SegmentInProgress {
    fn entries(&self) -> usize {
        self.pieces.len()
    }

    fn is_full(&self) -> bool {
        self.pieces.len() >= limits::MAX_SEGMENT_ENTRIES as usize
            || self.data.len() >= SEGMENT_DATA_BUDGET
    }

    fn push_zero(&mut self, n: u64) {
        // Consecutive zero cuts (a run longer than the read window) become one entry.
        if let Some(Piece::Zero(run)) = self.pieces.last_mut() {
            *run += n;
        } else {
            self.pieces.push(Piece::Zero(n));
        }
    }

    fn push_data(&mut self, bytes: &[u8]) {
        self.pieces.push(Piece::Data {
            start: self.data.len(),
            len: bytes.len(),
        });
        self.data.extend_from_slice(bytes);
    }

    /// Compresses the pieces (in parallel), writes table and data, and returns the manifest entry.
    fn flush<W: Write>(&mut self, body: &mut W, options: &BodyOptions) -> Result<Segment, Error> {
        let pieces = std::mem::take(&mut self.pieces);
        let data = std::mem::take(&mut self.data);
        let encoded = encode_pieces(&pieces, &data, options)?;
        let mut table = Vec::with_capacity(encoded.len() * ENTRY_LEN);
        let mut data_size = 0u64;
        for (entry, _) in &encoded {
            table.extend_from_slice(&entry.to_bytes());
            data_size += u64::from(entry.stored_len);
        }
        let io_err = |source| Error::Io {
            part: "artifact body",
            source,
        };
        body.write_all(&table).map_err(io_err)?;
        for (_, stored) in &encoded {
            body.write_all(stored).map_err(io_err)?;
        }
        Ok(Segment {
            entries: u32::try_from(encoded.len()).unwrap_or(u32::MAX),
            table_sha256: Sha256Hex(Sha256::digest(&table).into()),
            data_size,
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
