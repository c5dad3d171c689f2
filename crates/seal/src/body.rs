//! Sealing and opening a segment's table and frame with keys derived per segment.

use crate::{ContentKey, SealError};
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use rustupdate_format::encryption::{SEAL_BLOCK_LEN, SEAL_TAG_LEN};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use zeroize::Zeroizing;

const TABLE_INFO: &[u8] = b"rustupdate-table-v1";
const FRAME_INFO: &[u8] = b"rustupdate-frame-v1";
const BLOCK: usize = SEAL_BLOCK_LEN as usize;
const SEALED_BLOCK: usize = BLOCK + SEAL_TAG_LEN as usize;

/// The key of one part of one segment: HKDF-SHA256 of the content key with the part and the
/// segment's position as info. Each key seals one message (a table) or one STREAM (a frame), so
/// fixed nonces never repeat under a key.
fn part_cipher(key: &ContentKey, info: &[u8], payload: u32, segment: u32) -> ChaCha20Poly1305 {
    let mut label = info.to_vec();
    label.extend_from_slice(&payload.to_le_bytes());
    label.extend_from_slice(&segment.to_le_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, &key.0[..])
        .expand(&label, &mut okm[..])
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    ChaCha20Poly1305::new_from_slice(&okm[..])
        .unwrap_or_else(|_| unreachable!("HKDF made a 32-byte ChaCha20-Poly1305 key"))
}

/// A segment's table sealed whole (the table is read whole anyway: at most 320 KiB).
pub fn seal_table(key: &ContentKey, payload: u32, segment: u32, table: &[u8]) -> Vec<u8> {
    part_cipher(key, TABLE_INFO, payload, segment)
        .encrypt(&Nonce::default(), table)
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 seals any table length"))
}

pub fn open_table(
    key: &ContentKey,
    payload: u32,
    segment: u32,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut table = sealed.to_vec();
    open_table_in_place(key, payload, segment, &mut table)?;
    Ok(table)
}

/// The sha256 of `table` sealed (what an encrypted artifact signs as `table-sha256`), computed
/// where the table lies: sealed, hashed and opened again, so that no second buffer of up to
/// 320 KiB is held; `table` is left as it was.
pub fn sealed_table_sha256(
    key: &ContentKey,
    payload: u32,
    segment: u32,
    table: &mut Vec<u8>,
) -> [u8; 32] {
    let cipher = part_cipher(key, TABLE_INFO, payload, segment);
    cipher
        .encrypt_in_place(&Nonce::default(), &[], table)
        .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 seals any table length"));
    let digest = Sha256::digest(&table[..]).into();
    cipher
        .decrypt_in_place(&Nonce::default(), &[], table)
        .unwrap_or_else(|_| unreachable!("a table sealed a moment ago opens"));
    digest
}

/// Opens a sealed table where it lies (no second buffer of up to 320 KiB); on success `table`
/// holds the table in clear.
pub fn open_table_in_place(
    key: &ContentKey,
    payload: u32,
    segment: u32,
    table: &mut Vec<u8>,
) -> Result<(), SealError> {
    part_cipher(key, TABLE_INFO, payload, segment)
        .decrypt_in_place(&Nonce::default(), &[], table)
        .map_err(|_| SealError::Table { segment })
}

/// Seals the `plain_len` bytes of a frame from `src` into `dst`, block by block; returns the
/// sha256 of the sealed bytes (the manifest's `data-sha256`).
pub fn seal_frame<R: Read, W: Write>(
    key: &ContentKey,
    payload: u32,
    segment: u32,
    plain_len: u64,
    src: &mut R,
    dst: &mut W,
) -> io::Result<[u8; 32]> {
    let mut stream = Some(EncryptorBE32::from_aead(
        part_cipher(key, FRAME_INFO, payload, segment),
        &Default::default(),
    ));
    let mut digest = Sha256::new();
    let mut left = plain_len;
    let mut block = Vec::with_capacity(SEALED_BLOCK);
    while left > 0 {
        let n = left.min(SEAL_BLOCK_LEN) as usize;
        block.resize(n, 0);
        src.read_exact(&mut block)?;
        left -= n as u64;
        let sealed = if left == 0 {
            stream
                .take()
                .map(|last| last.encrypt_last_in_place(&[], &mut block))
        } else {
            stream
                .as_mut()
                .map(|next| next.encrypt_next_in_place(&[], &mut block))
        };
        if !matches!(sealed, Some(Ok(()))) {
            return Err(io::Error::other("sealing a frame block failed"));
        }
        digest.update(&block);
        dst.write_all(&block)?;
    }
    Ok(digest.finalize().into())
}

