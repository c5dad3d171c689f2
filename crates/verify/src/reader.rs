//! The verifying streaming reader.
//!
//! [`VerifiedArtifact::open`] reads the header, manifest and signatures and enforces the signature
//! policy over the raw manifest bytes before it parses them (parsing a hostile 1 MiB TOML manifest
//! could take over 100 MiB); only then can payloads be read. [`PayloadReader::next_chunk`] reads one chunk table
//! segment at a time (checking its sha256 against the signed manifest), then yields each chunk
//! only after its uncompressed bytes matched the table's sha256. After the last chunk it checks that
//! the chunks covered exactly the payload size and that the whole-image sha256 matches.
//!
//! Memory is bounded whatever the input: one segment table (at most 320 KiB), one stored chunk and
//! one decompressed chunk (at most 1 MiB each), plus the manifest (at most 1 MiB); for format
//! version 2 the frame decoder's window (at most 8 MiB) and its 64 KiB input buffer; for an
//! encrypted artifact one sealed block (64 KiB and its tag).
//!
//! Encrypted artifacts (`docs/encryption.md`) are opened with [`VerifiedArtifact::unlock`]
//! before the body is read: each table is checked against the signed digest of its sealed bytes,
//! then opened; each frame is opened block by block (`rustupdate_seal::FrameOpener`) and its
//! sealed bytes checked against the signed `data-sha256`; every chunk is checked as before.

use crate::image_hash::ImageHash;
use crate::{Error, Keyring, SignaturePolicy, check_manifest_signatures};
use rustupdate_format::codec::{ChunkDecoder, FrameDecoder, FrameError};
use rustupdate_format::{
    CheckedTable, ChunkKind, Head, KeyId, Manifest, Payload, TableLayout, encryption,
    read_exact_or, read_raw_head,
};
use rustupdate_seal::{ContentKey, FrameOpener};
use sha2::{Digest, Sha256};

pub use crate::chunk::{Chunk, ChunkData, ChunkSource, ResumePoint};
use crate::chunk::{Opened, read_frame, source_error};
use std::io::Read;

/// An artifact whose signatures satisfied the policy. Payload bytes come out of it verified.
#[derive(Debug)]
pub struct VerifiedArtifact<R: Read> {
    pub(crate) head: Head,
    pub(crate) signers: Vec<KeyId>,
    pub(crate) reader: R,
    pub(crate) next_payload: usize,
    pub(crate) payload_open: bool,
    parallel_image_hash: bool,
    /// Set by [`VerifiedArtifact::resume`]: the reader starts at this point of payload 0.
    resume: Option<ResumePoint>,
    /// Set by [`VerifiedArtifact::unlock`] for an encrypted artifact.
    pub(crate) content_key: Option<ContentKey>,
}

/// Reads an artifact's head and checks its signatures before the manifest is parsed.
pub fn read_verified_head<H: Read>(
    reader: &mut H,
    keyring: &Keyring,
    policy: &SignaturePolicy,
) -> Result<(Head, Vec<KeyId>), Error> {
    let raw = read_raw_head(reader)?;
    // Signatures first: an unsigned or forged manifest is never parsed.
    let signers = check_manifest_signatures(&raw.manifest_bytes, &raw.signatures, keyring, policy)?;
    Ok((raw.parse()?, signers))
}

impl<R: Read> VerifiedArtifact<R> {
    /// Reads the head and checks the signatures. Nothing of the body has been read when this returns.
    pub fn open(
        mut reader: R,
        keyring: &Keyring,
        policy: &SignaturePolicy,
    ) -> Result<VerifiedArtifact<R>, Error> {
        let (head, signers) = read_verified_head(&mut reader, keyring, policy)?;
        Ok(VerifiedArtifact {
            head,
            signers,
            reader,
            next_payload: 0,
            payload_open: false,
            parallel_image_hash: false,
            resume: None,
            content_key: None,
        })
    }

    /// An artifact whose first payload continues at `point`: `head` and `signers` come from
    /// [`read_verified_head`], and `body` delivers the artifact from
    /// [`Head::segment_offset`]`(0, point.segment)` on (a `Range` request). Read the payload with
    /// [`VerifiedArtifact::resume_payload`]. Every chunk from there on is verified as usual; the
    /// bytes before `point` are vouched for by the whole-image hash at the end.
    pub fn resume(
        head: Head,
        signers: Vec<KeyId>,
        body: R,
        point: ResumePoint,
    ) -> Result<VerifiedArtifact<R>, Error> {
        let Some(payload) = head.manifest.payloads.first() else {
            return Err(Error::Resume("the artifact has no payload".into()));
        };
        if point.segment >= payload.segments.len() || point.image_offset > payload.size {
            return Err(Error::Resume(format!(
                "segment {} at image offset {} is outside payload {:?} ({} segments, {} bytes)",
                point.segment,
                point.image_offset,
                payload.name,
                payload.segments.len(),
                payload.size
            )));
        }
        Ok(VerifiedArtifact {
            head,
            signers,
            reader: body,
            next_payload: 0,
            payload_open: false,
            parallel_image_hash: false,
            resume: Some(point),
            content_key: None,
        })
    }

