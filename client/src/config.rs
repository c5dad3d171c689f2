//! The client configuration file (`/etc/rustupdate/rustupdate.toml`), documented key by key in
//! `docs/config.md`. Unknown keys are errors that name the key.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/rustupdate/rustupdate.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    pub device_type: String,
    pub data_dir: PathBuf,
    pub slots: Slots,
    pub bootloader: Bootloader,
    pub keys: Keys,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub hooks: HooksConfig,
    #[serde(default)]
    pub system: System,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    pub a: SlotDevice,
    pub b: SlotDevice,
}

/// Exactly one of the three ways to name a slot.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SlotDevice {
    pub device: Option<PathBuf>,
    pub partlabel: Option<String>,
    pub partuuid: Option<String>,
}

impl SlotDevice {
    /// The path to open: a device node, a by-partlabel/by-partuuid link, or a plain file.
    pub fn path(&self, dev_dir: &Path) -> Result<PathBuf> {
        match (&self.device, &self.partlabel, &self.partuuid) {
            (Some(path), None, None) => Ok(path.clone()),
            (None, Some(label), None) => Ok(dev_dir.join("disk/by-partlabel").join(label)),
            (None, None, Some(uuid)) => {
                Ok(dev_dir.join("disk/by-partuuid").join(uuid.to_lowercase()))
            }
            _ => bail!("a slot needs exactly one of device, partlabel or partuuid"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    tag = "type",
    deny_unknown_fields
)]
pub enum Bootloader {
    /// GRUB environment block file (1024 bytes), replaced atomically.
    Grub {
        grubenv: PathBuf,
        #[serde(default = "default_bootlimit")]
        bootlimit: u32,
    },
    /// U-Boot environment described by a libubootenv `fw_env.config`.
    Uboot {
        #[serde(default = "default_fw_env_config")]
        fw_env_config: PathBuf,
        #[serde(default = "default_bootlimit")]
        bootlimit: u32,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Keys {
    pub trusted_dir: PathBuf,
    #[serde(default = "default_threshold")]
    pub threshold: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Health {
    pub dir: PathBuf,
    pub timeout_secs: u64,
    pub trial_timeout_secs: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            dir: "/etc/rustupdate/health.d".into(),
            timeout_secs: 60,
            trial_timeout_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct HooksConfig {
    pub dir: PathBuf,
    pub timeout_secs: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            dir: "/etc/rustupdate/hooks.d".into(),
            timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct System {
    pub reboot_command: Vec<String>,
    /// Where the kernel command line is read (the booted slot is `rustupdate.slot=`).
    pub cmdline_file: PathBuf,
    /// Root of the device nodes (for partlabel/partuuid lookups).
    pub dev_dir: PathBuf,
}

impl Default for System {
    fn default() -> Self {
        System {
            reboot_command: vec!["/sbin/reboot".into()],
            cmdline_file: "/proc/cmdline".into(),
            dev_dir: "/dev".into(),
        }
    }
}

fn default_bootlimit() -> u32 {
    rustupdate_core::boot::DEFAULT_BOOTLIMIT
}

fn default_threshold() -> usize {
    1
}

fn default_fw_env_config() -> PathBuf {
    "/etc/fw_env.config".into()
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config =
            toml::from_str(text).map_err(|err| anyhow::anyhow!("{}", err.message().trim()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.device_type.trim().is_empty() {
            bail!("device-type is empty");
        }
        self.slots.a.path(Path::new("/dev")).context("slots.a")?;
        self.slots.b.path(Path::new("/dev")).context("slots.b")?;
        let bootlimit = match &self.bootloader {
            Bootloader::Grub { bootlimit, .. } | Bootloader::Uboot { bootlimit, .. } => *bootlimit,
        };
        rustupdate_core::boot::check_bootlimit(bootlimit).context("bootloader.bootlimit")?;
        if self.keys.threshold == 0 {
            bail!(
                "keys.threshold must be at least 1 (unsigned installs need --danger-allow-unsigned)"
            );
        }
        if self.system.reboot_command.is_empty() {
            bail!("system.reboot-command is empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
device-type = "qemux86-64"
data-dir = "/data/rustupdate"
[slots.a]
partlabel = "rootfs_a"
[slots.b]
device = "/dev/vda3"
[bootloader]
type = "grub"
grubenv = "/boot/efi/EFI/BOOT/grubenv"
[keys]
trusted-dir = "/etc/rustupdate/keys"
"#;

    #[test]
    fn parses_with_defaults() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.keys.threshold, 1);
        assert_eq!(config.health.timeout_secs, 60);
        assert_eq!(
            config.slots.a.path(Path::new("/dev")).unwrap(),
            PathBuf::from("/dev/disk/by-partlabel/rootfs_a")
        );
        assert!(matches!(
            config.bootloader,
            Bootloader::Grub { bootlimit: 3, .. }
        ));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse(&format!("{GOOD}\nsurprise = 1\n")).unwrap_err();
        assert!(format!("{err:#}").contains("surprise"), "{err:#}");
        let err = Config::parse(&GOOD.replace("trusted-dir", "trusted-dri")).unwrap_err();
        assert!(format!("{err:#}").contains("trusted-dri"), "{err:#}");
        let err = Config::parse(&GOOD.replace("type = \"grub\"", "type = \"lilo\"")).unwrap_err();
        assert!(format!("{err:#}").contains("lilo"), "{err:#}");
    }

    #[test]
    fn slot_needs_exactly_one_name() {
        let err = Config::parse(&GOOD.replace(
            "device = \"/dev/vda3\"",
            "device = \"/dev/vda3\"\npartlabel = \"x\"",
        ))
        .unwrap_err();
        assert!(format!("{err:#}").contains("slots.b"), "{err:#}");
        let err = Config::parse(&GOOD.replace("[keys]", "bootlimit = 12\n[keys]")).unwrap_err();
        assert!(format!("{err:#}").contains("bootlimit"), "{err:#}");
    }
}
