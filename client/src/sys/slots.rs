//! Slots as block devices or plain files, written by a [`SlotSink`] on a writer thread so that
//! disk I/O overlaps with decompression and verification.
//!
//! Read before write: the writer reads every range it is handed from the target first and writes
//! only the 4 KiB blocks that differ (data), or zeroes only the blocks that are not zero yet (zero
//! runs, through `BLKZEROOUT`/hole punching, see `zero.rs`). What the slot already holds (the
//! previous release, an interrupted attempt) then costs a read instead of a flash write. Measured
//! with `bench/install-bench.sh` (512 MiB ext4 rootfs v2 over v1): 163 MiB written, 349 MiB
//! already in place, nearly all of it the zero runs both releases share (`mkfs.ext4 -d` lays the
//! files of v2 out anew, so few data blocks match at the same offset), which `BLKZEROOUT` would
//! have written as zero pages on a device without a write-zeroes command. The price is reading
//! the whole image range once (0.3-0.4 s for 512 MiB on the benchmark's loop device). Each
//! install ends with `fsync`; `finish` logs what was written and what was already in place.
//!
//! Early writeback: every [`WRITEBACK_EVERY`] of the image the writer starts writing back what it
//! wrote (`sync_file_range`, no waiting), so the device writes while the writer goes on reading
//! the target, instead of everything waiting in the page cache for the final `fsync` (on a
//! machine with plenty of memory the kernel starts on its own only at 10 % of it). On slow flash
//! (`install-bench.sh`, 20 MB/s write, 80 MB/s read) the full install went from 15.3 s, the sum of
//! its reads and writes, to 8.7 s, about the writes alone. A card whose reads and writes share
//! one bus gains less: there the sum is the limit.
//!
//! It does not: compare whole files or hashes first (each range is compared as it arrives, with
//! bounded memory), touch blocks outside the ranges the image covers, bypass the page cache
//! (`O_DIRECT`), or trim the slot's unused tail.

use super::{advice, fault, zero};
use crate::config::Slots;
use rustupdate_core::seams::{ImageSink, SlotTargets};
use rustupdate_core::{Error, SlotId};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Fault-injection point every this many image bytes handed to the sink (written or found in
/// place), so power-cut tests can stop mid-image.
const FAULT_POINT_EVERY: u64 = 4 * 1024 * 1024;
/// The unit of comparison: a block is written (or zeroed) whole or not at all. 4 KiB is the ext4
/// block, the page size, and the smallest write a flash translation layer handles well.
const BLOCK: u64 = 4096;
/// The writer starts the writeback of what it wrote every this many bytes of the image. Measured
/// on slow flash (full / delta install, s): 1 MiB 12.2 / 12.6, 4 MiB 8.8 / 9.5, 8 MiB 8.7 / 9.1,
/// 16 MiB 8.8 / 9.2, 64 MiB 9.4 / 9.9; a call per MiB, or at every pause of the writer, left the
/// device's write queue worse fed, and a thread of its own for the calls changed nothing.
const WRITEBACK_EVERY: u64 = 8 << 20;
/// What the writer reads from the target at once; its one scratch buffer is this big, so memory
/// stays bounded whatever the size of a write or a zero run. One batch: larger reads gain nothing
/// measurable and every MiB counts against the install's 16 MiB budget.
const SCRATCH: usize = BATCH;

#[derive(Debug)]
pub struct DeviceSlots {
    a: PathBuf,
    b: PathBuf,
}

impl DeviceSlots {
    pub fn new(slots: &Slots, dev_dir: &Path) -> anyhow::Result<DeviceSlots> {
        Ok(DeviceSlots {
            a: slots.a.path(dev_dir)?,
            b: slots.b.path(dev_dir)?,
        })
    }

    pub fn path(&self, slot: SlotId) -> &Path {
        match slot {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        }
    }

    fn open_write(&self, slot: SlotId) -> Result<File, Error> {
        let path = self.path(slot);
        // Never create or truncate: a slot is an existing device or a pre-sized file. Read access
        // too: the writer compares before it writes.
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|err| {
                Error::adapter(
                    "slot",
                    format!(
                        "opening slot {slot} ({}) for writing: {err}",
                        path.display()
                    ),
                )
            })
    }
}

