//! The client configuration file (`/etc/rustupdate/rustupdate.toml`), documented key by key in
//! `docs/config.md`. Unknown keys are errors that name the key.

use anyhow::{Context, Result, bail};
use rustupdate_core::daemon::RebootPolicy;
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
    /// The fleet server (`rustupdate daemon`, `check-update`); absent on devices updated by hand.
    pub server: Option<Server>,
}

/// A hawkBit DDI server: `rustupdate-server` or any hawkBit-compatible one.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Server {
    /// Base URL; the DDI paths `/{tenant}/controller/v1/{controller-id}` are appended.
    pub url: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Default: the kernel host name.
    pub controller_id: Option<String>,
    /// This device's target token (`Authorization: TargetToken …`), in a file of mode 0600.
    pub token_file: Option<PathBuf>,
    /// The tenant's gateway token (`Authorization: GatewayToken …`), in a file of mode 0600.
    pub gateway_token_file: Option<PathBuf>,
    /// PEM bundle of the CAs trusted for the server (default: the built-in web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Executable printing extra inventory attributes as `key=value` lines.
    pub inventory_script: Option<PathBuf>,
    /// Executable asked before each install: exit 0 installs now, anything else defers.
    pub consent_script: Option<PathBuf>,
    #[serde(default)]
    pub reboot: RebootMode,
    /// `HH:MM-HH:MM` (UTC), with `reboot = "maintenance-window"`.
    pub maintenance_window: Option<String>,
    /// Tell the server this device takes delta patches against its committed image, and take
    /// one when a deployment offers it (falling back to the full artifact).
    #[serde(default = "default_true")]
    pub accept_deltas: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RebootMode {
    #[default]
    Immediate,
    Manual,
    MaintenanceWindow,
}

