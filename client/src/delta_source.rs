//! The I/O around a delta install: the artifact's signed head fetched alone (a `Range` request),
//! the patch downloaded to the data partition (resumed after an interruption, a power cut
//! included), and the active slot read as the base.
//!
//! It decides nothing about trust: the head's signatures are checked by the caller, and every
//! chunk the patch rebuilds by `rustupdate-delta` against the signed tables.

use crate::source::{HttpReader, plain_agent};
use crate::sys::advice;

/// Opens an HTTP(S) location for reading: plain for `install --delta`, with the device's
/// credentials for the fleet server's links (the daemon).
pub type OpenUrl<'a> = &'a dyn Fn(&str) -> Result<HttpReader>;

/// [`OpenUrl`] without credentials.
pub fn open_plain(location: &str) -> Result<HttpReader> {
    Ok(HttpReader::new(plain_agent(), location, None))
}
use anyhow::{Context, Result, bail};
use rustupdate_delta::BaseImage;
use rustupdate_format::{header, limits, signature_block};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes asked for first when fetching a head: the manifest of a 512 MiB image is about 1.5 KiB;
/// a larger head is fetched with a second request.
const HEAD_PROBE: u64 = 4 * 1024;
/// Directory under the data directory where patches are downloaded.
pub const PATCH_DIR: &str = "delta";
/// How often a patch download in progress is synced (the point a power cut resumes from).
const PATCH_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// The head of the artifact at `location` (header, manifest, signatures), without its body.
pub fn fetch_head(location: &str, open: OpenUrl) -> Result<Vec<u8>> {
    let mut head = read_range(location, 0, HEAD_PROBE, open)?;
    if head.len() < header::HEADER_LEN {
        bail!("artifact {location} is shorter than its header");
    }
    let fixed: [u8; header::HEADER_LEN] =
        head[..header::HEADER_LEN].try_into().context("header")?;
    let parsed =
        header::Header::from_bytes(&fixed).with_context(|| format!("artifact {location}"))?;
    let len = (header::HEADER_LEN
        + parsed.manifest_len as usize
        + parsed.signature_count as usize * signature_block::SIGNATURE_ENTRY_LEN)
        as u64;
    debug_assert!(len <= (limits::MAX_MANIFEST_LEN + 4096) as u64);
    if (head.len() as u64) < len {
        let rest = read_range(location, head.len() as u64, len - head.len() as u64, open)?;
        head.extend_from_slice(&rest);
    }
    head.truncate(len as usize);
    if (head.len() as u64) < len {
        bail!("artifact {location} is truncated in its head");
    }
    Ok(head)
}

/// Up to `len` bytes at `offset` of a file or URL (fewer at the end).
fn read_range(location: &str, offset: u64, len: u64, open: OpenUrl) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if is_url(location) {
        // From the start (heads are small, and a second request is rare): a server without
        // Range support answers 200 with the whole file, of which the part wanted is read and
        // the connection dropped.
        let mut reader = open(location)?.range(0, offset + len);
        std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
            .with_context(|| format!("GET {location}"))?;
        reader
            .take(len)
            .read_to_end(&mut out)
            .with_context(|| format!("GET {location}"))?;
    } else {
        let file = File::open(location).with_context(|| format!("opening {location}"))?;
        let mut reader = file.take(offset + len);
        std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())?;
        reader.read_to_end(&mut out)?;
    }
    Ok(out)
}

/// A patch ready to apply: a local file (deleted when dropped if it was downloaded).
pub struct LocalPatch {
    pub file: File,
    path: PathBuf,
    downloaded: bool,
}

impl Drop for LocalPatch {
    fn drop(&mut self) {
        if self.downloaded {
            let _ = std::fs::remove_file(&self.path);
            let mut synced = self.path.clone().into_os_string();
            synced.push(".synced");
            let _ = std::fs::remove_file(synced);
        }
    }
}