impl SlotTargets for DeviceSlots {
    fn capacity(&mut self, slot: SlotId) -> Result<u64, Error> {
        let path = self.path(slot);
        let mut file = File::open(path)
            .map_err(|err| Error::adapter("slot", format!("{}: {err}", path.display())))?;
        // Seeking to the end works for block devices, where metadata().len() is 0.
        file.seek(SeekFrom::End(0))
            .map_err(|err| Error::adapter("slot", format!("{}: {err}", path.display())))
    }

    fn open(&mut self, slot: SlotId) -> Result<Box<dyn ImageSink + '_>, Error> {
        let file = self.open_write(slot)?;
        Ok(Box::new(SlotSink::new(
            file,
            self.path(slot).to_path_buf(),
        )?))
    }

    fn probe_writable(&mut self, slot: SlotId) -> Result<(), Error> {
        self.open_write(slot).map(drop)
    }

    fn reader(&mut self, slot: SlotId) -> Result<Box<dyn std::io::Read + '_>, Error> {
        let path = self.path(slot);
        let file = File::open(path).map_err(|err| {
            Error::adapter(
                "slot",
                format!("opening slot {slot} ({}): {err}", path.display()),
            )
        })?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
    }
}

/// Writes through a bounded queue to a writer thread, so that disk writes overlap with
/// decompression and verification. At most `QUEUE` batches of `BATCH` bytes are in flight.
struct SlotSink {
    path: PathBuf,
    batch: Vec<u8>,
    batch_offset: u64,
    tx: Option<SyncSender<Op>>,
    spare: Receiver<Vec<u8>>,
    writer: Option<JoinHandle<std::io::Result<(File, WriteStats)>>>,
    since_fault_point: u64,
}

/// 64 KiB: with the queue, 256 KiB in flight at most; the install sits near its 16 MiB budget.
const BATCH: usize = 64 * 1024;
/// Two batches in flight keep the writer busy (measured: no slower than four) at half the memory.
const QUEUE: usize = 2;

/// What an install did to the target: bytes written as data, bytes zeroed (which cost the device
/// little or nothing: see `zero.rs`), and bytes skipped because the target already held them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct WriteStats {
    data: u64,
    zeroed: u64,
    in_place: u64,
}

enum Op {
    Write(u64, Vec<u8>),
    Zero(u64, u64),
    /// fdatasync everything written so far and answer.
    Sync(SyncSender<std::io::Result<()>>),
}

/// The writer thread's side: the target, the zeroing method that works on it, one scratch buffer
/// for what the target holds, and the counts.
///
/// Reading first is safe: the target is the inactive slot and only this writer writes it while
/// the install runs, so what we read is what it holds (the medium after a power cut; after a
/// crash of an earlier attempt also its pages still dirty in the cache, which our `fdatasync`
/// flushes like our own). A block we skip already holds exactly the bytes we were handed,
/// which the verifier checked against the signed chunk table before handing them on; the slot
/// ends up byte for byte the same as if every block had been written. Sync points are unchanged:
/// `Sync` still makes everything before it durable.
struct Writer {
    file: File,
    method: zero::Method,
    scratch: Vec<u8>,
    stats: WriteStats,
    /// Where writeback was last started (see [`WRITEBACK_EVERY`]).
    writeback_from: u64,
}

impl Writer {
    fn new(file: File) -> Writer {
        Writer {
            method: zero::Method::for_file(&file),
            file,
            scratch: vec![0; SCRATCH],
            stats: WriteStats::default(),
            writeback_from: 0,
        }
    }

    /// The slot holds its new bytes up to `end`: every [`WRITEBACK_EVERY`] bytes, starts writing
    /// back what lies before it.
    fn done_up_to(&mut self, end: u64) {
        let from = self.writeback_from.min(end);
        if end - from >= WRITEBACK_EVERY {
            // Advice: where it fails, the final fsync writes everything back, as before.
            let _ = advice::start_writeback(&self.file, from, end - from);
            self.writeback_from = end;
        }
    }

