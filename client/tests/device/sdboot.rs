//! The systemd-boot chain's kernel files: arming a trial copies the new slot's `/boot/vmlinuz`
//! (a real ext4 image, mounted read-only through a loop device: the tests run as root, as CI
//! does) to `rustupdate/b/` on the ESP before the entry that loads it; a power cut at any point
//! of the install leaves a device whose booted entry loads the kernel of the slot it boots; an
//! image without the kernel its entry names is refused before anything is armed.

use crate::rig::{Backend, Rig, SLOT_SIZE, tool};
use crate::rig_sdboot::{sd_boot_vars, write_entries};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An ext4 image of `SLOT_SIZE / 2` holding `/boot/vmlinuz` ("kernel <version>", unless
/// `kernel` is false) and `/etc/version`.
fn ext4_image(rig: &Rig, version: &str, kernel: bool) -> Vec<u8> {
    let root = rig.root().join(format!("tree-{version}"));
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    if kernel {
        std::fs::write(root.join("boot/vmlinuz"), kernel_bytes(version)).unwrap();
    }
    std::fs::write(root.join("etc/version"), version).unwrap();
    let image = rig.root().join(format!("{version}.ext4"));
    tool(
        Command::new(rustupdate_testkit::require_tool("mkfs.ext4", "e2fsprogs"))
            .args(["-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d"])
            .arg(&root)
            .arg(&image)
            .arg(format!("{}k", SLOT_SIZE / 2 / 1024)),
    );
    std::fs::read(image).unwrap()
}

fn kernel_bytes(version: &str) -> Vec<u8> {
    // Large enough to span several copy buffers.
    format!("kernel {version}\n").repeat(20_000).into_bytes()
}

struct Device {
    rig: Rig,
    esp: PathBuf,
    v2: PathBuf,
}

/// A systemd-boot device whose entries load per-slot kernels, v1 in slot a and on the ESP.
fn device(v2_has_kernel: bool) -> Device {
    let rig = Rig::with(Backend::SystemdBoot);
    let esp = rig.root().join("boot/esp");
    std::fs::remove_dir_all(esp.join("loader")).unwrap();
    write_entries(&esp, "/rustupdate/<slot>/vmlinuz");
    std::fs::write(esp.join("rustupdate/a/vmlinuz"), kernel_bytes("v1")).unwrap();
    let mut slot_a = ext4_image(&rig, "v1", true);
    slot_a.resize(SLOT_SIZE, 0);
    std::fs::write(rig.root().join("slot-a.img"), slot_a).unwrap();
    let v2 = rig.artifact(
        "v2",
        &ext4_image(&rig, "v2", v2_has_kernel),
        &[&rig.key],
        "test-board",
        None,
    );
    Device { rig, esp, v2 }
}

fn esp_kernel(esp: &Path, slot: char) -> Vec<u8> {
    std::fs::read(esp.join(format!("rustupdate/{slot}/vmlinuz"))).unwrap_or_default()
}

fn mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(dir.to_str().unwrap()))
}

#[test]
fn arming_copies_the_new_kernel_and_commit_blesses_its_entry() {
    let d = device(true);
    let out = d.rig.client(&["install", d.v2.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(esp_kernel(&d.esp, 'b'), kernel_bytes("v2"));
    assert_eq!(
        esp_kernel(&d.esp, 'a'),
        kernel_bytes("v1"),
        "slot a's kernel untouched"
    );
    assert!(
        !mounted(&d.rig.root().join("slot-mount")),
        "the slot is unmounted again"
    );
    let vars = sd_boot_vars(&d.esp);
    assert_eq!(
        (
            vars["rustupdate_slot"].as_str(),
            vars["upgrade_available"].as_str()
        ),
        ("b", "1")
    );
    assert!(d.esp.join("loader/entries/rustupdate-b+3.conf").is_file());
    assert_eq!(d.rig.boot(), 'b');
    assert!(d.esp.join("loader/entries/rustupdate-b+2-1.conf").is_file());
    let out = d.rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let entries = std::fs::read_dir(d.esp.join("loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        entries,
        ["rustupdate-a.conf", "rustupdate-b.conf"]
            .map(String::from)
            .into()
    );
    let b = std::fs::read_to_string(d.esp.join("loader/entries/rustupdate-b.conf")).unwrap();
    assert!(
        b.contains("version 3\n") && b.contains("rustupdate.slot=b"),
        "{b}"
    );
    assert_eq!(d.rig.boot(), 'b');
    assert_eq!(d.rig.status()["committed"]["version"], "v2");
}

#[test]
fn an_image_without_the_kernel_its_entry_loads_is_refused_before_arming() {
    let d = device(false);
    let before = std::fs::read_dir(d.esp.join("loader/entries"))
        .unwrap()
        .count();
    let out = d.rig.client(&["install", d.v2.to_str().unwrap()]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("slot b has no /boot/vmlinuz"),
        "{}",
        out.stderr
    );
    let vars = sd_boot_vars(&d.esp);
    assert_eq!(
        (
            vars["rustupdate_slot"].as_str(),
            vars["upgrade_available"].as_str()
        ),
        ("a", "0")
    );
    assert!(d.esp.join("loader/entries/rustupdate-b.conf").is_file());
    assert_eq!(
        std::fs::read_dir(d.esp.join("loader/entries"))
            .unwrap()
            .count(),
        before
    );
    assert!(!mounted(&d.rig.root().join("slot-mount")));
    assert_eq!(d.rig.boot(), 'a');
}

/// A cut at every durable write of the install (image, kernel file, entry): the next boot loads
/// the kernel that belongs to the slot it boots, and the device settles on a or b.
#[test]
fn power_cut_at_every_point_of_an_install_that_copies_a_kernel() {
    let probe = device(true);
    let out = probe.rig.client_env(
        &["install", probe.v2.to_str().unwrap()],
        &[("RUSTUPDATE_FAULT_TRACE", "1")],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let points: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rustupdate-fault-point "))
        .collect();
    for name in ["boot-file:after-rename", "entry:after-rename"] {
        assert!(
            points.iter().any(|p| p.ends_with(name)),
            "{name} in {points:?}"
        );
    }
    for n in 1..=points.len() {
        let d = device(true);
        let cut = d.rig.client_env(
            &["install", d.v2.to_str().unwrap()],
            &[("RUSTUPDATE_FAULT_AFTER", &n.to_string())],
        );
        assert_eq!(
            cut.code,
            99,
            "cut at {n} ({}): {}",
            points[n - 1],
            cut.stderr
        );
        let slot = d.rig.boot();
        let expected = if slot == 'a' { "v1" } else { "v2" };
        assert_eq!(
            esp_kernel(&d.esp, slot),
            kernel_bytes(expected),
            "cut at {n} ({}): slot {slot} boots with another kernel",
            points[n - 1]
        );
        let out = d.rig.client(&["commit"]);
        assert!(out.code == 0 || out.code == 3, "{}", out.stderr);
        assert!(d.rig.status()["pending"].is_null(), "cut at {n}");
    }
}
