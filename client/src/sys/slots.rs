//! Slots as block devices or plain files. Writes go through the page cache in large sequential
//! `pwrite`s on a writer thread and end with `fsync`; zero runs use `BLKZEROOUT`/hole punching
//! (see `zero.rs`).

use super::{fault, zero};
use crate::config::Slots;
use rustupdate_core::seams::{ImageSink, SlotTargets};
use rustupdate_core::{Error, SlotId};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Fault-injection point every this many bytes written, so power-cut tests can stop mid-image.
const FAULT_POINT_EVERY: u64 = 4 * 1024 * 1024;

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
        // Never create or truncate: a slot is an existing device or a pre-sized file.
        OpenOptions::new().write(true).open(path).map_err(|err| {
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

const BATCH: usize = 256 * 1024;
const QUEUE: usize = 4;

/// What an install wrote: data batches, and zero runs (which cost the device little or nothing:
/// see `zero.rs`).
#[derive(Debug, Default, Clone, Copy)]
struct WriteStats {
    data: u64,
    zeroed: u64,
}

enum Op {
    Write(u64, Vec<u8>),
    Zero(u64, u64),
    /// fdatasync everything written so far and answer.
    Sync(SyncSender<std::io::Result<()>>),
}

impl SlotSink {
    fn new(file: File, path: PathBuf) -> Result<SlotSink, Error> {
        let (tx, rx) = sync_channel::<Op>(QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(QUEUE + 2);
        let writer = std::thread::Builder::new()
            .name("slot-writer".into())
            .spawn(move || -> std::io::Result<(File, WriteStats)> {
                let mut method = zero::Method::for_file(&file);
                let mut stats = WriteStats::default();
                for op in rx {
                    match op {
                        Op::Write(offset, buf) => {
                            file.write_all_at(&buf, offset)?;
                            stats.data += buf.len() as u64;
                            let _ = spare_tx.try_send(buf);
                        }
                        // Remember a method that fell back, so it is not retried for every run.
                        Op::Zero(offset, len) => {
                            method = zero::zero_range(&file, offset, len, method)?;
                            stats.zeroed += len;
                        }
                        Op::Sync(answer) => {
                            let _ = answer.send(file.sync_data());
                        }
                    }
                }
                Ok((file, stats))
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
            "slot {}: {:.1} MiB of data written, {:.1} MiB zeroed",
            self.path.display(),
            mib(stats.data),
            mib(stats.zeroed)
        );
        file.sync_all().map_err(|e| self.err(e))?;
        fault::point("image:synced");
        Ok(())
    }
}