    /// Writes `data` at `offset`, skipping the blocks the target already holds.
    fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut at = offset;
        for piece in data.chunks(SCRATCH) {
            let held = read_up_to(&self.file, &mut self.scratch[..piece.len()], at)?;
            let old = &self.scratch[..held];
            let file = &self.file;
            let mut written = 0u64;
            for_each_run(
                at,
                piece.len(),
                // A block the target does not hold whole (a short read at its end) differs.
                |block| old.get(block.clone()) != Some(&piece[block]),
                |run| {
                    written += run.len() as u64;
                    file.write_all_at(&piece[run.clone()], at + run.start as u64)
                },
            )?;
            self.stats.data += written;
            self.stats.in_place += piece.len() as u64 - written;
            at += piece.len() as u64;
        }
        self.done_up_to(at);
        Ok(())
    }

    /// Makes `len` bytes at `offset` read back as zeros, zeroing only the blocks that are not.
    fn zero(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        let mut at = offset;
        let end = offset + len;
        while at < end {
            // Bounded by SCRATCH, so it fits in usize.
            let piece = (end - at).min(SCRATCH as u64) as usize;
            let held = read_up_to(&self.file, &mut self.scratch[..piece], at)?;
            let old = &self.scratch[..held];
            let (file, method) = (&self.file, &mut self.method);
            let mut zeroed = 0u64;
            for_each_run(
                at,
                piece,
                |block| old.get(block).is_none_or(|bytes| !zero::is_zero(bytes)),
                |run| {
                    zeroed += run.len() as u64;
                    // Remember a method that fell back, so it is not retried for every run.
                    *method =
                        zero::zero_range(file, at + run.start as u64, run.len() as u64, *method)?;
                    Ok(())
                },
            )?;
            self.stats.zeroed += zeroed;
            self.stats.in_place += piece as u64 - zeroed;
            at += piece as u64;
        }
        self.done_up_to(at);
        Ok(())
    }
}

