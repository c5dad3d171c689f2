//! Bootloader environments as [`BootControl`]: the GRUB environment block file(s) and the U-Boot
//! environment described by `fw_env.config`. The byte formats are `rustupdate-bootenv`, the
//! variables and their meaning `rustupdate_core::boot`; this module only reads and writes them,
//! preserving every variable it does not own.
//!
//! Power-cut safety of `store`:
//! - GRUB, two copies (`grubenv` + `grubenv-redund`): only the copy not in use is written (framed
//!   by the next sequence number), then fsynced; the copy in use stays complete until the new one
//!   is.
//! - GRUB, one copy: the 1024-byte block is replaced as a file (temp, fsync, rename, fsync dir).
//! - U-Boot redundant: only the inactive copy is written (with the next flags value), then fsynced;
//!   the active copy stays valid until the new one is complete.
//! - U-Boot single copy in a plain file (e.g. `uboot.env` on the boot partition): file replacement
//!   as for GRUB. In a raw device area a single copy is rewritten in place, which is not atomic;
//!   use a redundant environment there (documented in docs/client.md).
//!
//! No valid copy at all (both copies destroyed): the boot scripts boot the slot the client last
//! committed, from the record [`CommittedSlotRecord`] keeps on the data partition, without a trial;
//! `load` answers the same, and the next `store` writes the environment anew.

use super::{fault, replace_file};
use rustupdate_bootenv::{grub, uboot};
use rustupdate_core::{BootControl, BootEnv, Error, SlotId};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Reads the contract's variables through `get`; a bad value names the environment's `source`.
fn boot_env_from(
    get: impl Fn(&str) -> Option<String>,
    default_bootlimit: u32,
    source: &Path,
) -> Result<BootEnv, Error> {
    BootEnv::from_vars(get, default_bootlimit).map_err(|err| {
        Error::adapter(
            "bootloader environment",
            format!("{}: {err}", source.display()),
        )
    })
}

/// Writes `env`, what the boot script decided for an environment without a valid copy, so the
/// environment is valid again (U-Boot's script does the same; GRUB's cannot). A failure is only
/// logged: the answer stands, and the next store tries again.
fn repair(control: &mut dyn BootControl, env: &BootEnv) {
    match control.store(env) {
        Ok(()) => log::warn!("wrote the bootloader environment anew: slot {}", env.slot),
        Err(err) => log::warn!("could not write the bootloader environment anew: {err}"),
    }
}

/// File name of the record in the client's data directory (`data-dir`); the boot scripts read it
/// as `rustupdate/committed-slot.env` on the data partition (docs/boot-contract.md).
pub const COMMITTED_SLOT_RECORD: &str = "committed-slot.env";

/// The slot the client last committed, kept on the data partition in the bootloader's own format
/// (a GRUB block, or a single-copy U-Boot environment) for the boot scripts' rule when no copy of
/// the environment is valid. Written after every store of a committed (not trial) environment
/// whose slot differs from the record; a power cut leaves the old or the new record, both slots
/// that were committed.
#[derive(Debug, Clone)]
pub struct CommittedSlotRecord {
    pub path: PathBuf,
}

/// Size of the record in U-Boot's format (the boot script imports what it loads).
const RECORD_UBOOT_SIZE: usize = 0x1000;

impl CommittedSlotRecord {
    fn slot(&self, grub_format: bool) -> Option<SlotId> {
        let bytes = std::fs::read(&self.path).ok()?;
        let value = if grub_format {
            grub::Env::from_bytes(&bytes)
                .ok()?
                .get(rustupdate_core::boot::VAR_SLOT)
                .map(str::to_string)
        } else {
            uboot::Env::from_single(&bytes)
                .ok()?
                .get(rustupdate_core::boot::VAR_SLOT)
                .map(str::to_string)
        };
        value.and_then(|v| v.parse().ok())
    }

