//! systemd-boot's entries on the ESP as [`BootControl`] (docs/boot-contract.md, "systemd-boot"):
//! the contract's values are read from the two slot entries `loader/entries/rustupdate-{a,b}…`
//! by the rules of `rustupdate_bootenv::bls`, and a store carries out the steps those rules plan.
//!
//! Power-cut safety: every step is one durable file operation on the ESP (a new file written,
//! fsynced and renamed over; a rename; a removal), each followed by an fsync of the file and the
//! directory, in the order the plan lists them; the rules make every intermediate state boot a
//! good slot. Arming a trial first copies the slot's kernel files onto the ESP (UEFI firmware
//! reads no ext4): from the newly written slot, mounted read-only, into `rustupdate/<slot>/`,
//! each file replaced atomically and skipped when the ESP holds it already.

use super::{fault, replace_file, replace_file_from, sync_renamed};
use rustupdate_bootenv::bls::{self, Entry, EntryName, Step};
use rustupdate_core::{BootControl, BootEnv, Error, SlotId};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ESP directory of a slot's kernel files: `rustupdate/<slot>/`.
const SLOT_FILES_DIR: &str = "rustupdate";

#[derive(Debug)]
pub struct BootEntries {
    /// Where the ESP is mounted.
    pub esp: PathBuf,
    pub default_bootlimit: u32,
    /// The directory inside a slot's file system with the files its entry loads (`/boot`).
    pub slot_boot_dir: PathBuf,
    /// The slots' devices, to mount the armed slot and copy its kernel files.
    pub slot_devices: [PathBuf; 2],
    /// Where the armed slot is mounted read-only while its files are copied.
    pub mount_dir: PathBuf,
}

/// An entry as read, with its content (a trial's new entry is written from it).
struct Found {
    entry: Entry,
    content: String,
}

fn slot_of(slot: bls::Slot) -> SlotId {
    match slot {
        bls::Slot::A => SlotId::A,
        bls::Slot::B => SlotId::B,
    }
}

fn bls_slot(slot: SlotId) -> bls::Slot {
    match slot {
        SlotId::A => bls::Slot::A,
        SlotId::B => bls::Slot::B,
    }
}

fn err(what: impl std::fmt::Display) -> Error {
    Error::adapter("systemd-boot entries", what.to_string())
}

impl BootEntries {
    fn entries_dir(&self) -> PathBuf {
        self.esp.join(bls::ENTRIES_DIR)
    }

    /// The ESP path of a path an entry names (`/rustupdate/b/vmlinuz`).
    fn on_esp(&self, entry_path: &str) -> PathBuf {
        self.esp.join(entry_path.trim_start_matches('/'))
    }

    fn read(&self) -> Result<Vec<Found>, Error> {
        let dir = self.entries_dir();
        let listing = std::fs::read_dir(&dir)
            .map_err(|e| err(format!("{}: {e} (is the ESP mounted?)", dir.display())))?;
        let mut found = Vec::new();
        for item in listing {
            let item = item.map_err(|e| err(format!("{}: {e}", dir.display())))?;
            let file_name = item.file_name().to_string_lossy().into_owned();
            let Some(name) = bls::EntryName::parse(&file_name).map_err(err)? else {
                continue;
            };
            let path = item.path();
            let content = std::fs::read_to_string(&path)
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
            let generation = bls::generation_of(&file_name, &content).map_err(err)?;
            let loadable = bls::loader_of(&content).is_some_and(|p| self.on_esp(p).is_file());
            found.push(Found {
                entry: Entry {
                    name,
                    generation,
                    loadable,
                },
                content,
            });
        }
        Ok(found)
    }