/// The patch at `location`: opened in place when it is a file; downloaded into `data_dir/delta`
/// when it is a URL, continuing a download an earlier attempt (or a power cut) left there. A
/// patch longer than the artifact `head` describes (a patch that large saves nothing) is refused.
/// `key`: an encrypted artifact's content key, which opens its sealed patch.
pub fn fetch_patch(
    location: &str,
    data_dir: &Path,
    head: &rustupdate_format::Head,
    key: Option<&rustupdate_seal::ContentKey>,
    open: OpenUrl,
) -> Result<LocalPatch> {
    let max_len = head.artifact_len();
    if !is_url(location) {
        let file = File::open(location).with_context(|| format!("opening patch {location}"))?;
        return Ok(LocalPatch {
            file,
            path: location.into(),
            downloaded: false,
        });
    }
    let dir = data_dir.join(PATCH_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = location
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .unwrap_or("patch");
    let path = dir.join(format!("{name}.part"));
    let synced_path = dir.join(format!("{name}.part.synced"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // Only the bytes synced at a checkpoint are known good: after a power cut ext4 may show a
    // longer file whose tail was never written (the size reached the journal, the data did not).
    let synced = std::fs::read_to_string(&synced_path)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut have = file.seek(SeekFrom::End(0))?;
    if have > synced {
        file.set_len(synced)?;
        have = synced;
    }
    // Complete already (a power cut after the download, during the install): use it. A sealed
    // patch is measured opened: one cut at a block boundary still reads as whole blocks.
    if have > 0
        && let Ok((mut opened, header)) = rustupdate_delta::open_patch(&mut file, head, key)
        && opened.patch_len().ok() == Some(header.patch_len())
    {
        log::info!("patch {location}: {have} bytes, downloaded before");
        file.seek(SeekFrom::Start(0))?;
        return Ok(LocalPatch {
            file,
            path,
            downloaded: true,
        });
    }
    file.seek(SeekFrom::End(0))?;
    let mut reader = open(location)?;
    if have > 0 {
        log::info!("resuming the patch download at byte {have}");
        reader = reader.starting_at(have);
        if let Err(err) = reader.connect_now() {
            // No Range support (or the file changed): start again.
            log::warn!("cannot resume the patch download ({err}); downloading it again");
            crate::sys::replace_file(&synced_path, b"0", "patch-synced")?;
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            reader = open(location)?;
        }
    }
    let start = file.stream_position()?;
    log::info!("downloading patch {location} into {}", path.display());
    let mut limited = reader.take(max_len.saturating_sub(start) + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    let mut last_sync = std::time::Instant::now();
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("downloading patch {location}"));
            }
        };
        file.write_all(&buf[..n])?;
        copied += n as u64;
        // A checkpoint: the data first, then its length, so a resume never trusts bytes that
        // were not on disk.
        if last_sync.elapsed() >= PATCH_SYNC_INTERVAL {
            file.sync_data()?;
            crate::sys::replace_file(
                &synced_path,
                (start + copied).to_string().as_bytes(),
                "patch-synced",
            )?;
            last_sync = std::time::Instant::now();
        }
    }
    if start + copied > max_len {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&synced_path);
        bail!("patch {location} is larger than the full artifact ({max_len} bytes)");
    }
    // Durable before it is used: a power cut later resumes from what is on disk.
    file.flush()?;
    file.sync_all()?;
    crate::sys::replace_file(
        &synced_path,
        (start + copied).to_string().as_bytes(),
        "patch-synced",
    )?;
    file.seek(SeekFrom::Start(0))?;
    log::info!("patch {location}: {} bytes", start + copied);
    Ok(LocalPatch {
        file,
        path,
        downloaded: true,
    })
}

/// Alignment of direct reads (a multiple of any logical block size).
const DIRECT_ALIGN: u64 = 4096;
/// The most of the slot one direct read takes (the bounce buffer's size).
const DIRECT_WINDOW: u64 = 1 << 20;
/// The most a read takes beyond what was asked when the reads run sequentially. Copies of a
/// patch mostly follow each other in the base (9 reads in 10 on the bench pair) but are small
/// (most 4-8 KiB); reading ahead, doubling up to this, takes 13,131 reads instead of 77,759 for
/// 1.13x the bytes (a 1 MiB cap: 11,472 reads, 1.24x; the old fixed 1 MiB window: 6.8x).
const READ_AHEAD_MAX: u64 = 128 * 1024;

