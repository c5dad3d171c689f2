//! Bootloader environments as [`BootControl`]: the GRUB environment block file and the U-Boot
//! environment described by `fw_env.config`. The byte formats are `rustupdate-bootenv`, the
//! variables and their meaning `rustupdate_core::boot`; this module only reads and writes them,
//! preserving every variable it does not own.
//!
//! Power-cut safety of `store`:
//! - GRUB: the 1024-byte block is replaced as a file (temp, fsync, rename, fsync dir).
//! - U-Boot redundant: only the inactive copy is written (with the next flags value), then fsynced;
//!   the active copy stays valid until the new one is complete.
//! - U-Boot single copy in a plain file (e.g. `uboot.env` on the boot partition): file replacement
//!   as for GRUB. In a raw device area a single copy is rewritten in place, which is not atomic;
//!   use a redundant environment there (documented in docs/client.md).

use super::{fault, replace_file};
use rustupdate_bootenv::{grub, uboot};
use rustupdate_core::{BootControl, BootEnv, Error};
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

/// The GRUB environment block file (e.g. `EFI/BOOT/grubenv` on the ESP).
#[derive(Debug)]
pub struct GrubEnvFile {
    pub path: PathBuf,
    pub default_bootlimit: u32,
}

impl GrubEnvFile {
    fn read(&self) -> Result<grub::Env, Error> {
        let bytes = std::fs::read(&self.path).map_err(|err| {
            Error::adapter(
                "grub environment",
                format!("{}: {err}", self.path.display()),
            )
        })?;
        grub::Env::from_bytes(&bytes).map_err(|err| {
            Error::adapter(
                "grub environment",
                format!("{}: {err}", self.path.display()),
            )
        })
    }
}

impl BootControl for GrubEnvFile {
    fn load(&mut self) -> Result<BootEnv, Error> {
        let env = self.read()?;
        boot_env_from(
            |name| env.get(name).map(str::to_string),
            self.default_bootlimit,
            &self.path,
        )
    }

    fn store(&mut self, boot: &BootEnv) -> Result<(), Error> {
        let mut env = self.read()?;
        for (name, value) in boot.to_vars() {
            env.set(name, &value)
                .map_err(|err| Error::adapter("grub environment", err))?;
        }
        let bytes = env
            .to_bytes()
            .map_err(|err| Error::adapter("grub environment", err))?;
        replace_file(&self.path, &bytes, "env").map_err(|err| {
            Error::adapter(
                "grub environment",
                format!("writing {}: {err}", self.path.display()),
            )
        })
    }
}

/// The U-Boot environment at the locations of a libubootenv `fw_env.config`.
#[derive(Debug)]
pub struct UbootEnv {
    locations: Vec<uboot::EnvLocation>,
    config_path: PathBuf,
    default_bootlimit: u32,
}

impl UbootEnv {
    pub fn from_config_file(path: &Path, default_bootlimit: u32) -> anyhow::Result<UbootEnv> {
        use anyhow::Context;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let locations = uboot::parse_fw_env_config(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(UbootEnv {
            locations,
            config_path: path.to_path_buf(),
            default_bootlimit,
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
    fn read(&self) -> Result<(uboot::Env, Option<uboot::Active>), Error> {
        match self.locations.len() {
            1 => {
                let bytes = self.read_copy(0)?;
                let env = uboot::Env::from_single(&bytes)
                    .map_err(|err| self.err(&self.locations[0].device, err))?;
                Ok((env, None))
            }
            2 => {
                let (copy0, copy1) = (self.read_copy(0)?, self.read_copy(1)?);
                let (env, active) = uboot::read_redundant(&copy0, &copy1)
                    .map_err(|err| self.err(&self.locations[0].device, err))?;
                Ok((env, Some(active)))
            }
            n => Err(self.err(
                &self.config_path,
                format!("{n} environment locations (1 or 2 expected)"),
            )),
        }
    }

    fn write_in_place(&self, index: usize, bytes: &[u8]) -> Result<(), Error> {
        let loc = &self.locations[index];
        let file = OpenOptions::new()
            .write(true)
            .open(&loc.device)
            .map_err(|err| self.err(&loc.device, err))?;
        file.write_all_at(bytes, loc.offset)
            .map_err(|err| self.err(&loc.device, err))?;
        file.sync_all().map_err(|err| self.err(&loc.device, err))?;
        fault::point("env:written");
        Ok(())
    }
}

impl BootControl for UbootEnv {
    fn load(&mut self) -> Result<BootEnv, Error> {
        let (env, _) = self.read()?;
        boot_env_from(
            |name| env.get(name).map(str::to_string),
            self.default_bootlimit,
            &self.locations[0].device,
        )
    }

    fn store(&mut self, boot: &BootEnv) -> Result<(), Error> {
        let (mut env, active) = self.read()?;
        for (name, value) in boot.to_vars() {
            env.set(name, &value)
                .map_err(|err| self.err(&self.locations[0].device, err))?;
        }
        match active {
            None => {
                let loc = &self.locations[0];
                let bytes = uboot::to_single(&env, loc.size as usize, uboot::Padding::Zero)
                    .map_err(|err| self.err(&loc.device, err))?;
                let is_whole_file = loc.offset == 0
                    && std::fs::metadata(&loc.device)
                        .is_ok_and(|m| m.is_file() && m.len() == loc.size);
                if is_whole_file {
                    replace_file(&loc.device, &bytes, "env")
                        .map_err(|err| self.err(&loc.device, err))
                } else {
                    self.write_in_place(0, &bytes)
                }
            }
            Some(active) => {
                let size = self.locations[0].size as usize;
                let (index, bytes) = uboot::next_redundant_write(&env, size, active)
                    .map_err(|err| self.err(&self.locations[0].device, err))?;
                self.write_in_place(index, &bytes)
            }
        }
    }
}