    /// The slot to boot when no copy of the environment is valid: the recorded one, else slot a
    /// (the factory image's slot).
    fn fallback_env(&self, grub_format: bool, bootlimit: u32) -> BootEnv {
        let slot = self.slot(grub_format).unwrap_or(SlotId::A);
        log::warn!(
            "no valid copy of the bootloader environment: slot {slot} (the last committed slot, \
             {}), as the boot script decides",
            self.path.display()
        );
        BootEnv::committed(slot, bootlimit)
    }

    /// Records `boot.slot` when `boot` is committed (no trial) and the record says otherwise.
    fn update(&self, boot: &BootEnv, grub_format: bool) -> Result<(), Error> {
        if boot.upgrade_available || self.slot(grub_format) == Some(boot.slot) {
            return Ok(());
        }
        let slot = boot.slot.to_string();
        let bytes = if grub_format {
            let mut env = grub::Env::new();
            env.set(rustupdate_core::boot::VAR_SLOT, &slot)
                .and_then(|()| env.to_bytes())
        } else {
            let mut env = uboot::Env::new();
            env.set(rustupdate_core::boot::VAR_SLOT, &slot)
                .and_then(|()| uboot::to_single(&env, RECORD_UBOOT_SIZE, uboot::Padding::Zero))
        }
        .map_err(|err| Error::adapter("committed-slot record", err))?;
        replace_file(&self.path, &bytes, "record").map_err(|err| {
            Error::adapter(
                "committed-slot record",
                format!("writing {}: {err}", self.path.display()),
            )
        })
    }
}

/// The GRUB environment: one block file (`grubenv`), or two copies (`grubenv` and
/// `grubenv-redund`) as the boot script keeps them.
#[derive(Debug)]
pub struct GrubEnvFile {
    pub path: PathBuf,
    /// The second copy; `None`: a single block file.
    pub redund: Option<PathBuf>,
    pub default_bootlimit: u32,
    pub record: CommittedSlotRecord,
}

/// What the GRUB environment holds now.
enum GrubRead {
    Single(grub::Env),
    Copies(grub::Env, grub::CurrentCopy),
    NoValidCopy,
}

impl GrubEnvFile {
    fn err(&self, path: &Path, err: impl std::fmt::Display) -> Error {
        Error::adapter("grub environment", format!("{}: {err}", path.display()))
    }

    fn read_block(&self, path: &Path) -> Result<grub::Env, Error> {
        let bytes = std::fs::read(path).map_err(|err| self.err(path, err))?;
        grub::Env::from_bytes(&bytes).map_err(|err| self.err(path, err))
    }

    fn read(&self) -> Result<GrubRead, Error> {
        let Some(redund) = &self.redund else {
            return Ok(GrubRead::Single(self.read_block(&self.path)?));
        };
        // A missing or unreadable copy is an invalid one: the other copy decides.
        let copies = [&self.path, redund].map(|path| {
            self.read_block(path)
                .inspect_err(|err| log::warn!("{err}: not a valid copy"))
                .ok()
        });
        match grub::current_copy(copies[0].as_ref(), copies[1].as_ref()) {
            Some(current) => {
                let [copy0, copy1] = copies;
                let env = if current.index == 0 { copy0 } else { copy1 };
                // current_copy only names a copy that parsed.
                Ok(env.map_or(GrubRead::NoValidCopy, |env| GrubRead::Copies(env, current)))
            }
            None => Ok(GrubRead::NoValidCopy),
        }
    }

    fn write_copy(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        // In place when the copy is a block already (one data write, no directory change on the
        // FAT), else a new file.
        let in_place =
            std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64);
        if in_place {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|err| self.err(path, err))?;
            file.write_all_at(bytes, 0)
                .map_err(|err| self.err(path, err))?;
            fault::point("env:unsynced");
            file.sync_all().map_err(|err| self.err(path, err))?;
            fault::point("env:written");
            Ok(())
        } else {
            replace_file(path, bytes, "env").map_err(|err| self.err(path, err))
        }
    }
}

