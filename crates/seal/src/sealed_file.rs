//! Sealed files that open by position: a clear header, a random salt, then the rest of the file
//! sealed in 64 KiB STREAM blocks (`aead::stream`, big-endian 32-bit counter and last-block
//! flag) under a key derived from an artifact's content key and the salt. A delta patch of an
//! encrypted release is one (`docs/encryption.md`): its applier seeks, so [`SealedFile`] opens
//! whichever block a read needs, each authenticated before a byte of it is handed on.
//!
//! ```text
//! [header: clear, the associated data of every block][salt: 32 bytes][sealed blocks ...]
//! ```
//!
//! The salt makes each file's key its own, so the fixed STREAM nonce never repeats under a key
//! however many files one content key seals. A truncated file fails at its (no longer) last block.

use crate::ContentKey;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use hkdf::Hkdf;
use rand_core::RngCore;
use rustupdate_format::encryption::{SEAL_BLOCK_LEN, SEAL_TAG_LEN, opened_len};
use sha2::Sha256;
use std::io::{self, Read, Seek, SeekFrom, Write};
use zeroize::Zeroizing;

const FILE_INFO: &[u8] = b"rustupdate-sealed-file-v1";
/// Bytes of the random salt after the clear header.
pub const SALT_LEN: usize = 32;
const BLOCK: usize = SEAL_BLOCK_LEN as usize;
const SEALED_BLOCK: u64 = SEAL_BLOCK_LEN + SEAL_TAG_LEN;

fn file_stream(key: &ContentKey, salt: &[u8; SALT_LEN]) -> StreamBE32<ChaCha20Poly1305> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), &key.0[..])
        .expand(FILE_INFO, &mut okm[..])
        .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    let cipher = ChaCha20Poly1305::new_from_slice(&okm[..])
        .unwrap_or_else(|_| unreachable!("HKDF made a 32-byte ChaCha20-Poly1305 key"));
    StreamBE32::from_aead(cipher, &Default::default())
}

/// Writes `header`, a fresh salt and `body` sealed block by block to `dst`; returns the bytes
/// written. The body must not be empty (a STREAM needs a last block).
pub fn seal_file<W: Write>(
    key: &ContentKey,
    header: &[u8],
    body: &[u8],
    dst: &mut W,
) -> io::Result<u64> {
    if body.is_empty() {
        return Err(io::Error::other("a sealed file needs a body"));
    }
    if body.len().div_ceil(BLOCK) > u32::MAX as usize {
        return Err(io::Error::other("too large for a sealed file"));
    }
    let mut salt = [0u8; SALT_LEN];
    rand_core::OsRng.fill_bytes(&mut salt);
    let stream = file_stream(key, &salt);
    dst.write_all(header)?;
    dst.write_all(&salt)?;
    let mut written = (header.len() + SALT_LEN) as u64;
    let blocks = body.len().div_ceil(BLOCK);
    let mut block = Vec::with_capacity(BLOCK + SEAL_TAG_LEN as usize);
    for (index, plain) in body.chunks(BLOCK).enumerate() {
        block.clear();
        block.extend_from_slice(plain);
        stream
            .encrypt_in_place(index as u32, index + 1 == blocks, header, &mut block)
            .map_err(|_| io::Error::other("sealing a block failed"))?;
        dst.write_all(&block)?;
        written += block.len() as u64;
    }
    Ok(written)
}

/// A sealed file read as its clear header followed by its opened body, by position. Holds one
/// block (64 KiB and its tag).
pub struct SealedFile<R> {
    inner: R,
    stream: StreamBE32<ChaCha20Poly1305>,
    header: Vec<u8>,
    /// Opened bytes after the header, and sealed blocks holding them.
    body_len: u64,
    blocks: u64,
    pos: u64,
    block: Vec<u8>,
    loaded: Option<u64>,
}

impl<R> std::fmt::Debug for SealedFile<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedFile")
            .field("header_len", &self.header.len())
            .field("body_len", &self.body_len)
            .field("pos", &self.pos)
            .finish()
    }
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

impl<R: Read + Seek> SealedFile<R> {
    /// Opens the sealed file in `inner` whose clear header is `header_len` bytes. Only the
    /// header, the salt and the length are read here; blocks are opened as they are read.
    pub fn open(mut inner: R, key: &ContentKey, header_len: usize) -> io::Result<Self> {
        let len = inner.seek(SeekFrom::End(0))?;
        let sealed = len
            .checked_sub((header_len + SALT_LEN) as u64)
            .ok_or_else(|| invalid(format!("the sealed file is {len} bytes: cut short")))?;
        let body_len = opened_len(sealed).filter(|&n| n > 0).ok_or_else(|| {
            invalid(format!(
                "{sealed} sealed bytes are no whole sealed blocks (the file is cut short)"
            ))
        })?;
        let blocks = sealed.div_ceil(SEALED_BLOCK);
        if blocks > u64::from(u32::MAX) {
            return Err(invalid("the sealed file has too many blocks".into()));
        }
        inner.seek(SeekFrom::Start(0))?;
        let mut header = vec![0u8; header_len];
        inner.read_exact(&mut header)?;
        let mut salt = [0u8; SALT_LEN];
        inner.read_exact(&mut salt)?;
        Ok(SealedFile {
            stream: file_stream(key, &salt),
            inner,
            header,
            body_len,
            blocks,
            pos: 0,
            block: Vec::with_capacity(SEALED_BLOCK as usize),
            loaded: None,
        })
    }