/// Reads into `buf` from `offset` until it is full or the target ends; returns the bytes read.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// Splits `0..len` (a range starting at device offset `offset`) into blocks at the device's
/// `BLOCK` boundaries (partial blocks at either end), and calls `apply` once per run of adjacent
/// blocks for which `differs` is true, so each run costs one write or one zeroing call.
fn for_each_run(
    offset: u64,
    len: usize,
    mut differs: impl FnMut(Range<usize>) -> bool,
    mut apply: impl FnMut(Range<usize>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut run: Option<usize> = None;
    let mut start = 0usize;
    while start < len {
        // Up to the next block boundary of the device, not of the buffer. At most BLOCK.
        let to_boundary = (BLOCK - (offset + start as u64) % BLOCK) as usize;
        let end = (start + to_boundary).min(len);
        if differs(start..end) {
            run.get_or_insert(start);
        } else if let Some(run_start) = run.take() {
            apply(run_start..start)?;
        }
        start = end;
    }
    if let Some(run_start) = run {
        apply(run_start..len)?;
    }
    Ok(())
}

impl SlotSink {
    fn new(file: File, path: PathBuf) -> Result<SlotSink, Error> {
        let (tx, rx) = sync_channel::<Op>(QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(QUEUE);
        let writer = std::thread::Builder::new()
            .name("slot-writer".into())
            .spawn(move || -> std::io::Result<(File, WriteStats)> {
                let mut writer = Writer::new(file);
                for op in rx {
                    match op {
                        Op::Write(offset, buf) => {
                            writer.write(offset, &buf)?;
                            let _ = spare_tx.try_send(buf);
                        }
                        Op::Zero(offset, len) => writer.zero(offset, len)?,
                        // Flushes every dirty page of the target: ours, and any a crashed earlier
                        // attempt left in the cache for blocks we then skipped as in place.
                        Op::Sync(answer) => {
                            let _ = answer.send(writer.file.sync_data());
                        }
                    }
                }
                Ok((writer.file, writer.stats))
            })
            .map_err(|err| Error::adapter("slot", format!("starting the writer thread: {err}")))?;
        Ok(SlotSink {
            path,
            batch: Vec::with_capacity(BATCH),
            batch_offset: 0,
            tx: Some(tx),
            spare,
            writer: Some(writer),
            since_fault_point: 0,
        })
    }

    fn send(&mut self, op: Op) -> Result<(), Error> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(op).is_ok());
        if sent {
            return Ok(());
        }
        // The writer stopped: its error says why.
        Err(self
            .join_writer()
            .err()
            .unwrap_or_else(|| self.err(std::io::Error::other("writer thread stopped"))))
    }

    fn flush_batch(&mut self) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let next = self.spare.try_recv().map(|mut b| {
            b.clear();
            b
        });
        let full = std::mem::replace(
            &mut self.batch,
            next.unwrap_or_else(|_| Vec::with_capacity(BATCH)),
        );
        let offset = self.batch_offset;
        self.send(Op::Write(offset, full))
    }

    fn join_writer(&mut self) -> Result<(File, WriteStats), Error> {
        drop(self.tx.take());
        let Some(writer) = self.writer.take() else {
            return Err(self.err(std::io::Error::other("writer thread already finished")));
        };
        match writer.join() {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(err)) => Err(self.err(err)),
            Err(_) => Err(self.err(std::io::Error::other("writer thread panicked"))),
        }
    }

    fn err(&self, err: std::io::Error) -> Error {
        Error::adapter("slot", format!("writing {}: {err}", self.path.display()))
    }

    fn written(&mut self, n: u64) {
        self.since_fault_point += n;
        if self.since_fault_point >= FAULT_POINT_EVERY {
            self.since_fault_point = 0;
            fault::point("image:write");
        }
    }
}

impl ImageSink for SlotSink {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let contiguous = self.batch_offset + self.batch.len() as u64 == offset;
        if !contiguous || self.batch.len() + data.len() > BATCH {
            self.flush_batch()?;
        }
        if self.batch.is_empty() {
            self.batch_offset = offset;
        }
        self.batch.extend_from_slice(data);
        self.written(data.len() as u64);
        Ok(())
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        self.flush_batch()?;
        self.send(Op::Zero(offset, len))?;
        self.written(len);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.flush_batch()?;
        let (answer, done) = sync_channel(1);
        self.send(Op::Sync(answer))?;
        match done.recv() {
            Ok(Ok(())) => {
                fault::point("image:checkpoint");
                Ok(())
            }
            Ok(Err(err)) => Err(self.err(err)),
            // The writer stopped before answering: its error says why.
            Err(_) => Err(self
                .join_writer()
                .err()
                .unwrap_or_else(|| self.err(std::io::Error::other("writer thread stopped")))),
        }
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.flush_batch()?;
        let (file, stats) = self.join_writer()?;
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        log::info!(
            "slot {}: {:.1} MiB written ({:.1} MiB of data, {:.1} MiB zeroed), {:.1} MiB already in place",
            self.path.display(),
            mib(stats.data + stats.zeroed),
            mib(stats.data),
            mib(stats.zeroed),
            mib(stats.in_place)
        );
        file.sync_all().map_err(|e| self.err(e))?;
        fault::point("image:synced");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(
        offset: u64,
        len: usize,
        differs: impl FnMut(Range<usize>) -> bool,
    ) -> Vec<Range<usize>> {
        let mut runs = Vec::new();
        for_each_run(offset, len, differs, |run| {
            runs.push(run);
            Ok(())
        })
        .unwrap();
        runs
    }