/// A slot read as a delta's base.
///
/// Read through the page cache, so that a delta's second pass over a segment finds the blocks its
/// first pass read (the slot's medium is read about once), and past it with `O_DIRECT` when asked
/// ([`BaseImage::read_past_cache`]): the active slot is mounted, and a read-only ext4 mount changes
/// the journal superblock in the block device's cache (jbd2 sets the checksum features there)
/// without ever writing it, so a buffered read may see bytes the image never had. The delta
/// rebuilds a segment whose table does not match once more past the cache; `rustupdate index`,
/// whose hashes nothing checks, reads past it throughout.
pub struct SlotBase {
    file: File,
    /// The slot opened with `O_DIRECT` (`None` where the file system refuses it).
    direct: Option<File>,
    past_cache: bool,
    pub size: u64,
    /// `window_len` bytes of the slot from `window_start`, at `pad` in `bounce` (aligned).
    bounce: Vec<u8>,
    pad: usize,
    window_start: u64,
    window_len: usize,
    /// Bytes asked for, and bytes and reads that went past the cache.
    pub requested: u64,
    pub direct_bytes: u64,
    pub direct_reads: u64,
}

impl SlotBase {
    pub fn open(path: &Path) -> Result<SlotBase> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file =
            File::open(path).with_context(|| format!("opening base slot {}", path.display()))?;
        // A file system without O_DIRECT (a plain file as slot on tmpfs): buffered only.
        let direct = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        // Seeking to the end works for block devices, where metadata().len() is 0.
        let size = file.seek(SeekFrom::End(0))?;
        // The applier announces what it reads (`will_read`): the kernel's guesses past that
        // only add reads (169.0 MiB for 148.1 MiB of copies on the bench pair with them).
        if let Err(err) = advice::read_ahead_off(&file) {
            log::debug!("read-ahead advice refused on {}: {err}", path.display());
        }
        Ok(SlotBase {
            file,
            direct,
            past_cache: false,
            size,
            bounce: Vec::new(),
            pad: 0,
            window_start: 0,
            window_len: 0,
            requested: 0,
            direct_bytes: 0,
            direct_reads: 0,
        })
    }

    /// Whether reads go past the page cache now.
    fn reads_direct(&self) -> bool {
        self.past_cache && self.direct.is_some()
    }

    /// Reads the aligned blocks that hold `offset..offset + len`, at most `DIRECT_WINDOW` bytes
    /// of them: just what the read needs (a copy of a few KiB costs a few KiB, not a window), so
    /// the slot is read about once per pass over the copies instead of a window per copy; when
    /// the read starts where the last one ended, twice the last read, up to `READ_AHEAD_MAX`.
    ///
    /// The buffer never grows: a read longer than the window (a literal frame's reference of
    /// several MiB) is served window by window, so the bounce buffer is one fixed allocation
    /// instead of one as large as the longest read (which held up to 5 MiB more at the delta's
    /// peak).
    fn fill_window(&mut self, offset: u64, len: usize) -> std::io::Result<()> {
        let start = offset / DIRECT_ALIGN * DIRECT_ALIGN;
        let end = (offset + len as u64).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let mut want = end - start;
        if self.window_len > 0 && start == self.window_start + self.window_len as u64 {
            want = want.max((2 * self.window_len as u64).min(READ_AHEAD_MAX));
        }
        let want = want.min(DIRECT_WINDOW) as usize;
        if self.bounce.is_empty() {
            self.bounce = vec![0; DIRECT_WINDOW as usize + DIRECT_ALIGN as usize];
        }
        self.pad = self.bounce.as_ptr().align_offset(DIRECT_ALIGN as usize);
        let aligned = &mut self.bounce[self.pad..self.pad + want];
        let mut done = 0;
        // The end of the slot may come first: keep what is there.
        let Some(file) = self.direct.as_ref() else {
            return Ok(());
        };
        while done < want {
            match file.read_at(&mut aligned[done..], start + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                // A file system that opened with O_DIRECT but refuses direct reads: buffered.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) && done == 0 => {
                    log::warn!(
                        "direct reads of the base slot refused ({err}); reading it buffered"
                    );
                    self.direct = None;
                    self.window_len = 0;
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        }
        self.direct_reads += 1;
        self.direct_bytes += done as u64;
        self.window_start = start;
        self.window_len = done;
        Ok(())
    }
}

