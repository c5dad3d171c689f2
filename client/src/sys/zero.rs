//! Writing zero ranges cheaply: `BLKZEROOUT` on block devices (the kernel uses the device's
//! write-zeroes or discard support, or writes zero pages itself), `fallocate(PUNCH_HOLE)` on plain
//! files; plain zero writes when neither is available or the range is not sector aligned. Also
//! [`is_zero`], the check behind skipping blocks that already read back as zeros (`slots.rs`).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};

/// `_IO(0x12, 127)` from <linux/fs.h>.
const BLKZEROOUT: libc::c_ulong = 0x127f;
const SECTOR: u64 = 512;
static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    BlockZeroOut,
    PunchHole,
    Write,
}

impl Method {
    pub fn for_file(file: &File) -> Method {
        match file.metadata() {
            Ok(meta) if meta.file_type().is_block_device() => Method::BlockZeroOut,
            Ok(meta) if meta.file_type().is_file() => Method::PunchHole,
            _ => Method::Write,
        }
    }
}

/// Makes `len` bytes at `offset` read back as zeros. Returns the method that worked.
pub fn zero_range(file: &File, offset: u64, len: u64, method: Method) -> std::io::Result<Method> {
    let aligned = offset.is_multiple_of(SECTOR) && len.is_multiple_of(SECTOR);
    if aligned && method == Method::BlockZeroOut {
        let range: [u64; 2] = [offset, len];
        // SAFETY: BLKZEROOUT reads a `[u64; 2]` (start, length) through the pointer, which points
        // to a live, properly aligned array for the duration of the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
        if rc == 0 {
            return Ok(Method::BlockZeroOut);
        }
    }
    if method == Method::PunchHole {
        let (Ok(off), Ok(length)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return write_zeros(file, offset, len);
        };
        // SAFETY: fallocate(2) takes plain integers and a file descriptor we own; no memory is shared.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                length,
            )
        };
        if rc == 0 {
            return Ok(Method::PunchHole);
        }
    }
    write_zeros(file, offset, len)
}

/// Whether every byte of `bytes` is zero (a `memcmp` against a zero buffer, which is vectorised).
pub fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(ZEROS.len())
        .all(|part| part == &ZEROS[..part.len()])
}

fn write_zeros(file: &File, offset: u64, len: u64) -> std::io::Result<Method> {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], offset + done)?;
        done += n as u64;
    }
    Ok(Method::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn every_method_reads_back_zeros() {
        for method in [Method::PunchHole, Method::Write, Method::BlockZeroOut] {
            let file = tempfile::tempfile().unwrap();
            file.write_all_at(&[0xaa; 64 * 1024], 0).unwrap();
            zero_range(&file, 4096, 8192, method).unwrap();
            zero_range(&file, 20_001, 99, method).unwrap(); // unaligned: falls back to writes
            let mut back = vec![0u8; 64 * 1024];
            file.read_exact_at(&mut back, 0).unwrap();
            assert!(back[..4096].iter().all(|b| *b == 0xaa));
            assert!(back[4096..12288].iter().all(|b| *b == 0));
            assert!(back[12288..20_001].iter().all(|b| *b == 0xaa));
            assert!(back[20_001..20_100].iter().all(|b| *b == 0));
            assert!(back[20_100..].iter().all(|b| *b == 0xaa));
            assert_eq!(file.metadata().unwrap().len(), 64 * 1024, "size kept");
        }
    }

    #[test]
    fn is_zero_sees_a_single_set_byte_anywhere() {
        let mut bytes = vec![0u8; ZEROS.len() + 4096];
        assert!(is_zero(&bytes));
        assert!(is_zero(&[]));
        for at in [0, 4095, ZEROS.len() - 1, ZEROS.len(), bytes.len() - 1] {
            bytes[at] = 1;
            assert!(!is_zero(&bytes), "byte {at}");
            bytes[at] = 0;
        }
    }
}
