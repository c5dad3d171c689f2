//! What a verifying source hands out ([`Chunk`], [`ChunkSource`]), and the reading helpers of
//! version 2 frames, clear or sealed.

use crate::Error;
use rustupdate_format::codec::{FrameDecoder, FrameError};
use rustupdate_seal::FrameOpener;
use std::io::Read;

/// A place where an interrupted first payload can continue: the start of a segment (its table),
/// and how much of the image comes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub segment: usize,
    pub image_offset: u64,
}

/// One verified chunk of a payload image.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// Offset of the chunk in the uncompressed image.
    pub offset: u64,
    pub data: ChunkData<'a>,
}

#[derive(Debug)]
pub enum ChunkData<'a> {
    /// Bytes whose sha256 matched the signed chunk table.
    Bytes(&'a [u8]),
    /// This many zero bytes.
    Zeros(u64),
}

impl ChunkData<'_> {
    pub fn len(&self) -> u64 {
        match self {
            ChunkData::Bytes(bytes) => bytes.len() as u64,
            ChunkData::Zeros(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the updater takes verified chunks of a payload from: an artifact's body
/// ([`PayloadReader`](crate::PayloadReader)) or a delta that rebuilds the body from a base image (`rustupdate-delta`).
/// Every chunk handed out has matched the signed chunk table; after the last one the source has
/// checked the whole-image hash.
pub trait ChunkSource {
    /// The next verified chunk, or `None` once the payload ended and its whole-image hash matched.
    fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, Error>;
    /// Right after the last chunk of a segment, where an interrupted install can continue; `None`
    /// elsewhere, or when the source cannot continue (see [`PayloadReader::segment_end`](crate::PayloadReader::segment_end)).
    fn segment_end(&self) -> Option<ResumePoint>;
}

/// Reads `out.len()` bytes of the current frame, and for its last chunk checks that the frame
/// ends there.
pub(crate) fn read_frame<S: Read>(
    frame: &mut FrameDecoder,
    source: &mut S,
    out: &mut [u8],
    last: bool,
) -> Result<(), FrameError> {
    frame.read_exact(source, out)?;
    if last {
        frame.finish(source)?;
    }
    Ok(())
}

/// The artifact as the frame decoder reads it when the frame is sealed: opened bytes.
pub(crate) struct Opened<'a, R> {
    pub(crate) opener: &'a mut FrameOpener,
    pub(crate) inner: &'a mut R,
}

impl<R: Read> Read for Opened<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.opener.read(self.inner, buf)
    }
}

/// A failure of the source as the reader reports it: a sealed block that does not open (passed
/// up through the frame decoder as an I/O error) is a verdict on the artifact, not an I/O error.
pub(crate) fn source_error(err: rustupdate_format::Error) -> Error {
    match err {
        rustupdate_format::Error::Io { part, source } => {
            if !source
                .get_ref()
                .is_some_and(|inner| inner.is::<rustupdate_seal::SealError>())
            {
                return rustupdate_format::Error::Io { part, source }.into();
            }
            match source.into_inner().map(|inner| inner.downcast()) {
                Some(Ok(sealed)) => Error::Sealed(*sealed),
                _ => unreachable!("checked to be a SealError above"),
            }
        }
        other => other.into(),
    }
}
