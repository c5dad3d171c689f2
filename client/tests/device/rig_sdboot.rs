//! The simulated device's systemd-boot chain: the factory entries, the contract's values read
//! from them and one boot by systemd-boot, all by the rules of `rustupdate_bootenv::bls` (which
//! `bootctl` cross-checks in `crates/bootenv/tests/reference_tools/sdboot.rs`).

use rustupdate_bootenv::bls;
use rustupdate_core::boot::DEFAULT_BOOTLIMIT;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The factory ESP of the systemd-boot chain: `loader.conf`, slot a's entry (generation 2) and
/// slot b's (generation 1), both loading `kernel` (`/rustupdate/<slot>/…` is per slot); the
/// kernel files themselves are the caller's.
pub fn write_entries(esp: &Path, kernel: &str) {
    std::fs::create_dir_all(esp.join(bls::ENTRIES_DIR)).unwrap();
    std::fs::write(
        esp.join("loader/loader.conf"),
        "timeout 0\neditor no\ndefault rustupdate-*\n",
    )
    .unwrap();
    for (slot, generation) in [("a", 2), ("b", 1)] {
        let kernel = kernel.replace("<slot>", slot);
        let path = esp.join(kernel.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        if !path.exists() {
            std::fs::write(&path, b"factory kernel").unwrap();
        }
        std::fs::write(
            esp.join(bls::ENTRIES_DIR)
                .join(format!("rustupdate-{slot}.conf")),
            format!(
                "title rustupdate slot {slot}\nsort-key rustupdate\nversion {generation}\n\
                 linux {kernel}\noptions root=PARTLABEL=rootfs_{slot} rustupdate.slot={slot}\n"
            ),
        )
        .unwrap();
    }
}

/// The entries on `esp` as the rules read them (file name, entry).
pub fn sd_entries(esp: &Path) -> Vec<(PathBuf, bls::Entry)> {
    let dir = esp.join(bls::ENTRIES_DIR);
    let mut entries = Vec::new();
    for item in std::fs::read_dir(&dir).unwrap() {
        let path = item.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(name) = bls::EntryName::parse(&file).unwrap() else {
            continue;
        };
        let content = std::fs::read_to_string(&path).unwrap();
        let loader = bls::loader_of(&content).unwrap();
        let entry = bls::Entry {
            name,
            generation: bls::generation_of(&file, &content).unwrap(),
            loadable: esp.join(loader.trim_start_matches('/')).is_file(),
        };
        entries.push((path, entry));
    }
    entries
}

/// The contract's four values as the entries on `esp` say them (docs/boot-contract.md).
pub fn sd_boot_vars(esp: &Path) -> BTreeMap<String, String> {
    let entries: Vec<bls::Entry> = sd_entries(esp).into_iter().map(|(_, e)| e).collect();
    let booted = bls::booted(&entries).expect("a loadable entry");
    let (trial, count, limit) = match booted.name.counter {
        Some(c) => ("1", c.done, c.left + c.done),
        None => ("0", 0, DEFAULT_BOOTLIMIT),
    };
    [
        ("rustupdate_slot", booted.name.slot.as_str().to_string()),
        ("upgrade_available", trial.to_string()),
        ("bootcount", count.to_string()),
        ("bootlimit", limit.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One boot by systemd-boot: the entry its order puts first; a counted one is renamed first
/// (`+3` -> `+2-1`). Returns the slot.
pub fn sd_boot(esp: &Path) -> char {
    let entries = sd_entries(esp);
    let plain: Vec<bls::Entry> = entries.iter().map(|(_, e)| e.clone()).collect();
    let booted = bls::booted(&plain)
        .expect("systemd-boot finds a loadable entry")
        .clone();
    if let Some(c) = booted.name.counter.filter(|c| c.left > 0) {
        let (path, _) = entries.iter().find(|(_, e)| *e == booted).unwrap();
        let next = bls::EntryName {
            counter: Some(bls::Counter {
                left: c.left - 1,
                done: c.done + 1,
            }),
            ..booted.name
        };
        std::fs::rename(path, path.with_file_name(next.file_name())).unwrap();
    }
    booted.name.slot.as_str().chars().next().unwrap()
}
