//! Per-chunk compression. Each chunk is compressed on its own so that it can be verified, written
//! and (later) fetched by range independently of its neighbours.
//!
//! Decompression is bounded by the chunk's declared size: a chunk that expands to more (a
//! decompression bomb) or to less is an error, never an allocation beyond `MAX_CHUNK_SIZE`.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::Read;

thread_local! {
    /// One zstd compression context per thread (and level): creating a context for every 4 KiB
    /// chunk costs more than compressing it (0.82 s against 0.50 s of CPU for the 41 860 data
    /// chunks of a 512 MiB rootfs; the output is byte-identical).
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Zstd,
    Gzip,
}

impl Compression {
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
            Compression::Gzip => 2,
        }
    }

    pub fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Gzip),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    /// The level used when none is given.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 3,
            Compression::Gzip => 6,
        }
    }
}

/// Compresses one chunk. Returns the codec actually used and the stored bytes: when compression
/// does not make the chunk smaller it is stored raw (`Compression::None`), which also guarantees
/// the format rule `stored_len <= size`.
pub fn compress_chunk(
    data: &[u8],
    codec: Compression,
    level: i32,
) -> Result<(Compression, Vec<u8>), crate::Error> {
    let compressed = match codec {
        Compression::None => None,
        Compression::Zstd => Some(ZSTD.with(|cell| {
            let compress_err = |err: std::io::Error| crate::Error::Compress(err.to_string());
            let mut slot = cell.borrow_mut();
            if !matches!(&*slot, Some((l, _)) if *l == level) {
                *slot = Some((
                    level,
                    zstd::bulk::Compressor::new(level).map_err(compress_err)?,
                ));
            }
            match slot.as_mut() {
                Some((_, compressor)) => compressor.compress(data).map_err(compress_err),
                None => unreachable!("set above"),
            }
        })?),
        Compression::Gzip => {
            let level = u32::try_from(level.clamp(0, 9)).unwrap_or(6);
            let mut encoder = flate2::read::GzEncoder::new(data, flate2::Compression::new(level));
            let mut out = Vec::with_capacity(data.len() / 2);
            encoder
                .read_to_end(&mut out)
                .map_err(|err| crate::Error::Compress(err.to_string()))?;
            Some(out)
        }
    };
    match compressed {
        Some(bytes) if bytes.len() < data.len() => Ok((codec, bytes)),
        _ => Ok((Compression::None, data.to_vec())),
    }
}

/// Reusable decompressor: keeps the zstd context and the output buffer between chunks.
#[derive(Default)]
pub struct ChunkDecoder {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for ChunkDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkDecoder")
    }
}

impl ChunkDecoder {
    /// Decompresses `stored` into `out` (cleared first), which must end up exactly `size` bytes.
    pub fn decode(
        &mut self,
        codec: Compression,
        stored: &[u8],
        size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        out.clear();
        match codec {
            Compression::None => out.extend_from_slice(stored),
            Compression::Zstd => {
                if self.zstd.is_none() {
                    self.zstd =
                        Some(zstd::bulk::Decompressor::new().map_err(|err| err.to_string())?);
                }
                let Some(decompressor) = self.zstd.as_mut() else {
                    unreachable!("initialised above")
                };
                out.reserve(size);
                // decompress_to_buffer never writes past the capacity it is given, so a bomb fails
                // with "Destination buffer is too small" instead of allocating.
                decompressor
                    .decompress_to_buffer(stored, out)
                    .map_err(|err| err.to_string())?;
            }
            Compression::Gzip => {
                let decoder = flate2::read::GzDecoder::new(stored);
                // One byte more than allowed tells a bomb from an exact fit.
                decoder
                    .take(size as u64 + 1)
                    .read_to_end(out)
                    .map_err(|err| err.to_string())?;
            }
        }
        if out.len() != size {
            return Err(format!(
                "expands to {} bytes, the chunk table says {size}",
                out.len()
            ));
        }
        Ok(())
    }
}

/// Version 2: compresses a segment's data chunks, concatenated, as one frame. zstd frames are
/// limited to a window of 2^[`MAX_FRAME_WINDOW_LOG`](crate::limits::MAX_FRAME_WINDOW_LOG) bytes,
/// what a device's decoder is allowed to allocate; `none` stores the bytes as they are.
pub fn compress_frame(
    data: &[u8],
    codec: Compression,
    level: i32,
) -> Result<Vec<u8>, crate::Error> {
    use zstd::stream::raw::CParameter;
    let compress_err = |err: std::io::Error| crate::Error::Compress(err.to_string());
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Zstd => {
            let mut compressor = zstd::bulk::Compressor::new(level).map_err(compress_err)?;
            compressor
                .set_parameter(CParameter::WindowLog(crate::limits::MAX_FRAME_WINDOW_LOG))
                .map_err(compress_err)?;
            // The chunk hashes already check every byte; a frame checksum would add nothing.
            compressor
                .set_parameter(CParameter::ChecksumFlag(false))
                .map_err(compress_err)?;
            compressor.compress(data).map_err(compress_err)
        }
        Compression::Gzip => Err(crate::Error::Compress(
            "gzip frames are not part of format version 2".into(),
        )),
    }
}