impl BaseImage for SlotBase {
    fn read_at(&mut self, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
        self.requested += buf.len() as u64;
        while !buf.is_empty() {
            if !self.reads_direct() {
                return self.file.read_exact_at(buf, offset);
            }
            let cached = self.window_start + self.window_len as u64;
            if offset < self.window_start || offset >= cached {
                self.fill_window(offset, buf.len())?;
                if !self.reads_direct() {
                    continue;
                }
                if offset >= self.window_start + self.window_len as u64 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            let skip = (offset - self.window_start) as usize;
            let n = (self.window_len - skip).min(buf.len());
            let at = self.pad + skip;
            buf[..n].copy_from_slice(&self.bounce[at..at + n]);
            offset += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_past_cache(&mut self, past: bool) -> bool {
        let before = self.reads_direct();
        self.past_cache = past;
        before != self.reads_direct()
    }

    fn will_read(&mut self, offset: u64, len: u64) {
        // Past the cache, `fill_window` reads ahead on its own.
        if self.reads_direct() {
            return;
        }
        let len = len.min(self.size.saturating_sub(offset));
        if let Err(err) = advice::will_need(&self.file, offset, len) {
            log::debug!("read-ahead of the base at {offset} refused: {err}");
        }
    }
}

/// A slot read front to back the way a delta reads its base (for `rustupdate index`).
pub struct SlotBaseReader {
    pub base: SlotBase,
    pub position: u64,
}

impl Read for SlotBaseReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Past the page cache throughout: nothing checks the hashes an index holds.
        self.base.past_cache = true;
        let left = self.base.size.saturating_sub(self.position);
        let n = (buf.len() as u64).min(left).min(DIRECT_WINDOW) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.base.read_at(self.position, &mut buf[..n])?;
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot of a size that is no multiple of the window or the alignment, each byte distinct
    /// enough that a read from the wrong offset shows.
    fn slot_file(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect();
        // In the working directory's file system rather than /tmp, which may be a tmpfs
        // without O_DIRECT (then the buffered path is what runs, and is tested as well).
        let file = tempfile::NamedTempFile::new_in(".").unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        (file, bytes)
    }

    /// Bytes of `path` in the page cache, as util-linux `fincore` counts them.
    fn cached_bytes(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) runs");
        assert!(out.status.success(), "fincore failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[test]
    fn the_cache_reads_what_was_announced_and_no_more() {
        let len = 8 << 20;
        let (file, bytes) = slot_file(len);
        file.as_file().sync_all().unwrap();
        advice::forget(file.as_file()).unwrap();
        assert_eq!(
            cached_bytes(file.path()),
            0,
            "the working directory's file system keeps files in memory"
        );
        let mut base = SlotBase::open(file.path()).unwrap();
        // Reads at the start, one after the other, bring in their pages and nothing after them
        // (the kernel would read ahead of both).
        let mut buf = vec![0u8; 4096];
        for offset in [0, 4096] {
            base.read_at(offset, &mut buf).unwrap();
            assert!(buf == bytes[offset as usize..offset as usize + 4096]);
        }
        assert_eq!(cached_bytes(file.path()), 8192);
        // An announced range is read into the cache before it is asked for (the reads run in
        // the background: bounded wait), and exactly that range.
        base.will_read(4 << 20, 2 << 20);
        let announced = 8192 + (2 << 20);
        let cached_within_10_s = |bytes: u64| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while cached_bytes(file.path()) < bytes && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            cached_bytes(file.path())
        };
        assert_eq!(cached_within_10_s(announced), announced);
        let mut range = vec![0u8; 2 << 20];
        base.read_at(4 << 20, &mut range).unwrap();
        assert!(range == bytes[4 << 20..(4 << 20) + (2 << 20)]);
        assert_eq!(cached_bytes(file.path()), announced);
        // Announced past the end: the last page is read, nothing beyond, and no error.
        base.will_read(len as u64 - 4096, 1 << 20);
        assert_eq!(cached_within_10_s(announced + 4096), announced + 4096);
    }

    #[test]
    fn reads_longer_than_the_window_come_window_by_window() {
        let len = 3 * DIRECT_WINDOW as usize + 5000 + 123;
        let (file, bytes) = slot_file(len);
        let mut base = SlotBase::open(file.path()).unwrap();
        assert_eq!(base.size, len as u64);
        // (offset, length): inside one window, across windows, longer than two windows, up to
        // the last byte, and back before the current window.
        let reads = [
            (10, 100),
            (DIRECT_WINDOW as usize - 7, 4096 + 14),
            (12_345, 2 * DIRECT_WINDOW as usize + 777),
            (len - 9000, 9000),
            (1, DIRECT_WINDOW as usize),
        ];
        for (offset, n) in reads {
            let mut buf = vec![0u8; n];
            base.read_at(offset as u64, &mut buf).unwrap();
            assert!(buf == bytes[offset..offset + n], "bytes at {offset}+{n}");
            // The bounce buffer is one window, whatever the read's length.
            assert!(base.bounce.len() <= (DIRECT_WINDOW + DIRECT_ALIGN) as usize);
        }
    }

    #[test]
    fn a_read_takes_what_it_needs_and_reads_ahead_only_when_sequential() {
        let len = 4 * DIRECT_WINDOW as usize;
        let (file, bytes) = slot_file(len);
        let mut base = SlotBase::open(file.path()).unwrap();
        // The window exists only for direct reads (buffered, the page cache reads ahead).
        assert!(
            base.read_past_cache(true),
            "the working directory's file system refuses O_DIRECT"
        );
        let read = |base: &mut SlotBase, offset: usize, n: usize| {
            let mut buf = vec![0u8; n];
            base.read_at(offset as u64, &mut buf).unwrap();
            assert!(buf == bytes[offset..offset + n], "bytes at {offset}+{n}");
            (base.window_start, base.window_len)
        };
        // A lone copy of 5 KiB at an unaligned offset: its two blocks, no more.
        assert_eq!(read(&mut base, 100_000, 5000), (98_304, 8192));
        // Copies that follow each other: each read doubles, up to the read-ahead limit.
        let mut at = 98_304 + 8192;
        let mut sizes = Vec::new();
        for _ in 0..6 {
            let (start, window) = read(&mut base, at, 4096);
            assert_eq!(start, at as u64);
            sizes.push(window);
            at += window;
        }
        let cap = READ_AHEAD_MAX as usize;
        assert_eq!(sizes, [16_384, 32_768, 65_536, cap, cap, cap]);
        // A jump: back to what the read needs.
        assert_eq!(read(&mut base, 3 * DIRECT_WINDOW as usize, 4096).1, 4096);
    }

    #[test]
    fn reads_go_through_the_cache_until_asked_past_it() {
        let len = 2 * DIRECT_WINDOW as usize + 300;
        let (file, bytes) = slot_file(len);
        let mut base = SlotBase::open(file.path()).unwrap();
        let mut buf = vec![0u8; 5000];
        base.read_at(100, &mut buf).unwrap();
        assert!(buf == bytes[100..5100]);
        // No bounce buffer until a read goes past the cache.
        assert_eq!(
            (base.requested, base.direct_reads, base.bounce.len()),
            (5000, 0, 0)
        );
        assert!(
            base.read_past_cache(true),
            "the working directory's file system refuses O_DIRECT"
        );
        base.read_at(len as u64 - 5000, &mut buf).unwrap();
        assert!(buf == bytes[len - 5000..]);
        assert_eq!((base.requested, base.direct_reads), (10_000, 1));
        assert!(base.read_past_cache(false));
        assert!(!base.read_past_cache(false));
    }

    #[test]
    fn a_read_past_the_end_is_an_error() {
        let len = DIRECT_WINDOW as usize + 100;
        let (file, _) = slot_file(len);
        let mut base = SlotBase::open(file.path()).unwrap();
        let mut buf = vec![0u8; 200];
        for past_cache in [false, true] {
            base.read_past_cache(past_cache);
            let err = base.read_at(len as u64 - 100, &mut buf).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
            let err = base.read_at(len as u64 + 4096, &mut buf).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        }
    }
}
