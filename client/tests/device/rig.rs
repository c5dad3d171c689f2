//! The simulated device: slot files, a bootloader environment (GRUB block, U-Boot single or
//! redundant) edited with its reference tool (`grub-editenv`, `fw_setenv`), a kernel
//! command line file, the client configuration, keys and artifacts.

use crate::rig_sdboot::{sd_boot, sd_boot_vars, write_entries};
use rustupdate_core::boot::{BootEnv, DEFAULT_BOOTLIMIT, bootloader_boot};
use rustupdate_testkit::{ArtifactSpec, artifact, require_tool};
use rustupdate_verify::SecretKey;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SLOT_SIZE: usize = 6 << 20;

pub struct Rig {
    dir: tempfile::TempDir,
    pub key: SecretKey,
    pub backend: Backend,
}

/// The bootloader environment the simulated device uses; each is edited with its reference tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// GRUB environment block, `grub-editenv`.
    Grub,
    /// GRUB environment in two copies (`grubenv`, `grubenv-redund`) framed by sequence numbers,
    /// each copy edited with `grub-editenv`.
    GrubRedundant,
    /// U-Boot single-copy environment file (as `uboot.env` on a boot partition), `fw_setenv`.
    UbootSingle,
    /// U-Boot redundant environment (two copies), `fw_setenv`.
    UbootRedundant,
    /// systemd-boot's entries with tries counters in `boot/esp/loader/entries`; both entries load
    /// one shared kernel file, so arming copies nothing (`sdboot.rs` covers the copy).
    SystemdBoot,
}

pub const ALL_BACKENDS: [Backend; 5] = [
    Backend::Grub,
    Backend::GrubRedundant,
    Backend::UbootSingle,
    Backend::UbootRedundant,
    Backend::SystemdBoot,
];
/// The copies of a two-copy GRUB environment, in the rig's boot directory.
const GRUB_COPIES: [&str; 2] = ["grubenv", "grubenv-redund"];
const SEQ: &str = "rustupdate_seq";
const SEQ_END: &str = "rustupdate_seq_end";
const ENV_SIZE: &str = "0x4000";

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A deterministic 4 MiB "filesystem image" for version `n`: data, zero runs, a version stamp.
pub fn image(n: u8) -> Vec<u8> {
    let mut image = rustupdate_testkit::fs_image(4 << 20, n.into());
    image[..16].copy_from_slice(format!("image version {n:2}").as_bytes());
    image
}

impl Rig {
    pub fn new() -> Rig {
        Rig::with(Backend::Grub)
    }