/// Opens one segment's sealed frame as it is read: each 64 KiB block is authenticated before
/// any of its bytes is handed on, and the sealed bytes' digest is compared with the signed one
/// when the last block was read. Holds one block (64 KiB + tag) whatever the frame's size.
#[derive(Default)]
pub struct FrameOpener {
    stream: Option<DecryptorBE32<ChaCha20Poly1305>>,
    segment: u32,
    block_index: u64,
    sealed_left: u64,
    block: Vec<u8>,
    pos: usize,
    digest: Sha256,
    expected: [u8; 32],
}

impl std::fmt::Debug for FrameOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameOpener")
            .field("segment", &self.segment)
            .field("sealed_left", &self.sealed_left)
            .finish()
    }
}

impl FrameOpener {
    /// Starts segment `segment`'s frame of `sealed_len` stored bytes whose sha256 is `expected`.
    pub fn start(
        &mut self,
        key: &ContentKey,
        payload: u32,
        segment: u32,
        sealed_len: u64,
        expected: [u8; 32],
    ) {
        self.stream = Some(DecryptorBE32::from_aead(
            part_cipher(key, FRAME_INFO, payload, segment),
            &Default::default(),
        ));
        self.segment = segment;
        self.block_index = 0;
        self.sealed_left = sealed_len;
        self.block.clear();
        self.pos = 0;
        self.digest = Sha256::new();
        self.expected = expected;
    }