    /// Copies the files `content` (the slot's entry) loads from `rustupdate/<slot>/` out of the
    /// slot's file system; files elsewhere on the ESP are shared and left alone.
    fn copy_slot_files(&self, slot: SlotId, content: &str) -> Result<(), Error> {
        let prefix = format!("/{SLOT_FILES_DIR}/{}/", slot.as_str());
        let files: Vec<&str> = bls::boot_files(content)
            .into_iter()
            .filter(|p| p.starts_with(&prefix))
            .collect();
        if files.is_empty() {
            return Ok(());
        }
        let device = &self.slot_devices[usize::from(slot == SlotId::B)];
        let mounted = ReadOnlyMount::new(device, &self.mount_dir)?;
        for entry_path in files {
            let base = Path::new(entry_path)
                .file_name()
                .ok_or_else(|| err(format!("entry path {entry_path:?} names no file")))?;
            let source = mounted
                .dir
                .join(
                    self.slot_boot_dir
                        .strip_prefix("/")
                        .unwrap_or(&self.slot_boot_dir),
                )
                .join(base);
            let target = self.on_esp(entry_path);
            if same_content(&source, &target) {
                continue;
            }
            let mut reader = std::fs::File::open(&source).map_err(|e| {
                err(format!(
                    "slot {slot} has no {} for its entry ({}: {e})",
                    Path::new(&self.slot_boot_dir).join(base).display(),
                    device.display()
                ))
            })?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| err(format!("{}: {e}", parent.display())))?;
            }
            replace_file_from(&target, &mut reader, "boot-file")
                .map_err(|e| err(format!("writing {}: {e}", target.display())))?;
            log::info!(
                "copied {} of slot {slot} to {}",
                base.to_string_lossy(),
                target.display()
            );
        }
        Ok(())
    }

    fn path_of(&self, name: EntryName) -> PathBuf {
        self.entries_dir().join(name.file_name())
    }

    fn carry_out(&self, found: &[Found], step: &Step) -> Result<(), Error> {
        match step {
            Step::Write {
                name,
                generation,
                from,
            } => {
                let content = found
                    .iter()
                    .find(|f| f.entry.name == *from)
                    .map(|f| bls::with_generation(&f.content, *generation))
                    .ok_or_else(|| err(format!("{} vanished", from.file_name())))?;
                let path = self.path_of(*name);
                replace_file(&path, content.as_bytes(), "entry")
                    .map_err(|e| err(format!("writing {}: {e}", path.display())))
            }
            Step::Rename { from, to } => {
                let (from, to) = (self.path_of(*from), self.path_of(*to));
                std::fs::rename(&from, &to).map_err(|e| {
                    err(format!(
                        "renaming {} to {}: {e}",
                        from.display(),
                        to.display()
                    ))
                })?;
                // A cut here: the rename may not be on the FAT yet (old or new name).
                fault::point("entry:renamed");
                sync_renamed(&to).map_err(|e| err(format!("{}: {e}", to.display())))?;
                fault::point("entry:synced");
                Ok(())
            }
            Step::Remove { name } => {
                let path = self.path_of(*name);
                std::fs::remove_file(&path)
                    .and_then(|()| std::fs::File::open(self.entries_dir())?.sync_all())
                    .map_err(|e| err(format!("removing {}: {e}", path.display())))?;
                fault::point("entry:removed");
                Ok(())
            }
        }
    }
}

impl BootControl for BootEntries {
    fn load(&mut self) -> Result<BootEnv, Error> {
        let found = self.read()?;
        let entries: Vec<Entry> = found.iter().map(|f| f.entry.clone()).collect();
        let booted = bls::booted(&entries).ok_or_else(|| {
            err(format!(
                "no loadable rustupdate entry in {} (systemd-boot has nothing to boot)",
                self.entries_dir().display()
            ))
        })?;
        let slot = slot_of(booted.name.slot);
        Ok(match booted.name.counter {
            None => BootEnv::committed(slot, self.default_bootlimit),
            Some(counter) => BootEnv {
                slot,
                upgrade_available: true,
                bootcount: counter.done,
                bootlimit: counter.left + counter.done,
            },
        })
    }

    fn store(&mut self, boot: &BootEnv) -> Result<(), Error> {
        let found = self.read()?;
        let entries: Vec<Entry> = found.iter().map(|f| f.entry.clone()).collect();
        let slot = bls_slot(boot.slot);
        let steps = if boot.upgrade_available {
            let tries_left = boot.bootlimit.saturating_sub(boot.bootcount).max(1);
            let steps = bls::plan_trial(&entries, slot, tries_left).map_err(err)?;
            if let Some(Step::Write { from, .. }) = steps.first() {
                let current = found.iter().find(|f| f.entry.name == *from);
                if let Some(current) = current {
                    self.copy_slot_files(boot.slot, &current.content)?;
                }
            }
            steps
        } else {
            bls::plan_commit(&entries, slot).map_err(err)?
        };
        for step in &steps {
            self.carry_out(&found, step)?;
        }
        Ok(())
    }
}

/// Whether `a` and `b` hold the same bytes (compared in blocks; false when either is missing).
fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    match (fa.metadata(), fb.metadata()) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {}
        _ => return false,
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = match fa.read(&mut ba) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(_) => return false,
        };
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// A slot mounted read-only for as long as this lives (`mount`/`umount`, which find the file
/// system type and set up a loop device for a slot that is a file).
struct ReadOnlyMount {
    dir: PathBuf,
}

impl ReadOnlyMount {
    fn new(device: &Path, dir: &Path) -> Result<ReadOnlyMount, Error> {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        // A mount left by a killed run is in the way: unmount it first (fails when none).
        let _ = Command::new("umount").arg(dir).output();
        let output = Command::new("mount")
            .args(["-o", "ro"])
            .arg(device)
            .arg(dir)
            .output()
            .map_err(|e| err(format!("running mount: {e}")))?;
        if !output.status.success() {
            return Err(err(format!(
                "mounting {} read-only at {} to copy its kernel files: {}",
                device.display(),
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(ReadOnlyMount {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.dir).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => log::warn!(
                "umount {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => log::warn!("umount {}: {e}", self.dir.display()),
        }
    }
}
