//! The two copies of the bootloader environment (GRUB: `grubenv` + `grubenv-redund` framed by
//! sequence numbers; U-Boot: libubootenv's redundant format) and the committed-slot record on the
//! data partition, checked with the reference tools (`grub-editenv`, `fw_printenv`).

use crate::rig::{Backend, Rig, image};
use std::path::Path;
use std::process::Command;

const REDUNDANT: [Backend; 2] = [Backend::GrubRedundant, Backend::UbootRedundant];

fn copies_bytes(rig: &Rig) -> [Vec<u8>; 2] {
    rig.env_copies()
        .unwrap()
        .map(|path| std::fs::read(path).unwrap())
}

/// Installs v`n` from `image(n)`, boots it and commits it.
fn update(rig: &Rig, n: u8) -> char {
    let artifact = rig.artifact(&format!("v{n}"), &image(n), &[&rig.key], "test-board", None);
    let out = rig.client(&["install", artifact.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let slot = rig.boot();
    let out = rig.client(&["commit"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    slot
}

/// The record's slot, read by the bootloader's reference tool.
fn recorded_slot(rig: &Rig) -> String {
    let record = rig.data_dir().join("committed-slot.env");
    let out = match rig.backend {
        Backend::Grub | Backend::GrubRedundant => Command::new("grub-editenv")
            .arg(&record)
            .arg("list")
            .output()
            .unwrap(),
        Backend::UbootSingle | Backend::UbootRedundant => {
            let config = rig.root().join("record.fw_env.config");
            std::fs::write(&config, format!("{} 0x0 0x1000\n", record.display())).unwrap();
            Command::new("fw_printenv")
                .arg("-c")
                .arg(&config)
                .output()
                .unwrap()
        }
        Backend::SystemdBoot => unreachable!("the entries need no committed-slot record"),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("rustupdate_slot="))
        .unwrap_or_else(|| panic!("no rustupdate_slot in the record: {text}"))
        .to_string()
}

fn destroy(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    std::fs::write(path, vec![0x5a; len]).unwrap();
}

#[test]
fn every_write_goes_to_the_copy_not_in_use() {
    for backend in REDUNDANT {
        let rig = Rig::with(backend);
        let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
        // Five writes: install (arm), the bootloader's count, commit, install, the count.
        let mut before = copies_bytes(&rig);
        let steps: [&dyn Fn(); 5] = [
            &|| assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0),
            &|| assert_eq!(rig.boot(), 'b'),
            &|| assert_eq!(rig.client(&["commit"]).code, 0),
            &|| assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0),
            &|| assert_eq!(rig.boot(), 'a'),
        ];
        let mut written = Vec::new();
        for step in steps {
            step();
            let after = copies_bytes(&rig);
            let changed: Vec<usize> = (0..2).filter(|&i| after[i] != before[i]).collect();
            assert_eq!(
                changed.len(),
                1,
                "{backend:?}: exactly one copy is written per step"
            );
            written.push(changed[0]);
            before = after;
        }
        assert!(
            written.windows(2).all(|w| w[0] != w[1]),
            "{backend:?}: the copies alternate: {written:?}"
        );
        assert_eq!(rig.env()["rustupdate_slot"], "a");
        assert_eq!(rig.env()["bootcount"], "1");
    }
}

#[test]
fn a_destroyed_copy_not_in_use_is_repaired_by_the_next_write() {
    for backend in REDUNDANT {
        let rig = Rig::with(backend);
        let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
        assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
        // The install wrote one copy; destroy the other (the older one).
        let paths = rig.env_copies().unwrap();
        let mut before = copies_bytes(&rig);
        let older = if backend == Backend::GrubRedundant {
            usize::from(rig.grub_copies().0 == 0)
        } else {
            // mkenvimage -r made both copies with flags 1; the install wrote copy 1 (flags 2).
            0
        };
        destroy(&paths[older]);
        before[older] = std::fs::read(&paths[older]).unwrap();
        assert_eq!(
            rig.env()["upgrade_available"],
            "1",
            "{backend:?}: the intact copy decides"
        );
        let out = rig.client(&["status", "--json"]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
        // U-Boot's script writes the destroyed copy (the one not in use) anew; GRUB's save_env
        // cannot write a block that is not one and rewrites the copy in use. By the commit, the
        // client's write, the destroyed copy holds a valid environment again.
        assert_eq!(rig.boot(), 'b');
        assert_eq!(
            rig.env()["bootcount"],
            "1",
            "{backend:?}: the trial boot was counted"
        );
        let before_commit = copies_bytes(&rig);
        assert_eq!(rig.client(&["commit"]).code, 0);
        assert_ne!(
            std::fs::read(&paths[older]).unwrap(),
            before[older],
            "{backend:?}"
        );
        assert_eq!(rig.env()["rustupdate_slot"], "b");
        assert_eq!(rig.env()["upgrade_available"], "0");
        // Both copies are environments again: losing the one the commit did not write changes
        // nothing.
        let after_commit = copies_bytes(&rig);
        let committed = usize::from(after_commit[1] != before_commit[1]);
        destroy(&paths[1 - committed]);
        assert_eq!(rig.env()["rustupdate_slot"], "b", "{backend:?}");
        assert_eq!(rig.env()["upgrade_available"], "0");
    }
}

#[test]
fn with_no_valid_copy_the_last_committed_slot_boots_and_the_environment_is_written_anew() {
    for backend in REDUNDANT {
        let rig = Rig::with(backend);
        assert_eq!(update(&rig, 2), 'b');
        assert_eq!(
            recorded_slot(&rig),
            "b",
            "{backend:?}: the commit recorded slot b"
        );
        for path in rig.env_copies().unwrap() {
            destroy(&path);
        }
        // Both copies gone: the client answers what the boot script does (the recorded slot,
        // no trial) instead of failing, and writes the environment anew.
        let out = rig.client(&["status", "--json"]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
        assert!(out.stderr.contains("no valid copy"), "{}", out.stderr);
        let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(status["bootloader"]["slot"], "b", "{backend:?}: {status}");
        assert_eq!(status["bootloader"]["upgrade-available"], false);
        assert_eq!(
            rig.env()["rustupdate_slot"],
            "b",
            "{backend:?}: valid again"
        );
        assert_eq!(rig.env()["upgrade_available"], "0");
        // The next update works as usual.
        let artifact = rig.artifact("v3", &image(3), &[&rig.key], "test-board", None);
        let out = rig.client(&["install", artifact.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
        assert_eq!(rig.env()["rustupdate_slot"], "a");
        assert_eq!(rig.env()["upgrade_available"], "1");
        assert_eq!(rig.boot(), 'a');
        assert_eq!(rig.client(&["commit"]).code, 0);
        assert_eq!(recorded_slot(&rig), "a");
        assert_eq!(rig.status()["committed"]["version"], "v3");
    }
}

#[test]
fn the_record_follows_commits_and_rollbacks_on_every_backend() {
    // The systemd-boot chain has no environment that can be lost: its entries are the record.
    let with_env = crate::rig::ALL_BACKENDS
        .into_iter()
        .filter(|b| *b != Backend::SystemdBoot);
    for backend in with_env {
        let rig = Rig::with(backend);
        assert!(!rig.data_dir().join("committed-slot.env").exists());
        assert_eq!(update(&rig, 2), 'b');
        assert_eq!(recorded_slot(&rig), "b", "{backend:?}");
        // A trial that fails its health check rolls back: the record stays on b.
        rig.health_script("10-fail", "#!/bin/sh\nexit 1\n");
        let artifact = rig.artifact("v3", &image(3), &[&rig.key], "test-board", None);
        assert_eq!(rig.client(&["install", artifact.to_str().unwrap()]).code, 0);
        assert_eq!(
            recorded_slot(&rig),
            "b",
            "{backend:?}: arming a trial records nothing"
        );
        assert_eq!(rig.boot(), 'a');
        assert_eq!(rig.client(&["commit"]).code, 3);
        assert_eq!(recorded_slot(&rig), "b", "{backend:?}");
    }
}