    /// Reads opened bytes of the frame into `out` from `src` (the artifact after the frame's
    /// last byte read so far). `Ok(0)` at the end of the frame.
    pub fn read<R: Read>(&mut self, src: &mut R, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.block.len() {
            if self.sealed_left == 0 {
                return Ok(0);
            }
            self.next_block(src)?;
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn next_block<R: Read>(&mut self, src: &mut R) -> io::Result<()> {
        let n = self.sealed_left.min(SEALED_BLOCK as u64) as usize;
        self.block.resize(n, 0);
        src.read_exact(&mut self.block).map_err(|err| {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                invalid(SealError::FrameShort {
                    segment: self.segment,
                })
            } else {
                err
            }
        })?;
        self.digest.update(&self.block);
        self.sealed_left -= n as u64;
        let failed = || {
            invalid(SealError::Block {
                segment: self.segment,
                block: self.block_index,
            })
        };
        let opened = if self.sealed_left == 0 {
            match self.stream.take() {
                Some(stream) => stream.decrypt_last_in_place(&[], &mut self.block),
                None => return Err(failed()),
            }
        } else {
            match self.stream.as_mut() {
                Some(stream) => stream.decrypt_next_in_place(&[], &mut self.block),
                None => return Err(failed()),
            }
        };
        opened.map_err(|_| failed())?;
        self.block_index += 1;
        self.pos = 0;
        if self.sealed_left == 0 && self.digest.clone().finalize()[..] != self.expected[..] {
            return Err(invalid(SealError::FrameDigest {
                segment: self.segment,
            }));
        }
        Ok(())
    }

    /// Whether every sealed byte was read and every opened byte handed on.
    pub fn is_done(&self) -> bool {
        self.sealed_left == 0 && self.pos == self.block.len()
    }
}

/// Seals a clear payload body (version 2: per segment its table, then its frame) read from
/// `src` into `dst`, and updates `payload`'s segments to describe the sealed bytes: their
/// `table-sha256` and `data-sha256` are digests of what is stored, `data-size` the sealed length.
pub fn seal_payload_body<R: Read, W: Write>(
    key: &ContentKey,
    payload_index: u32,
    payload: &mut rustupdate_format::Payload,
    src: &mut R,
    dst: &mut W,
) -> io::Result<()> {
    let layout = rustupdate_format::TableLayout::Framed;
    for (index, segment) in payload.segments.iter_mut().enumerate() {
        let index = index as u32;
        let mut table = vec![0u8; segment.table_len(layout) as usize];
        src.read_exact(&mut table)?;
        let sealed = seal_table(key, payload_index, index, &table);
        dst.write_all(&sealed)?;
        segment.table_sha256 = rustupdate_format::Sha256Hex(Sha256::digest(&sealed).into());
        if segment.data_size > 0 {
            let digest = seal_frame(key, payload_index, index, segment.data_size, src, dst)?;
            segment.data_size = rustupdate_format::encryption::sealed_len(segment.data_size);
            segment.data_sha256 = Some(rustupdate_format::Sha256Hex(digest));
        }
    }
    Ok(())
}

/// An opening failure as the I/O error the frame decoder passes on (its message names it).
fn invalid(err: SealError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_digest_is_that_of_the_sealed_table_and_leaves_the_table_alone() {
        let key = ContentKey(Zeroizing::new([3; 32]));
        let table: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut work = table.clone();
        let digest = sealed_table_sha256(&key, 0, 2, &mut work);
        assert_eq!(work, table);
        let expected: [u8; 32] = Sha256::digest(seal_table(&key, 0, 2, &table)).into();
        assert_eq!(digest, expected);
        assert_ne!(digest, sealed_table_sha256(&key, 0, 3, &mut work));
    }
    use rustupdate_format::encryption::{opened_len, sealed_len};

    fn sealed(key: &ContentKey, segment: u32, plain: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let mut out = Vec::new();
        let digest = seal_frame(
            key,
            0,
            segment,
            plain.len() as u64,
            &mut &plain[..],
            &mut out,
        )
        .unwrap();
        (out, digest)
    }

    fn open(
        key: &ContentKey,
        segment: u32,
        sealed: &[u8],
        digest: [u8; 32],
    ) -> io::Result<Vec<u8>> {
        let mut opener = FrameOpener::default();
        opener.start(key, 0, segment, sealed.len() as u64, digest);
        let mut src = sealed;
        let mut out = Vec::new();
        let mut buf = [0u8; 5000];
        loop {
            let n = opener.read(&mut src, &mut buf)?;
            if n == 0 {
                assert!(opener.is_done());
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn frames_open_to_what_was_sealed_and_nothing_else() {
        let key = ContentKey::generate();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (frame, digest) = sealed(&key, 3, &plain);
        assert_eq!(frame.len() as u64, sealed_len(plain.len() as u64));
        assert_eq!(opened_len(frame.len() as u64), Some(plain.len() as u64));
        assert_eq!(open(&key, 3, &frame, digest).unwrap(), plain);
        // Another segment's key, a flipped bit in any block, a wrong digest, a cut frame.
        assert!(open(&key, 4, &frame, digest).is_err());
        for at in [0, SEALED_BLOCK + 3, frame.len() - 1] {
            let mut bad = frame.clone();
            bad[at] ^= 1;
            let err = open(&key, 3, &bad, digest).unwrap_err().to_string();
            assert!(err.contains("does not open"), "{at}: {err}");
        }
        let err = open(&key, 3, &frame, [0; 32]).unwrap_err().to_string();
        assert!(err.contains("data-sha256"), "{err}");
        // Dropping the last block and calling the one before it last does not open either.
        let cut = &frame[..2 * SEALED_BLOCK];
        assert!(open(&key, 3, cut, Sha256::digest(cut).into()).is_err());
    }

    #[test]
    fn tables_open_only_in_their_place() {
        let key = ContentKey::generate();
        let table = vec![9u8; 4000];
        let sealed = seal_table(&key, 0, 1, &table);
        assert_eq!(sealed.len(), table.len() + 16);
        assert_eq!(open_table(&key, 0, 1, &sealed).unwrap(), table);
        assert!(open_table(&key, 0, 2, &sealed).is_err());
        assert!(open_table(&key, 1, 1, &sealed).is_err());
        assert!(open_table(&ContentKey::generate(), 0, 1, &sealed).is_err());
    }
}
