//! Wires the configuration into the real adapters and hands out an `Updater`.

use crate::config::{Bootloader, Config};
use crate::sys::boot_entries::BootEntries;
use crate::sys::boot_env::{COMMITTED_SLOT_RECORD, CommittedSlotRecord, GrubEnvFile, UbootEnv};
use crate::sys::reboot::CommandReboot;
use crate::sys::scripts::ScriptDir;
use crate::sys::slots::DeviceSlots;
use crate::sys::state_file::StateFile;
use crate::sys::uptime::{PROC_UPTIME, ProcUptime};
use anyhow::{Context, Result};
use rustupdate_core::seams::Seams;
use rustupdate_core::slot::booted_slot_from_cmdline;
use rustupdate_core::{BootControl, SlotId, Updater};
use std::time::Duration;

pub struct Device {
    pub config: Config,
    pub booted: SlotId,
    boot: Box<dyn BootControl>,
    state: StateFile,
    slots: DeviceSlots,
    health: ScriptDir,
    hooks: ScriptDir,
    reboot: CommandReboot,
    clock: ProcUptime,
}

impl Device {
    pub fn open(config: &Config) -> Result<Device> {
        let cmdline_path = &config.system.cmdline_file;
        let cmdline = std::fs::read_to_string(cmdline_path)
            .with_context(|| format!("reading {}", cmdline_path.display()))?;
        let booted = booted_slot_from_cmdline(&cmdline).with_context(|| {
            format!(
                "{} has no rustupdate.slot=a|b: was this boot started by a rustupdate boot script?",
                cmdline_path.display()
            )
        })?;
        let record = CommittedSlotRecord {
            path: config.data_dir.join(COMMITTED_SLOT_RECORD),
        };
        let boot: Box<dyn BootControl> = match &config.bootloader {
            Bootloader::Grub {
                grubenv,
                grubenv_redund,
                bootlimit,
            } => Box::new(GrubEnvFile {
                path: grubenv.clone(),
                redund: grubenv_redund.clone(),
                default_bootlimit: *bootlimit,
                record,
            }),
            Bootloader::Uboot {
                fw_env_config,
                bootlimit,
            } => Box::new(UbootEnv::from_config_file(
                fw_env_config,
                *bootlimit,
                record,
            )?),
            Bootloader::SystemdBoot {
                esp,
                slot_boot_dir,
                mount_dir,
                bootlimit,
            } => {
                let slots = DeviceSlots::new(&config.slots, &config.system.dev_dir)?;
                Box::new(BootEntries {
                    esp: esp.clone(),
                    default_bootlimit: *bootlimit,
                    slot_boot_dir: slot_boot_dir.clone(),
                    slot_devices: [SlotId::A, SlotId::B].map(|s| slots.path(s).to_path_buf()),
                    mount_dir: mount_dir.clone(),
                })
            }
        };
        Ok(Device {
            booted,
            boot,
            state: StateFile {
                dir: config.data_dir.clone(),
            },
            slots: DeviceSlots::new(&config.slots, &config.system.dev_dir)?,
            health: ScriptDir {
                dir: config.health.dir.clone(),
                timeout: Duration::from_secs(config.health.timeout_secs),
            },
            hooks: ScriptDir {
                dir: config.hooks.dir.clone(),
                timeout: Duration::from_secs(config.hooks.timeout_secs),
            },
            reboot: CommandReboot {
                command: config.system.reboot_command.clone(),
            },
            clock: ProcUptime {
                path: PROC_UPTIME.into(),
            },
            config: config.clone(),
        })
    }

    /// The device path (or file) of `slot`.
    pub fn slot_path(&self, slot: SlotId) -> std::path::PathBuf {
        self.slots.path(slot).to_path_buf()
    }

    pub fn updater(&mut self) -> Result<Updater<'_>> {
        let seams = Seams {
            boot: self.boot.as_mut(),
            state: &mut self.state,
            slots: &mut self.slots,
            health: &mut self.health,
            hooks: &mut self.hooks,
            reboot: &mut self.reboot,
            clock: &mut self.clock,
        };
        let key_path = self.config.keys.decryption_key.clone();
        Ok(
            Updater::new(&self.config.device_type, self.booted, seams)?.with_decryption_key(
                Box::new(move || key_path.as_deref().map(read_decryption_key).transpose()),
            ),
        )
    }

    /// The content key of the encrypted artifact `head`, unwrapped with this device's
    /// decryption key (for a delta, whose patch is sealed under it), or why it cannot be.
    pub fn content_key(
        &self,
        head: &rustupdate_format::Head,
    ) -> std::result::Result<rustupdate_seal::ContentKey, String> {
        let Some(sealing) = &head.manifest.encryption else {
            return Err("the artifact is not encrypted".into());
        };
        let Some(path) = &self.config.keys.decryption_key else {
            return Err("the artifact is encrypted and this device has no decryption key".into());
        };
        let secret = read_decryption_key(path)?;
        rustupdate_seal::unwrap(sealing, &secret).map_err(|err| err.to_string())
    }
}

/// The configured decryption key, or why it cannot be used (named with its path).
fn read_decryption_key(
    path: &std::path::Path,
) -> std::result::Result<rustupdate_seal::RecipientSecretKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("reading {}: {err}", path.display()))?;
    rustupdate_seal::RecipientSecretKey::from_pem(&text)
        .map_err(|err| format!("{}: {err}", path.display()))
}
