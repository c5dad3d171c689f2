//! Slots as block devices or plain files. Writes go through the page cache in large sequential
//! `pwrite`s and end with `fsync`; zero runs are written from a static zero buffer.

use super::fault;
use crate::config::Slots;
use rustupdate_core::updater::{ImageSink, SlotTargets};
use rustupdate_core::{Error, SlotId};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Fault-injection point every this many bytes written, so power-cut tests can stop mid-image.
const FAULT_POINT_EVERY: u64 = 4 * 1024 * 1024;
static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

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
        Ok(Box::new(SlotSink {
            file,
            path: self.path(slot).to_path_buf(),
            since_fault_point: 0,
        }))
    }

    fn probe_writable(&mut self, slot: SlotId) -> Result<(), Error> {
        self.open_write(slot).map(drop)
    }
}

struct SlotSink {
    file: File,
    path: PathBuf,
    since_fault_point: u64,
}

impl SlotSink {
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
        self.file
            .write_all_at(data, offset)
            .map_err(|e| self.err(e))?;
        self.written(data.len() as u64);
        Ok(())
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(ZEROS.len() as u64) as usize;
            self.file
                .write_all_at(&ZEROS[..n], offset + done)
                .map_err(|e| self.err(e))?;
            done += n as u64;
            self.written(n as u64);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.file.sync_all().map_err(|e| self.err(e))?;
        fault::point("image:synced");
        Ok(())
    }
}