    /// Bytes of the opened view: the header and the opened body.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.body_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn load(&mut self, index: u64) -> io::Result<()> {
        if self.loaded == Some(index) {
            return Ok(());
        }
        self.loaded = None;
        let start = (self.header.len() + SALT_LEN) as u64 + index * SEALED_BLOCK;
        let sealed_end = (self.header.len() + SALT_LEN) as u64
            + rustupdate_format::encryption::sealed_len(self.body_len);
        let n = (sealed_end - start).min(SEALED_BLOCK) as usize;
        self.block.resize(n, 0);
        self.inner.seek(SeekFrom::Start(start))?;
        self.inner.read_exact(&mut self.block)?;
        let last = index + 1 == self.blocks;
        self.stream
            .decrypt_in_place(index as u32, last, &self.header, &mut self.block)
            .map_err(|_| {
                invalid(format!(
                    "sealed block {index} does not open (a wrong key, or the file was altered)"
                ))
            })?;
        self.loaded = Some(index);
        Ok(())
    }
}

impl<R: Read + Seek> Read for SealedFile<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let header_len = self.header.len() as u64;
        if self.pos < header_len {
            let from = self.pos as usize;
            let n = out.len().min(self.header.len() - from);
            out[..n].copy_from_slice(&self.header[from..from + n]);
            self.pos += n as u64;
            return Ok(n);
        }
        let at = self.pos - header_len;
        if at >= self.body_len || out.is_empty() {
            return Ok(0);
        }
        let index = at / SEAL_BLOCK_LEN;
        self.load(index)?;
        let from = (at % SEAL_BLOCK_LEN) as usize;
        let n = out.len().min(self.block.len() - from);
        out[..n].copy_from_slice(&self.block[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealedFile<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn key() -> ContentKey {
        ContentKey(Zeroizing::new([7; 32]))
    }

    fn sealed(header: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = seal_file(&key(), header, body, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn reads_anywhere_give_the_header_then_the_body() {
        let plain = body(3 * BLOCK + 100);
        let file = sealed(b"HEAD", &plain);
        assert_eq!(file.len(), 4 + SALT_LEN + plain.len() + 4 * 16);
        let mut opened = SealedFile::open(Cursor::new(&file), &key(), 4).unwrap();
        assert_eq!(opened.len(), 4 + plain.len() as u64);
        let mut all = Vec::new();
        opened.read_to_end(&mut all).unwrap();
        assert_eq!(&all[..4], b"HEAD");
        assert_eq!(&all[4..], &plain[..]);
        // Backwards and across a block boundary.
        for at in [2 * BLOCK as u64 - 10, 5, BLOCK as u64 + 2] {
            opened.seek(SeekFrom::Start(at + 4)).unwrap();
            let mut part = [0u8; 40];
            opened.read_exact(&mut part).unwrap();
            assert_eq!(&part[..], &plain[at as usize..at as usize + 40]);
        }
    }

    #[test]
    fn each_file_has_its_own_key() {
        let plain = body(1000);
        let (a, b) = (sealed(b"H", &plain), sealed(b"H", &plain));
        assert_ne!(a[1 + SALT_LEN..], b[1 + SALT_LEN..]);
    }

    #[test]
    fn a_wrong_key_an_altered_header_or_block_and_a_cut_are_refused() {
        let plain = body(2 * BLOCK + 1);
        let file = sealed(b"HEAD", &plain);
        let read_all = |bytes: &[u8], key: &ContentKey| -> io::Result<Vec<u8>> {
            let mut opened = SealedFile::open(Cursor::new(bytes), key, 4)?;
            let mut all = Vec::new();
            opened.read_to_end(&mut all)?;
            Ok(all)
        };
        let other = ContentKey(Zeroizing::new([8; 32]));
        let err = read_all(&file, &other).unwrap_err();
        assert!(err.to_string().contains("block 0 does not open"), "{err}");
        for at in [1, 4 + 3, 4 + SALT_LEN + 5, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(read_all(&bad, &key()).is_err(), "byte {at} altered");
        }
        // Cut to whole blocks: the new last block was sealed as not last.
        let cut = &file[..4 + SALT_LEN + 2 * SEALED_BLOCK as usize];
        let err = read_all(cut, &key()).unwrap_err();
        assert!(err.to_string().contains("block 1 does not open"), "{err}");
        let err = read_all(&file[..file.len() - 5], &key()).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        assert!(seal_file(&key(), b"H", b"", &mut Vec::new()).is_err());
    }
}