impl BootControl for GrubEnvFile {
    fn load(&mut self) -> Result<BootEnv, Error> {
        let env = match self.read()? {
            GrubRead::Single(env) | GrubRead::Copies(env, _) => env,
            GrubRead::NoValidCopy => {
                let env = self.record.fallback_env(true, self.default_bootlimit);
                // GRUB cannot create a block: the client writes the environment anew.
                repair(self, &env);
                return Ok(env);
            }
        };
        boot_env_from(
            |name| env.get(name).map(str::to_string),
            self.default_bootlimit,
            &self.path,
        )
    }

    fn store(&mut self, boot: &BootEnv) -> Result<(), Error> {
        let set_vars = |env: &mut grub::Env| -> Result<(), Error> {
            for (name, value) in boot.to_vars() {
                env.set(name, &value)
                    .map_err(|err| Error::adapter("grub environment", err))?;
            }
            Ok(())
        };
        let (mut env, current) = match self.read()? {
            GrubRead::Single(mut env) => {
                set_vars(&mut env)?;
                let bytes = env
                    .to_bytes()
                    .map_err(|err| Error::adapter("grub environment", err))?;
                replace_file(&self.path, &bytes, "env")
                    .map_err(|err| self.err(&self.path, format!("writing: {err}")))?;
                return self.record.update(boot, true);
            }
            GrubRead::Copies(env, current) => (env, Some(current)),
            GrubRead::NoValidCopy => (grub::Env::new(), None),
        };
        // Copies and NoValidCopy are only read with a second copy configured.
        let redund = self.redund.as_deref().unwrap_or(&self.path);
        set_vars(&mut env)?;
        let (index, bytes) = grub::next_copy_write(&env, current)
            .map_err(|err| Error::adapter("grub environment", err))?;
        self.write_copy(if index == 0 { &self.path } else { redund }, &bytes)?;
        self.record.update(boot, true)
    }
}

/// The U-Boot environment at the locations of a libubootenv `fw_env.config`.
#[derive(Debug)]
pub struct UbootEnv {
    locations: Vec<uboot::EnvLocation>,
    config_path: PathBuf,
    default_bootlimit: u32,
    record: CommittedSlotRecord,
}

