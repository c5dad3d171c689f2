//! One zstd frame of the patch decoded straight into the caller's buffer, its compressed bytes
//! read a piece at a time.
//!
//! The output buffer is declared stable (zstd's `ZSTD_d_stableOutBuffer`), so it doubles as the
//! decoder's window and zstd allocates none of its own; the compressed bytes pass through one
//! fixed input buffer instead of being held whole. A frame therefore costs its output and the
//! decoder's small state, whatever it claims: a hostile patch that pads a program or a literal
//! frame to its length limit (4 MiB) no longer makes the device hold those bytes.

use std::io::Read;
use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer, get_error_name};

/// Compressed bytes read from the patch at a time.
pub const INPUT_PIECE: usize = 64 * 1024;

/// Why a frame could not be decoded.
#[derive(Debug)]
pub enum DecodeError {
    /// Reading the patch failed (a short read is a truncated patch).
    Read(std::io::Error),
    /// The bytes are not one frame that fits `out` (the reason, for the caller's message).
    Codec(String),
}

/// Decodes the one zstd frame in the next `stored` bytes of `source` into `out`, with
/// `reference` as its prefix (zstd's "patch-from"); returns how many bytes it produced. `input`
/// is the caller's reusable buffer for the compressed bytes (grown to [`INPUT_PIECE`]). A frame
/// that would produce more than `out` holds, that ends before its `stored` bytes do, or that is
/// not complete at their end is an error; exactly `stored` bytes are read on success.
pub fn decode_frame(
    source: &mut dyn Read,
    stored: u64,
    reference: &[u8],
    out: &mut [u8],
    input: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let codec = |code: usize| DecodeError::Codec(get_error_name(code).to_string());
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::StableOutBuffer(true))
        .map_err(codec)?;
    if !reference.is_empty() {
        dctx.ref_prefix(reference).map_err(codec)?;
    }
    input.resize(INPUT_PIECE, 0);
    let mut output = OutBuffer::around(out);
    let mut left = stored;
    while left > 0 {
        let n = left.min(INPUT_PIECE as u64) as usize;
        source
            .read_exact(&mut input[..n])
            .map_err(DecodeError::Read)?;
        left -= n as u64;
        let mut piece = InBuffer::around(&input[..n]);
        while piece.pos() < n {
            let before = (piece.pos(), output.pos());
            let hint = dctx
                .decompress_stream(&mut output, &mut piece)
                .map_err(codec)?;
            if hint == 0 {
                // The frame is complete: it must have used every stored byte.
                if piece.pos() < n || left > 0 {
                    return Err(DecodeError::Codec("bytes follow the frame".into()));
                }
                return Ok(output.pos());
            }
            if (piece.pos(), output.pos()) == before {
                // No progress with input left: the output is full and the frame wants more.
                return Err(DecodeError::Codec("more than the frame's room".into()));
            }
        }
    }
    Err(DecodeError::Codec("the frame is incomplete".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustupdate_testkit::pseudo_random as noise;
    use std::io::Cursor;

    fn frame(content: &[u8], reference: &[u8]) -> Vec<u8> {
        let mut cctx = zstd::zstd_safe::CCtx::create();
        cctx.ref_prefix(reference).unwrap();
        let mut out = vec![0u8; zstd::zstd_safe::compress_bound(content.len())];
        let n = cctx.compress2(&mut out[..], content).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn a_frame_larger_than_one_piece_decodes_against_its_reference() {
        let reference = noise(300_000, 1);
        let mut content = noise(200_000, 2);
        content.extend_from_slice(&reference[1000..250_000]);
        let stored = frame(&content, &reference);
        assert!(stored.len() > INPUT_PIECE, "the test needs several pieces");
        let mut source = Cursor::new([stored.clone(), b"next".to_vec()].concat());
        let mut out = vec![0u8; content.len() + 1];
        let mut input = Vec::new();
        let n = decode_frame(
            &mut source,
            stored.len() as u64,
            &reference,
            &mut out,
            &mut input,
        );
        assert_eq!(n.unwrap(), content.len());
        assert_eq!(&out[..content.len()], &content[..]);
        assert_eq!(
            source.position(),
            stored.len() as u64,
            "reads its bytes and no more"
        );
        assert_eq!(input.len(), INPUT_PIECE);
    }

    /// Decodes `bytes` as a frame of `stored` bytes into `out`, without a reference.
    fn decode(bytes: &[u8], stored: u64, out: &mut [u8]) -> Result<usize, DecodeError> {
        decode_frame(&mut Cursor::new(bytes), stored, &[], out, &mut Vec::new())
    }

    fn codec_error(result: Result<usize, DecodeError>) -> String {
        match result {
            Err(DecodeError::Codec(why)) => why,
            other => panic!("expected a codec error, got {other:?}"),
        }
    }

    #[test]
    fn short_long_and_oversized_frames_are_errors() {
        let content = noise(100_000, 3);
        let stored = frame(&content, &[]);
        let len = stored.len() as u64;
        let mut out = vec![0u8; content.len() + 1];
        // Cut short: the stored length says less than the frame needs.
        let why = codec_error(decode(&stored, len - 10, &mut out));
        assert_eq!(why, "the frame is incomplete");
        // Bytes after the frame, within its stored length.
        let padded = [stored.clone(), vec![0; 5]].concat();
        let why = codec_error(decode(&padded, len + 5, &mut out));
        assert_eq!(why, "bytes follow the frame");
        // More content than the room given.
        codec_error(decode(&stored, len, &mut vec![0u8; 50_000]));
        // A truncated patch is a read error.
        let read = decode(&stored[..1000], len, &mut out);
        assert!(matches!(read, Err(DecodeError::Read(_))), "{read:?}");
        // Noise is no frame.
        codec_error(decode(&noise(8192, 4), 8192, &mut out));
    }
}