/// Why a version 2 frame could not be read: the source failed (truncated, I/O), or its bytes do
/// not decode to what the chunk table describes.
#[derive(Debug)]
pub enum FrameError {
    Source(crate::Error),
    Codec(String),
}

/// Compressed bytes read from the source at a time (zstd buffers a block of its own as well).
const FRAME_INPUT_BUF: usize = 64 * 1024;

/// Streams one version 2 frame from a source, handing out exactly the bytes asked for. Memory:
/// the decoder's window (at most 2^[`MAX_FRAME_WINDOW_LOG`](crate::limits::MAX_FRAME_WINDOW_LOG)
/// bytes, larger windows are refused) and a 64 KiB input buffer. The source is passed to every
/// call, so the caller keeps owning it.
#[derive(Default)]
pub struct FrameDecoder {
    codec: Option<Compression>,
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
    input: Vec<u8>,
    in_pos: usize,
    /// Stored bytes of the frame not yet read from the source.
    stored_left: u64,
    ended: bool,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("codec", &self.codec)
            .field("stored_left", &self.stored_left)
            .finish()
    }
}

impl FrameDecoder {
    /// Starts a frame of `stored_len` bytes in `codec`.
    pub fn start(&mut self, codec: Compression, stored_len: u64) -> Result<(), FrameError> {
        use zstd::stream::raw::{DParameter, Operation};
        let codec_err = |err: std::io::Error| FrameError::Codec(err.to_string());
        if codec == Compression::Zstd {
            match self.zstd.as_mut() {
                Some(decoder) => decoder.reinit().map_err(codec_err)?,
                None => {
                    let mut decoder = zstd::stream::raw::Decoder::new().map_err(codec_err)?;
                    decoder
                        .set_parameter(DParameter::WindowLogMax(
                            crate::limits::MAX_FRAME_WINDOW_LOG,
                        ))
                        .map_err(codec_err)?;
                    self.zstd = Some(decoder);
                }
            }
        }
        if codec == Compression::Gzip {
            return Err(FrameError::Codec(
                "gzip frames are not part of format version 2".into(),
            ));
        }
        self.codec = Some(codec);
        self.input.clear();
        self.in_pos = 0;
        self.stored_left = stored_len;
        self.ended = false;
        Ok(())
    }

    /// Fills `out` with the frame's next bytes.
    pub fn read_exact<R: Read>(
        &mut self,
        source: &mut R,
        out: &mut [u8],
    ) -> Result<(), FrameError> {
        match self.codec {
            None => Err(FrameError::Codec("no frame was started".into())),
            Some(Compression::None) => {
                if (out.len() as u64) > self.stored_left {
                    return Err(FrameError::Codec(format!(
                        "the frame ends {} bytes before the chunks it should hold",
                        out.len() as u64 - self.stored_left
                    )));
                }
                crate::read_exact_or(source, out, "payload data").map_err(FrameError::Source)?;
                self.stored_left -= out.len() as u64;
                Ok(())
            }
            Some(_) => {
                let mut filled = 0;
                while filled < out.len() {
                    if self.ended {
                        return Err(FrameError::Codec(format!(
                            "the frame ends {} bytes before the chunks it should hold",
                            out.len() - filled
                        )));
                    }
                    filled += self.step(source, &mut out[filled..])?;
                }
                Ok(())
            }
        }
    }

    /// Checks that the frame ended exactly where its stored bytes end: no data left in it, no
    /// bytes after it.
    pub fn finish<R: Read>(&mut self, source: &mut R) -> Result<(), FrameError> {
        if self.codec == Some(Compression::Zstd) {
            let mut probe = [0u8; 1];
            while !self.ended {
                if self.step(source, &mut probe)? > 0 {
                    return Err(FrameError::Codec(
                        "the frame holds more data than its chunk table describes".into(),
                    ));
                }
            }
        }
        if self.stored_left > 0 || self.in_pos < self.input.len() {
            return Err(FrameError::Codec(
                "bytes follow the end of the frame inside the segment".into(),
            ));
        }
        self.codec = None;
        Ok(())
    }