    pub fn with(backend: Backend) -> Rig {
        require_tool("grub-editenv", "grub-common");
        require_tool("fw_setenv", "libubootenv-tool");
        require_tool("mkenvimage", "u-boot-tools");
        let dir = tempfile::tempdir().unwrap();
        let rig = Rig {
            dir,
            key: rustupdate_testkit::key(7),
            backend,
        };
        let root = rig.root();
        for d in ["keys", "health.d", "hooks.d", "data", "boot"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut slot_a = image(1);
        slot_a.resize(SLOT_SIZE, 0);
        std::fs::write(root.join("slot-a.img"), slot_a).unwrap();
        std::fs::write(root.join("slot-b.img"), vec![0xeeu8; SLOT_SIZE]).unwrap();
        std::fs::write(
            root.join("keys/release.pem"),
            rig.key.public_key().to_pem().unwrap(),
        )
        .unwrap();
        let bootloader = rig.create_env();
        std::fs::write(
            root.join("cmdline"),
            "console=ttyS0 rustupdate.slot=a quiet\n",
        )
        .unwrap();
        let reboot = root.join("reboot.sh");
        std::fs::write(
            &reboot,
            format!(
                "#!/bin/sh\ntouch {}\n",
                root.join("reboot-requested").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&reboot, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = format!(
            r#"device-type = "test-board"
data-dir = "{root}/data"
[slots.a]
device = "{root}/slot-a.img"
[slots.b]
device = "{root}/slot-b.img"
[bootloader]
{bootloader}
[keys]
trusted-dir = "{root}/keys"
[health]
dir = "{root}/health.d"
timeout-secs = 2
trial-timeout-secs = 600
[hooks]
dir = "{root}/hooks.d"
timeout-secs = 2
[system]
reboot-command = ["{root}/reboot.sh"]
cmdline-file = "{root}/cmdline"
"#,
            root = root.display()
        );
        std::fs::write(rig.config_path(), config).unwrap();
        rig
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn config_path(&self) -> PathBuf {
        self.root().join("rustupdate.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    pub fn client(&self, args: &[&str]) -> Output {
        self.client_env(args, &[])
    }

    pub fn client_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_rustupdate"))
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.client(&["status", "--json"]);
        assert_eq!(out.code, 0, "status failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Provisions the environment like an image build would: `grub-editenv create` + `set`, or
    /// `mkenvimage` (single or redundant). Returns the `[bootloader]` config lines.
    fn create_env(&self) -> String {
        let root = self.root();
        match self.backend {
            Backend::Grub => {
                let grubenv = root.join("boot/grubenv");
                tool(Command::new("grub-editenv").arg(&grubenv).arg("create"));
                self.set_env(&[
                    ("rustupdate_slot", "a"),
                    ("upgrade_available", "0"),
                    ("bootcount", "0"),
                    ("bootlimit", "3"),
                ]);
                format!("type = \"grub\"\ngrubenv = \"{}\"", grubenv.display())
            }
            Backend::GrubRedundant => {
                for copy in GRUB_COPIES {
                    let path = root.join("boot").join(copy);
                    tool(Command::new("grub-editenv").arg(&path).arg("create"));
                    tool(Command::new("grub-editenv").arg(&path).arg("set").args([
                        "rustupdate_seq=0",
                        "rustupdate_slot=a",
                        "upgrade_available=0",
                        "bootcount=0",
                        "bootlimit=3",
                        "rustupdate_seq_end=0",
                    ]));
                }
                let [copy0, copy1] = GRUB_COPIES.map(|c| root.join("boot").join(c));
                format!(
                    "type = \"grub\"\ngrubenv = \"{}\"\ngrubenv-redund = \"{}\"",
                    copy0.display(),
                    copy1.display()
                )
            }
            Backend::SystemdBoot => {
                let esp = root.join("boot/esp");
                write_entries(&esp, "/shared/vmlinuz");
                format!(
                    "type = \"systemd-boot\"\nesp = \"{}\"\nmount-dir = \"{}\"",
                    esp.display(),
                    root.join("slot-mount").display()
                )
            }
            Backend::UbootSingle | Backend::UbootRedundant => {
                let initial = root.join("boot/env.txt");
                std::fs::write(
                    &initial,
                    "rustupdate_slot=a\nupgrade_available=0\nbootcount=0\nbootlimit=3\n",
                )
                .unwrap();
                let redundant = self.backend == Backend::UbootRedundant;
                let copies: &[&str] = if redundant {
                    &["uboot.env", "uboot-redund.env"]
                } else {
                    &["uboot.env"]
                };
                let mut config = String::new();
                for copy in copies {
                    let path = root.join("boot").join(copy);
                    let mut command = Command::new("mkenvimage");
                    command.args(["-s", ENV_SIZE]);
                    if redundant {
                        command.arg("-r");
                    }
                    tool(command.arg("-o").arg(&path).arg(&initial));
                    config.push_str(&format!("{} 0x0 {ENV_SIZE}\n", path.display()));
                }
                std::fs::write(root.join("fw_env.config"), config).unwrap();
                format!(
                    "type = \"uboot\"\nfw-env-config = \"{}/fw_env.config\"",
                    root.display()
                )
            }
        }
    }

    /// The two GRUB copies as `grub-editenv list` prints them, and which one is current by the
    /// boot contract's rule: complete copies (both numbers present and equal), the one a step
    /// ahead (0 -> 1 -> 2 -> 0), a tie to copy 0.
    pub fn grub_copies(&self) -> (usize, BTreeMap<String, String>) {
        let copies: Vec<Option<BTreeMap<String, String>>> = GRUB_COPIES
            .iter()
            .map(|copy| {
                let out = Command::new("grub-editenv")
                    .arg(self.root().join("boot").join(copy))
                    .arg("list")
                    .output()
                    .unwrap();
                let vars: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let complete = out.status.success()
                    && ["0", "1", "2"].contains(&vars.get(SEQ).map_or("", String::as_str))
                    && vars.get(SEQ) == vars.get(SEQ_END);
                complete.then_some(vars)
            })
            .collect();
        let seq = |c: &Option<BTreeMap<String, String>>| c.as_ref().map(|v| v[SEQ].clone());
        let current = match (seq(&copies[0]), seq(&copies[1])) {
            (Some(s0), Some(s1)) => {
                let ahead = (s0.parse::<u8>().unwrap() + 1) % 3;
                usize::from(s1 == ahead.to_string())
            }
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (None, None) => panic!("no complete copy of the GRUB environment"),
        };
        (current, copies[current].clone().unwrap())
    }

    /// The files of a two-copy environment (copy 0, copy 1); `None` for single-copy backends.
    pub fn env_copies(&self) -> Option<[PathBuf; 2]> {
        let names = match self.backend {
            Backend::GrubRedundant => GRUB_COPIES,
            Backend::UbootRedundant => ["uboot.env", "uboot-redund.env"],
            Backend::Grub | Backend::UbootSingle | Backend::SystemdBoot => return None,
        };
        Some(names.map(|name| self.root().join("boot").join(name)))
    }

    /// The bootloader environment as the reference tool (`grub-editenv list`, `fw_printenv`)
    /// prints it.
    pub fn env(&self) -> BTreeMap<String, String> {
        if self.backend == Backend::SystemdBoot {
            return sd_boot_vars(&self.root().join("boot/esp"));
        }
        if self.backend == Backend::GrubRedundant {
            let mut vars = self.grub_copies().1;
            vars.retain(|name, _| name != SEQ && name != SEQ_END);
            return vars;
        }
        let out = match self.backend {
            Backend::GrubRedundant | Backend::SystemdBoot => unreachable!(),
            Backend::Grub => tool(
                Command::new("grub-editenv")
                    .arg(self.root().join("boot/grubenv"))
                    .arg("list"),
            ),
            Backend::UbootSingle | Backend::UbootRedundant => tool(
                Command::new("fw_printenv")
                    .arg("-c")
                    .arg(self.root().join("fw_env.config")),
            ),
        };
        out.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Sets variables with the reference tool, as the bootloader script would.
    pub fn set_env(&self, pairs: &[(&str, &str)]) {
        match self.backend {
            Backend::SystemdBoot => panic!("systemd-boot keeps no variables to set: {pairs:?}"),
            Backend::GrubRedundant => {
                // As grub.cfg's save_env: the copy not in use, framed by the next number; a
                // copy that is not a block cannot be written (save_env edits blocks in place),
                // then the copy in use is rewritten.
                let (current, vars) = self.grub_copies();
                let next = (vars[SEQ].parse::<u8>().unwrap() + 1) % 3;
                let mut args = vec![format!("{SEQ}={next}")];
                args.extend(pairs.iter().map(|(k, v)| format!("{k}={v}")));
                args.push(format!("{SEQ_END}={next}"));
                let boot_dir = self.root().join("boot");
                let other = Command::new("grub-editenv")
                    .arg(boot_dir.join(GRUB_COPIES[1 - current]))
                    .arg("set")
                    .args(&args)
                    .output()
                    .unwrap();
                if !other.status.success() {
                    tool(
                        Command::new("grub-editenv")
                            .arg(boot_dir.join(GRUB_COPIES[current]))
                            .arg("set")
                            .args(&args),
                    );
                }
            }
            Backend::Grub => {
                let args: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                tool(
                    Command::new("grub-editenv")
                        .arg(self.root().join("boot/grubenv"))
                        .arg("set")
                        .args(&args),
                );
            }
            Backend::UbootSingle | Backend::UbootRedundant => {
                let script: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                let script_path = self.root().join("fw_setenv.script");
                std::fs::write(&script_path, script).unwrap();
                tool(
                    Command::new("fw_setenv")
                        .arg("-c")
                        .arg(self.root().join("fw_env.config"))
                        .arg("-s")
                        .arg(&script_path),
                );
            }
        }
    }

    /// One boot of the simulated bootloader: the contract's rule (`bootloader_boot`) applied
    /// with the reference tool like grub.cfg (save_env) and boot.cmd (env export + fatwrite) do.
    /// Clears the reboot request and returns the slot that boots.
    pub fn boot(&self) -> char {
        if self.backend == Backend::SystemdBoot {
            let slot = sd_boot(&self.root().join("boot/esp"));
            return self.booted(slot);
        }
        let vars = self.env();
        let env = BootEnv::from_vars(|name| vars.get(name).cloned(), DEFAULT_BOOTLIMIT).unwrap();
        let (next, slot) = bootloader_boot(&env);
        if next != env {
            let values = next.to_vars();
            let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.set_env(&pairs);
        }
        self.booted(slot.as_str().chars().next().unwrap())
    }

    /// The kernel command line of a boot of `slot`; clears the reboot request. A reboot also
    /// ends the mount a cut process left behind (the slot it mounted to copy its kernel), which
    /// would otherwise outlive the test, its loop device with it.
    fn booted(&self, slot: char) -> char {
        let mount = self.root().join("slot-mount");
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == mount.to_str())
        {
            tool(Command::new("umount").arg(&mount));
        }
        std::fs::write(
            self.root().join("cmdline"),
            format!("console=ttyS0 rustupdate.slot={slot} quiet\n"),
        )
        .unwrap();
        let _ = std::fs::remove_file(self.root().join("reboot-requested"));
        slot
    }

    pub fn reboot_requested(&self) -> bool {
        self.root().join("reboot-requested").exists()
    }

    pub fn slot_bytes(&self, slot: char) -> Vec<u8> {
        std::fs::read(self.root().join(format!("slot-{slot}.img"))).unwrap()
    }

    /// The slot starts with exactly this image (slots are larger than images).
    pub fn slot_holds(&self, slot: char, image: &[u8]) -> bool {
        let bytes = self.slot_bytes(slot);
        bytes.len() >= image.len() && &bytes[..image.len()] == image
    }

    pub fn state_text(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("state.json")).unwrap_or_default()
    }

    pub fn health_script(&self, name: &str, text: &str) {
        let path = self.root().join("health.d").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn hook_script(&self, name: &str, text: &str) {
        let path = self.root().join("hooks.d").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// An executable file in the rig's directory (consent and inventory programs).
    pub fn executable(&self, name: &str, text: &str) -> PathBuf {
        let path = self.file(name, text.as_bytes());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Builds and signs an artifact with the real format crates.
    pub fn artifact(
        &self,
        version: &str,
        image: &[u8],
        keys: &[&SecretKey],
        device_type: &str,
        security_version: Option<u64>,
    ) -> PathBuf {
        let spec = ArtifactSpec {
            version,
            compatible: &[device_type],
            security_version,
            ..Default::default()
        };
        self.file(
            &format!("{version}-{device_type}-{}.rua", keys.len()),
            &artifact(&spec, image, keys),
        )
    }

    /// A copy of the artifact with one byte flipped in the last chunk's data.
    pub fn tampered(&self, artifact: &Path) -> PathBuf {
        let len = std::fs::metadata(artifact).unwrap().len() as usize;
        self.tampered_at(artifact, len - 100)
    }

    /// A copy of the artifact with the byte at `at` flipped.
    pub fn tampered_at(&self, artifact: &Path, at: usize) -> PathBuf {
        let mut bytes = std::fs::read(artifact).unwrap();
        bytes[at] ^= 0x20;
        self.file("tampered.rua", &bytes)
    }
}

pub fn tool(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