    /// The first payload of a resumed artifact, continuing at its resume point. `prefix` yields
    /// the image bytes before it (read back from the slot); they feed the whole-image hash.
    pub fn resume_payload(&mut self, prefix: &mut dyn Read) -> Result<PayloadReader<'_, R>, Error> {
        self.check_unlocked()?;
        let Some(point) = self.resume.take() else {
            return Err(Error::Resume(
                "the artifact was not opened to resume".into(),
            ));
        };
        let mut image_hash = ImageHash::new(self.parallel_image_hash);
        let mut left = point.image_offset;
        let mut buf = vec![0u8; 256 * 1024];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match prefix.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(Error::Resume(format!(
                        "the image before the resume point ended {left} bytes early"
                    )));
                }
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Error::Resume(format!("reading the image back: {err}"))),
            };
            image_hash.data(&buf[..n]);
            left -= n as u64;
        }
        self.payload_open = true;
        Ok(PayloadReader::new(
            self,
            0,
            point.segment,
            point.image_offset,
            image_hash,
        ))
    }

    /// Computes the whole-image sha256 on a helper thread, beside decompression and chunk
    /// verification (same result; faster on multi-core devices).
    pub fn with_parallel_image_hash(mut self, parallel: bool) -> Self {
        self.parallel_image_hash = parallel;
        self
    }

    pub fn manifest(&self) -> &Manifest {
        &self.head.manifest
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Distinct trusted keys whose signatures verified.
    pub fn signers(&self) -> &[KeyId] {
        &self.signers
    }

    /// The verified head and the reader, positioned at the body (see `check_sealed_body`).
    pub fn into_parts(self) -> (Head, R) {
        (self.head, self.reader)
    }

    /// The reader the artifact comes from (to ask it, e.g., for the length it announced).
    pub fn source(&self) -> &R {
        &self.reader
    }

    /// Checks the length of the whole source against the signed head, before any payload byte
    /// is read: bytes appended after the last payload, or a source too short for its payloads,
    /// are refused up front instead of being found after the image was written.
    pub fn check_source_len(&self, len: u64) -> Result<(), Error> {
        let expected = self.head.artifact_len();
        if len > expected {
            return Err(Error::TrailingData);
        }
        if len < expected {
            return Err(rustupdate_format::Error::Truncated { part: "body" }.into());
        }
        Ok(())
    }

    /// The next payload, in manifest order; `None` after the last one. The previous payload must
    /// have been read to its end.
    pub fn next_payload(&mut self) -> Result<Option<PayloadReader<'_, R>>, Error> {
        if self.payload_open {
            return Err(Error::Unfinished);
        }
        if self.resume.is_some() {
            return Err(Error::Resume(
                "a resumed artifact is read with resume_payload".into(),
            ));
        }
        if self.next_payload >= self.head.manifest.payloads.len() {
            return Ok(None);
        }
        self.check_unlocked()?;
        self.payload_open = true;
        let index = self.next_payload;
        let image_hash = ImageHash::new(self.parallel_image_hash);
        Ok(Some(PayloadReader::new(self, index, 0, 0, image_hash)))
    }

    /// Checks that every payload was read and that nothing follows the last one.
    pub fn finish(mut self) -> Result<(), Error> {
        if self.payload_open || self.next_payload != self.head.manifest.payloads.len() {
            return Err(Error::Unfinished);
        }
        let mut probe = [0u8; 1];
        loop {
            match self.reader.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(Error::TrailingData),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(rustupdate_format::Error::Io {
                        part: "end of artifact",
                        source,
                    }
                    .into());
                }
            }
        }
    }
}

impl<R: Read> ChunkSource for PayloadReader<'_, R> {
    fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, Error> {
        PayloadReader::next_chunk(self)
    }

    fn segment_end(&self) -> Option<ResumePoint> {
        PayloadReader::segment_end(self)
    }
}