    /// One decoding step: refills the input when it is used up, returns the bytes produced.
    fn step<R: Read>(&mut self, source: &mut R, out: &mut [u8]) -> Result<usize, FrameError> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        if self.in_pos == self.input.len() {
            if self.stored_left == 0 {
                return Err(FrameError::Codec("the frame is cut short".into()));
            }
            let n = self.stored_left.min(FRAME_INPUT_BUF as u64) as usize;
            self.input.resize(n, 0);
            crate::read_exact_or(source, &mut self.input, "payload data")
                .map_err(FrameError::Source)?;
            self.stored_left -= n as u64;
            self.in_pos = 0;
        }
        let Some(decoder) = self.zstd.as_mut() else {
            return Err(FrameError::Codec("no zstd decoder".into()));
        };
        let mut input = InBuffer::around(&self.input[self.in_pos..]);
        let mut output = OutBuffer::around(out);
        let hint = decoder
            .run(&mut input, &mut output)
            .map_err(|err| FrameError::Codec(err.to_string()))?;
        let (consumed, produced) = (input.pos(), output.pos());
        self.in_pos += consumed;
        if hint == 0 {
            self.ended = true;
        } else if consumed == 0 && produced == 0 && !out.is_empty() {
            return Err(FrameError::Codec("the frame does not decode".into()));
        }
        Ok(produced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_each_codec() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let mut decoder = ChunkDecoder::default();
        let mut out = Vec::new();
        for codec in [Compression::None, Compression::Zstd, Compression::Gzip] {
            let (used, stored) = compress_chunk(&data, codec, codec.default_level()).unwrap();
            assert_eq!(used, codec);
            decoder.decode(used, &stored, data.len(), &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    fn read_frame(
        frame: &[u8],
        codec: Compression,
        sizes: &[usize],
    ) -> Result<Vec<u8>, FrameError> {
        let mut decoder = FrameDecoder::default();
        let mut source = frame;
        decoder.start(codec, frame.len() as u64)?;
        let mut out = Vec::new();
        for &size in sizes {
            let mut chunk = vec![0u8; size];
            decoder.read_exact(&mut source, &mut chunk)?;
            out.extend_from_slice(&chunk);
        }
        decoder.finish(&mut source)?;
        Ok(out)
    }

    #[test]
    fn frames_round_trip_and_must_match_the_table() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        for codec in [Compression::Zstd, Compression::None] {
            let frame = compress_frame(&data, codec, 3).unwrap();
            let sizes = [4096, 100_000, 195_904];
            assert_eq!(
                read_frame(&frame, codec, &sizes).unwrap(),
                data,
                "{codec:?}"
            );
            // The table asks for more than the frame holds, or for less.
            assert!(
                read_frame(&frame, codec, &[4096, 300_000]).is_err(),
                "{codec:?} short"
            );
            assert!(
                read_frame(&frame, codec, &[4096]).is_err(),
                "{codec:?} long"
            );
            // Cut short, or with bytes appended.
            assert!(read_frame(&frame[..frame.len() - 1], codec, &sizes).is_err());
            let mut longer = frame.clone();
            longer.push(0);
            assert!(
                read_frame(&longer, codec, &sizes).is_err(),
                "{codec:?} appended"
            );
        }
        let mut frame = compress_frame(&data, Compression::Zstd, 3).unwrap();
        let middle = frame.len() / 2;
        frame[middle] ^= 0x55;
        let decoded = read_frame(&frame, Compression::Zstd, &[300_000]);
        assert!(
            decoded.map_or(true, |out| out != data),
            "tampering went unnoticed"
        );
        assert!(compress_frame(&data, Compression::Gzip, 6).is_err());
    }

    #[test]
    fn frames_with_a_larger_window_are_refused() {
        use zstd::stream::raw::CParameter;
        let data = rustupdate_testkit::pseudo_random(1 << 20, 7).repeat(20);
        let mut compressor = zstd::bulk::Compressor::new(19).unwrap();
        compressor.set_parameter(CParameter::WindowLog(25)).unwrap();
        let frame = compressor.compress(&data).unwrap();
        let err = read_frame(&frame, Compression::Zstd, &[data.len()]).unwrap_err();
        assert!(matches!(err, FrameError::Codec(_)), "{err:?}");
    }

    #[test]
    fn incompressible_is_stored_raw() {
        let data = rustupdate_testkit::pseudo_random(4096, 0x9e37_79b9);
        let (used, stored) = compress_chunk(&data, Compression::Zstd, 3).unwrap();
        assert_eq!(used, Compression::None);
        assert_eq!(stored, data);
    }

    #[test]
    fn bombs_and_short_outputs_are_rejected() {
        let big = vec![0u8; 1 << 20];
        let mut decoder = ChunkDecoder::default();
        let mut out = Vec::new();
        for codec in [Compression::Zstd, Compression::Gzip] {
            let (_, stored) = compress_chunk(&big, codec, 3).unwrap();
            assert!(
                decoder.decode(codec, &stored, 4096, &mut out).is_err(),
                "{codec:?} bomb"
            );
            assert!(
                decoder
                    .decode(codec, &stored, (1 << 20) + 1, &mut out)
                    .is_err(),
                "{codec:?} short"
            );
        }
        assert!(
            decoder
                .decode(Compression::Zstd, b"garbage", 10, &mut out)
                .is_err()
        );
        assert!(
            decoder
                .decode(Compression::Gzip, b"garbage", 10, &mut out)
                .is_err()
        );
    }
}