    #[test]
    fn runs_coalesce_adjacent_blocks_and_follow_device_boundaries() {
        // Blocks 1, 2 and 4 of five differ: two runs.
        let differing = |block: Range<usize>| [1, 2, 4].contains(&(block.start / 4096));
        assert_eq!(
            runs(0, 5 * 4096, differing),
            vec![4096..12288, 16384..20480]
        );
        assert_eq!(runs(8192, 3 * 4096, |_| false), vec![]);
        assert_eq!(runs(8192, 3 * 4096 + 10, |_| true), vec![0..12298]);

        // Starting 100 bytes before a device block boundary: the first block is 100 bytes long,
        // the last one what is left.
        let mut blocks = Vec::new();
        runs(4096 - 100, 100 + 4096 + 50, |block| {
            blocks.push(block);
            false
        });
        assert_eq!(blocks, vec![0..100, 100..4196, 4196..4246]);
    }

    fn target(bytes: &[u8]) -> (Writer, tempfile::NamedTempFile) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let open = OpenOptions::new()
            .read(true)
            .write(true)
            .open(file.path())
            .unwrap();
        (Writer::new(open), file)
    }

    #[test]
    fn write_skips_blocks_in_place_and_writes_the_others() {
        let image = rustupdate_testkit::pseudo_random(3 * SCRATCH + 5000, 1);
        let mut held = image.clone();
        held[10] ^= 1; // block 0
        held[4096 * 7 + 4095] ^= 1; // block 7
        held[4096 * 8] ^= 1; // block 8: one run with block 7
        held[SCRATCH + 1] ^= 1; // second piece
        let (mut writer, file) = target(&held);

        writer.write(0, &image).unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), image);
        assert_eq!(
            writer.stats,
            WriteStats {
                data: 4 * 4096,
                zeroed: 0,
                in_place: image.len() as u64 - 4 * 4096,
            }
        );

        // Again: nothing left to write.
        writer.write(0, &image).unwrap();
        assert_eq!(writer.stats.data, 4 * 4096);
        assert_eq!(writer.stats.in_place, 2 * image.len() as u64 - 4 * 4096);
    }

    #[test]
    fn write_past_the_end_of_the_target_counts_as_differing() {
        let (mut writer, file) = target(&[7u8; 6000]);
        let data = vec![7u8; 10_000];
        writer.write(0, &data).unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), data);
        // Block 0 is in place; block 1 was held for 1904 of its bytes only, block 2 not at all.
        assert_eq!(writer.stats.in_place, 4096);
        assert_eq!(writer.stats.data, 10_000 - 4096);
    }

    #[test]
    fn zero_clears_only_blocks_that_are_not_zero_also_unaligned() {
        let mut held = vec![0u8; 3 * SCRATCH];
        held[5] = 1; // block 0, before the range: must stay
        held[4096 + 3] = 1; // block 1, partial first block of the range
        held[SCRATCH + 4096 * 3] = 1; // a block in the second piece
        held[2 * SCRATCH + 100] = 1; // partial last block of the range
        held[2 * SCRATCH + 300] = 1; // after the range: must stay
        let (mut writer, file) = target(&held);

        let (offset, len) = (4096 + 2, 2 * SCRATCH as u64 + 200 - 4096 - 2);
        writer.zero(offset, len).unwrap();
        let mut expected = vec![0u8; held.len()];
        expected[5] = 1;
        expected[2 * SCRATCH + 300] = 1;
        assert_eq!(std::fs::read(file.path()).unwrap(), expected);
        // The partial first block (4094 bytes), one whole block, the partial last block (200).
        assert_eq!(writer.stats.zeroed, 4094 + 4096 + 200);
        assert_eq!(writer.stats.in_place, len - writer.stats.zeroed);
        assert_eq!(writer.stats.data, 0);
    }

    #[test]
    fn zero_past_the_end_of_the_target_extends_it() {
        let (mut writer, file) = target(&[0u8; 4096]);
        writer.method = zero::Method::Write; // punching a hole past the end extends nothing
        writer.zero(0, 3 * 4096).unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), vec![0u8; 3 * 4096]);
        assert_eq!(writer.stats.in_place, 4096);
        assert_eq!(writer.stats.zeroed, 2 * 4096);
    }
}