impl Server {
    /// The reboot policy, validated.
    pub fn reboot_policy(&self) -> Result<RebootPolicy> {
        match (self.reboot, &self.maintenance_window) {
            (RebootMode::Immediate, None) => Ok(RebootPolicy::Immediate),
            (RebootMode::Manual, None) => Ok(RebootPolicy::Manual),
            (RebootMode::MaintenanceWindow, Some(window)) => {
                Ok(RebootPolicy::Window(window.parse()?))
            }
            (RebootMode::MaintenanceWindow, None) => {
                bail!("reboot = \"maintenance-window\" needs maintenance-window = \"HH:MM-HH:MM\"")
            }
            (_, Some(_)) => {
                bail!("maintenance-window is only used with reboot = \"maintenance-window\"")
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let url = self.url.to_ascii_lowercase();
        if url.starts_with("http://") {
            if !self.allow_insecure_http {
                bail!(
                    "url {} is plain http: use https, or set allow-insecure-http = true",
                    self.url
                );
            }
        } else if !url.starts_with("https://") {
            bail!("url {:?} is not an http(s) URL", self.url);
        }
        rustupdate_ddi::Tenant::new(&self.tenant)?;
        if let Some(id) = &self.controller_id {
            rustupdate_ddi::ControllerId::new(id)?;
        }
        if self.token_file.is_some() && self.gateway_token_file.is_some() {
            bail!("token-file and gateway-token-file exclude each other");
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            bail!("client-cert and client-key go together");
        }
        if self.poll_interval_secs == 0
            || self.max_backoff_secs == 0
            || self.request_timeout_secs == 0
        {
            bail!(
                "poll-interval-secs, max-backoff-secs and request-timeout-secs must be at least 1"
            );
        }
        self.reboot_policy()?;
        Ok(())
    }
}

fn default_tenant() -> String {
    "DEFAULT".into()
}

fn default_poll_interval() -> u64 {
    300
}

fn default_max_backoff() -> u64 {
    900
}

fn default_request_timeout() -> u64 {
    30
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
    /// GRUB environment block file (1024 bytes); with `grubenv-redund`, two copies written
    /// alternately (docs/boot-contract.md), else one file replaced atomically.
    Grub {
        grubenv: PathBuf,
        #[serde(default)]
        grubenv_redund: Option<PathBuf>,
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
    /// systemd-boot's boot counting: the two slot entries `loader/entries/rustupdate-{a,b}…` on
    /// the ESP mounted at `esp` (docs/boot-contract.md, "systemd-boot").
    SystemdBoot {
        esp: PathBuf,
        /// The directory in each slot's file system with the files its entry loads.
        #[serde(default = "default_slot_boot_dir")]
        slot_boot_dir: PathBuf,
        /// Where the armed slot is mounted read-only while its kernel files are copied.
        #[serde(default = "default_slot_mount_dir")]
        mount_dir: PathBuf,
        #[serde(default = "default_bootlimit")]
        bootlimit: u32,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Keys {
    /// Fixed release keys: every `*.pem` in it, trusted for ever. Exactly one of this and
    /// `trust-document`.
    pub trusted_dir: Option<PathBuf>,
    /// With `trusted-dir`: how many distinct keys must sign.
    #[serde(default = "default_threshold")]
    pub threshold: usize,
    /// The image's trust document (docs/trust.md): release keys, thresholds and revocations
    /// signed by the root keys, replaced by newer documents (kept in `data-dir/trust.json`).
    pub trust_document: Option<PathBuf>,
    /// With `trust-document`: the image's root keys (every `*.pem`), which sign the first one.
    pub root_dir: Option<PathBuf>,
    /// With `trust-document`: how many of the root keys must sign it.
    #[serde(default = "default_threshold")]
    pub root_threshold: usize,
    /// The device's X25519 secret key (PKCS#8 PEM) for encrypted artifacts
    /// (docs/encryption.md): a per-device key belongs on the data partition, never in the image.
    pub decryption_key: Option<PathBuf>,
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

fn default_slot_boot_dir() -> PathBuf {
    "/boot".into()
}

fn default_slot_mount_dir() -> PathBuf {
    "/run/rustupdate/slot-mount".into()
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
            Bootloader::Grub { bootlimit, .. }
            | Bootloader::Uboot { bootlimit, .. }
            | Bootloader::SystemdBoot { bootlimit, .. } => *bootlimit,
        };
        rustupdate_core::boot::check_bootlimit(bootlimit).context("bootloader.bootlimit")?;
        match (
            &self.keys.trusted_dir,
            &self.keys.trust_document,
            &self.keys.root_dir,
        ) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (None, Some(_), None) => bail!("keys.trust-document needs keys.root-dir"),
            (Some(_), Some(_), _) => {
                bail!("keys: trusted-dir and trust-document exclude each other (one or the other)")
            }
            (None, None, _) => bail!("keys: set trusted-dir or trust-document (docs/trust.md)"),
            (Some(_), None, Some(_)) => bail!("keys.root-dir is only used with trust-document"),
        }
        if self.keys.root_threshold == 0 {
            bail!("keys.root-threshold must be at least 1");
        }
        if self.keys.threshold == 0 {
            bail!(
                "keys.threshold must be at least 1 (unsigned installs need --danger-allow-unsigned)"
            );
        }
        if self.system.reboot_command.is_empty() {
            bail!("system.reboot-command is empty");
        }
        if let Some(server) = &self.server {
            server.validate().context("server")?;
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
    fn server_section() {
        let server = |extra: &str| Config::parse(&format!("{GOOD}[server]\n{extra}"));
        let config = server("url = \"https://fleet.example.com\"\ntoken-file = \"/t\"\n").unwrap();
        let s = config.server.unwrap();
        assert_eq!((s.tenant.as_str(), s.poll_interval_secs), ("DEFAULT", 300));
        assert_eq!(s.reboot_policy().unwrap(), RebootPolicy::Immediate);
        for (extra, expected) in [
            ("url = \"http://x\"\n", "allow-insecure-http"),
            ("url = \"ftp://x\"\n", "not an http"),
            (
                "url = \"https://x\"\ntoken-file = \"/a\"\ngateway-token-file = \"/b\"\n",
                "exclude",
            ),
            (
                "url = \"https://x\"\nreboot = \"maintenance-window\"\n",
                "HH:MM-HH:MM",
            ),
            (
                "url = \"https://x\"\nreboot = \"maintenance-window\"\nmaintenance-window = \"25:00-01:00\"\n",
                "25:00",
            ),
            ("url = \"https://x\"\nreboot = \"sometimes\"\n", "sometimes"),
            (
                "url = \"https://x\"\ncontroller-id = \"a/b\"\n",
                "controller id",
            ),
            ("url = \"https://x\"\nclient-cert = \"/c\"\n", "client-key"),
            (
                "url = \"https://x\"\npoll-intervall-secs = 3\n",
                "poll-intervall-secs",
            ),
        ] {
            let err = format!("{:#}", server(extra).unwrap_err());
            assert!(err.contains(expected), "{extra}: {err}");
        }
        let window = server("url = \"https://x\"\nreboot = \"maintenance-window\"\nmaintenance-window = \"02:00-04:00\"\n").unwrap();
        assert!(matches!(
            window.server.unwrap().reboot_policy().unwrap(),
            RebootPolicy::Window(_)
        ));
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