impl UbootEnv {
    pub fn from_config_file(
        path: &Path,
        default_bootlimit: u32,
        record: CommittedSlotRecord,
    ) -> anyhow::Result<UbootEnv> {
        use anyhow::Context;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let locations = uboot::parse_fw_env_config(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(UbootEnv {
            locations,
            config_path: path.to_path_buf(),
            default_bootlimit,
            record,
        })
    }

    fn read_copy(&self, index: usize) -> Result<Vec<u8>, Error> {
        let loc = &self.locations[index];
        let file = std::fs::File::open(&loc.device).map_err(|err| self.err(&loc.device, err))?;
        let mut bytes = vec![0u8; loc.size as usize];
        file.read_exact_at(&mut bytes, loc.offset)
            .map_err(|err| self.err(&loc.device, err))?;
        Ok(bytes)
    }

    fn err(&self, path: &Path, err: impl std::fmt::Display) -> Error {
        Error::adapter(
            "u-boot environment",
            format!(
                "{} (from {}): {err}",
                path.display(),
                self.config_path.display()
            ),
        )
    }

    /// The current environment and, for a redundant setup, which copy is active.
    fn read(&self) -> Result<UbootRead, Error> {
        match self.locations.len() {
            1 => {
                let bytes = self.read_copy(0)?;
                let env = uboot::Env::from_single(&bytes)
                    .map_err(|err| self.err(&self.locations[0].device, err))?;
                Ok(UbootRead::Single(env))
            }
            2 => {
                // A copy that cannot be read (a deleted file) is an invalid one: the other
                // copy decides, as in the boot script.
                let size = self.locations[0].size as usize;
                let [copy0, copy1] = [0, 1].map(|index| {
                    self.read_copy(index)
                        .inspect_err(|err| log::warn!("{err}: not a valid copy"))
                        .unwrap_or_else(|_| vec![0; size])
                });
                match uboot::read_redundant(&copy0, &copy1) {
                    Ok((env, active)) => Ok(UbootRead::Redundant(env, active)),
                    Err(rustupdate_bootenv::Error::NoValidCopy { .. }) => {
                        Ok(UbootRead::NoValidCopy)
                    }
                    Err(err) => Err(self.err(&self.locations[0].device, err)),
                }
            }
            n => Err(self.err(
                &self.config_path,
                format!("{n} environment locations (1 or 2 expected)"),
            )),
        }
    }

    fn write_in_place(&self, index: usize, bytes: &[u8]) -> Result<(), Error> {
        let loc = &self.locations[index];
        if loc.offset == 0 && !loc.device.exists() {
            // A copy file that was deleted: a new file.
            return replace_file(&loc.device, bytes, "env")
                .map_err(|err| self.err(&loc.device, err));
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&loc.device)
            .map_err(|err| self.err(&loc.device, err))?;
        file.write_all_at(bytes, loc.offset)
            .map_err(|err| self.err(&loc.device, err))?;
        // A cut here leaves the copy old, torn or new: never the only valid one.
        fault::point("env:unsynced");
        file.sync_all().map_err(|err| self.err(&loc.device, err))?;
        fault::point("env:written");
        Ok(())
    }
}

/// What the U-Boot environment holds now.
enum UbootRead {
    Single(uboot::Env),
    Redundant(uboot::Env, uboot::Active),
    NoValidCopy,
}

impl BootControl for UbootEnv {
    fn load(&mut self) -> Result<BootEnv, Error> {
        let env = match self.read()? {
            UbootRead::Single(env) | UbootRead::Redundant(env, _) => env,
            UbootRead::NoValidCopy => {
                let env = self.record.fallback_env(false, self.default_bootlimit);
                repair(self, &env);
                return Ok(env);
            }
        };
        boot_env_from(
            |name| env.get(name).map(str::to_string),
            self.default_bootlimit,
            &self.locations[0].device,
        )
    }

    fn store(&mut self, boot: &BootEnv) -> Result<(), Error> {
        let read = self.read()?;
        let mut env = match &read {
            UbootRead::Single(env) | UbootRead::Redundant(env, _) => env.clone(),
            UbootRead::NoValidCopy => uboot::Env::new(),
        };
        for (name, value) in boot.to_vars() {
            env.set(name, &value)
                .map_err(|err| self.err(&self.locations[0].device, err))?;
        }
        let size = self.locations[0].size as usize;
        match read {
            UbootRead::Single(_) => {
                let loc = &self.locations[0];
                let bytes = uboot::to_single(&env, size, uboot::Padding::Zero)
                    .map_err(|err| self.err(&loc.device, err))?;
                let is_whole_file = loc.offset == 0
                    && std::fs::metadata(&loc.device)
                        .is_ok_and(|m| m.is_file() && m.len() == loc.size);
                if is_whole_file {
                    replace_file(&loc.device, &bytes, "env")
                        .map_err(|err| self.err(&loc.device, err))?;
                } else {
                    self.write_in_place(0, &bytes)?;
                }
            }
            UbootRead::Redundant(_, active) => {
                let (index, bytes) = uboot::next_redundant_write(&env, size, active)
                    .map_err(|err| self.err(&self.locations[0].device, err))?;
                self.write_in_place(index, &bytes)?;
            }
            UbootRead::NoValidCopy => {
                // Copy 0 with flags 1, as mkenvimage -r makes it: valid again.
                let bytes = uboot::to_redundant_copy(&env, size, 1, uboot::Padding::Zero)
                    .map_err(|err| self.err(&self.locations[0].device, err))?;
                self.write_in_place(0, &bytes)?;
            }
        }
        self.record.update(boot, false)
    }
}