/// Reads one payload chunk by chunk, verifying as it goes.
#[derive(Debug)]
pub struct PayloadReader<'a, R: Read> {
    artifact: &'a mut VerifiedArtifact<R>,
    index: usize,
    segment: usize,
    /// The current segment's table, kept encoded (decoded entry by entry as they are reached).
    table: CheckedTable,
    entry: usize,
    segment_data_left: u64,
    offset: u64,
    image_hash: Option<ImageHash>,
    stored: Vec<u8>,
    out: Vec<u8>,
    decoder: ChunkDecoder,
    /// Version 2: the current segment's frame, and the index of its last data entry (the frame
    /// must end right after it).
    frame: FrameDecoder,
    /// Encrypted artifacts: opens the current segment's sealed frame under the frame decoder.
    opener: FrameOpener,
    last_data_entry: Option<usize>,
    done: bool,
}

impl<'a, R: Read> PayloadReader<'a, R> {
    pub(crate) fn new(
        artifact: &'a mut VerifiedArtifact<R>,
        index: usize,
        segment: usize,
        offset: u64,
        image_hash: ImageHash,
    ) -> Self {
        PayloadReader {
            artifact,
            index,
            segment,
            table: CheckedTable::empty(TableLayout::Framed),
            entry: 0,
            segment_data_left: 0,
            offset,
            image_hash: Some(image_hash),
            stored: Vec::new(),
            out: Vec::new(),
            decoder: ChunkDecoder::default(),
            frame: FrameDecoder::default(),
            opener: FrameOpener::default(),
            last_data_entry: None,
            done: false,
        }
    }

    pub fn payload(&self) -> &Payload {
        &self.artifact.head.manifest.payloads[self.index]
    }

    /// Bytes of the image yielded so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Right after the last chunk of a segment that is followed by another one: the point where
    /// an interrupted download of the first payload can continue (see
    /// [`VerifiedArtifact::resume`]). `None` anywhere else.
    pub fn segment_end(&self) -> Option<ResumePoint> {
        let at_end = self.index == 0
            && !self.done
            && !self.table.is_empty()
            && self.entry == self.table.len()
            && self.segment_data_left == 0
            && self.segment < self.payload().segments.len();
        at_end.then_some(ResumePoint {
            segment: self.segment,
            image_offset: self.offset,
        })
    }

