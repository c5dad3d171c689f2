//! The I/O around a delta install: the artifact's signed head fetched alone (a `Range` request),
//! the patch downloaded to the data partition (resumed after an interruption, a power cut
//! included), and the active slot read as the base.
//!
//! It decides nothing about trust: the head's signatures are checked by the caller, and every
//! chunk the patch rebuilds by `rustupdate-delta` against the signed tables.

use crate::source::{HttpReader, plain_agent};
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

fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// The head of the artifact at `location` (header, manifest, signatures), without its body.
pub fn fetch_head(location: &str) -> Result<Vec<u8>> {
    let mut head = read_range(location, 0, HEAD_PROBE)?;
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
        let rest = read_range(location, head.len() as u64, len - head.len() as u64)?;
        head.extend_from_slice(&rest);
    }
    head.truncate(len as usize);
    if (head.len() as u64) < len {
        bail!("artifact {location} is truncated in its head");
    }
    Ok(head)
}

/// Up to `len` bytes at `offset` of a file or URL (fewer at the end).
fn read_range(location: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if is_url(location) {
        let response = plain_agent()
            .get(location)
            .header("Range", format!("bytes={offset}-{}", offset + len - 1))
            .call()
            .with_context(|| format!("GET {location}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body().into_reader();
        match status {
            206 => {}
            // A server without Range support sends everything: skip to the part wanted and
            // drop the connection after it.
            200 => {
                std::io::copy(&mut (&mut body).take(offset), &mut std::io::sink())?;
            }
            other => bail!("GET {location}: status {other}"),
        }
        body.take(len).read_to_end(&mut out)?;
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
        }
    }
}

/// The patch at `location`: opened in place when it is a file; downloaded into `data_dir/delta`
/// when it is a URL, continuing a download an earlier attempt (or a power cut) left there. A
/// patch longer than `max_len` (the full artifact: a patch that large saves nothing) is refused.
pub fn fetch_patch(location: &str, data_dir: &Path, max_len: u64) -> Result<LocalPatch> {
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
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let have = file.seek(SeekFrom::End(0))?;
    // Complete already (a power cut after the download, during the install): use it.
    if have > 0
        && let Ok(header) = rustupdate_delta::apply::read_header(&mut file)
        && header.patch_len() == have
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
    let mut reader = HttpReader::new(plain_agent(), location, None);
    if have > 0 {
        log::info!("resuming the patch download at byte {have}");
        reader = reader.starting_at(have);
        if let Err(err) = reader.connect_now() {
            // No Range support (or the file changed): start again.
            log::warn!("cannot resume the patch download ({err}); downloading it again");
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            reader = HttpReader::new(plain_agent(), location, None);
        }
    }
    let start = file.stream_position()?;
    log::info!("downloading patch {location} into {}", path.display());
    let copied = std::io::copy(
        &mut reader.take(max_len.saturating_sub(start) + 1),
        &mut file,
    )
    .with_context(|| format!("downloading patch {location}"))?;
    if start + copied > max_len {
        let _ = std::fs::remove_file(&path);
        bail!("patch {location} is larger than the full artifact ({max_len} bytes)");
    }
    // Durable before it is used: a power cut later resumes from what is on disk.
    file.flush()?;
    file.sync_all()?;
    file.seek(SeekFrom::Start(0))?;
    log::info!("patch {location}: {} bytes", start + copied);
    Ok(LocalPatch {
        file,
        path,
        downloaded: true,
    })
}

/// A slot read as a delta's base.
pub struct SlotBase {
    file: File,
    size: u64,
}

impl SlotBase {
    pub fn open(path: &Path) -> Result<SlotBase> {
        let mut file =
            File::open(path).with_context(|| format!("opening base slot {}", path.display()))?;
        // Seeking to the end works for block devices, where metadata().len() is 0.
        let size = file.seek(SeekFrom::End(0))?;
        Ok(SlotBase { file, size })
    }
}

impl BaseImage for SlotBase {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn size(&self) -> u64 {
        self.size
    }
}