    /// The next verified chunk, or `None` once the payload ended and its whole-image hash matched.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk<'_>>, Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.entry < self.table.len() {
                break;
            }
            if self.segment_data_left != 0 {
                return Err(self.layout_error(format!("segment {} has unread data", self.segment)));
            }
            if self.segment == self.payload().segments.len() {
                self.finish_payload()?;
                return Ok(None);
            }
            self.load_segment()?;
        }
        let entry = self.table.entry(self.entry)?;
        self.entry += 1;
        let offset = self.offset;
        let payload_size = self.payload().size;
        if entry.size > payload_size - offset {
            return Err(self.layout_error(format!(
                "chunk at offset {offset} runs past the image size {payload_size}"
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
                let name = || {
                    self.artifact.head.manifest.payloads[self.index]
                        .name
                        .clone()
                };
                match self.artifact.head.layout() {
                    TableLayout::PerChunk => {
                        self.segment_data_left -= u64::from(entry.stored_len);
                        self.stored.resize(entry.stored_len as usize, 0);
                        read_exact_or(&mut self.artifact.reader, &mut self.stored, "payload data")?;
                        self.decoder
                            .decode(
                                entry.codec,
                                &self.stored,
                                entry.size as usize,
                                &mut self.out,
                            )
                            .map_err(|reason| Error::Decompress {
                                payload: name(),
                                offset,
                                reason,
                            })?;
                    }
                    TableLayout::Framed => {
                        let frame_err = |err: FrameError| match err {
                            FrameError::Source(err) => source_error(err),
                            FrameError::Codec(reason) => Error::Decompress {
                                payload: name(),
                                offset,
                                reason,
                            },
                        };
                        self.out.resize(entry.size as usize, 0);
                        // The frame must end right after its last chunk, before that chunk is
                        // handed on: a segment is complete (a resume point) when it is yielded.
                        let last = self.last_data_entry == Some(self.entry - 1);
                        let reader = &mut self.artifact.reader;
                        if self.artifact.content_key.is_some() {
                            let mut opened = Opened {
                                opener: &mut self.opener,
                                inner: reader,
                            };
                            read_frame(&mut self.frame, &mut opened, &mut self.out, last)
                                .map_err(frame_err)?;
                            if last && !self.opener.is_done() {
                                return Err(self.layout_error(format!(
                                    "segment {}: the sealed frame holds more than its data",
                                    self.segment - 1
                                )));
                            }
                        } else {
                            read_frame(&mut self.frame, reader, &mut self.out, last)
                                .map_err(frame_err)?;
                        }
                        if last {
                            self.segment_data_left = 0;
                        }
                    }
                }
                if Sha256::digest(&self.out)[..] != entry.sha256[..] {
                    return Err(Error::ChunkHashMismatch {
                        payload: name(),
                        offset,
                    });
                }
                if let Some(hash) = self.image_hash.as_mut() {
                    hash.data(&self.out);
                }
                Ok(Some(Chunk {
                    offset,
                    data: ChunkData::Bytes(&self.out),
                }))
            }
        }
    }

    fn load_segment(&mut self) -> Result<(), Error> {
        let segment = self.payload().segments[self.segment].clone();
        let layout = self.artifact.head.layout();
        let key = self.artifact.content_key.as_ref();
        // The previous table's buffer, for this one.
        let mut table =
            std::mem::replace(&mut self.table, CheckedTable::empty(layout)).into_buffer();
        table.resize(segment.stored_table_len(layout, key.is_some()) as usize, 0);
        read_exact_or(&mut self.artifact.reader, &mut table, "chunk table")?;
        // Sealed or not, the stored bytes are checked against the signed digest first.
        if Sha256::digest(&table)[..] != segment.table_sha256.0[..] {
            let payload = self.payload().name.clone();
            return Err(Error::SegmentHashMismatch {
                payload,
                segment: self.segment,
            });
        }
        if let Some(key) = key {
            rustupdate_seal::open_table_in_place(
                key,
                self.index as u32,
                self.segment as u32,
                &mut table,
            )?;
        }
        self.table = CheckedTable::check(layout, table)?;
        let stored_total = self.table.summary().stored_total;
        if layout == TableLayout::Framed {
            return self.start_frame(&segment);
        }
        if stored_total != segment.data_size {
            return Err(self.layout_error(format!(
                "segment {} stores {stored_total} bytes but the manifest says {}",
                self.segment, segment.data_size
            )));
        }
        self.segment_data_left = segment.data_size;
        self.segment += 1;
        self.entry = 0;
        Ok(())
    }

    /// Version 2: the segment's data is one frame of `data_size` stored bytes (sealed, for an
    /// encrypted artifact: its opened length is what the frame decoder reads).
    fn start_frame(&mut self, segment: &rustupdate_format::Segment) -> Result<(), Error> {
        let data_size = segment.data_size;
        self.last_data_entry = self.table.summary().last_data;
        if self.last_data_entry.is_none() && data_size != 0 {
            return Err(self.layout_error(format!(
                "segment {} has no data chunks but stores {data_size} bytes",
                self.segment
            )));
        }
        let codec = self.payload().compression;
        let mut frame_len = data_size;
        if let (Some(key), Some(_)) = (&self.artifact.content_key, self.last_data_entry) {
            let (Some(opened), Some(digest)) =
                (encryption::opened_len(data_size), segment.data_sha256)
            else {
                return Err(self.layout_error(format!(
                    "segment {} is no sealed frame of {data_size} bytes",
                    self.segment
                )));
            };
            self.opener.start(
                key,
                self.index as u32,
                self.segment as u32,
                data_size,
                digest.0,
            );
            frame_len = opened;
        }
        if self.last_data_entry.is_some() {
            let segment = self.segment;
            self.frame
                .start(codec, frame_len)
                .map_err(|err| match err {
                    FrameError::Source(err) => Error::from(err),
                    FrameError::Codec(reason) => rustupdate_format::Error::PayloadLayout {
                        payload: self.payload().name.clone(),
                        reason: format!("segment {segment}: {reason}"),
                    }
                    .into(),
                })?;
        }
        self.segment_data_left = if self.last_data_entry.is_some() {
            data_size
        } else {
            0
        };
        self.segment += 1;
        self.entry = 0;
        Ok(())
    }

    fn finish_payload(&mut self) -> Result<(), Error> {
        let (size, expected) = (self.payload().size, self.payload().sha256);
        if self.offset != size {
            return Err(self.layout_error(format!(
                "chunks cover {} bytes, the image has {size}",
                self.offset
            )));
        }
        let digest = self.image_hash.take().and_then(ImageHash::finish);
        if digest != Some(expected.0) {
            return Err(Error::ImageHashMismatch {
                payload: self.payload().name.clone(),
            });
        }
        self.done = true;
        self.artifact.payload_open = false;
        self.artifact.next_payload += 1;
        Ok(())
    }

    fn layout_error(&self, reason: String) -> Error {
        rustupdate_format::Error::PayloadLayout {
            payload: self.payload().name.clone(),
            reason,
        }
        .into()
    }
}
