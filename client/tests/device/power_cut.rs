//! A power cut at every durable write (simulated by stopping the client dead at each fault point,
//! see `client/src/sys/fault.rs`) during install, commit and rollback. After each cut the device
//! boots again and runs the client until it settles; it must always boot a slot holding a complete,
//! verified image and end with no update pending and a clean bootloader environment.

use crate::rig::{ALL_BACKENDS, Backend, Rig, image};

fn fault_points(rig: &Rig, args: &[&str]) -> Vec<String> {
    let out = rig.client_env(args, &[("RUSTUPDATE_FAULT_TRACE", "1")]);
    assert!(out.code == 0 || out.code == 3, "{args:?}: {}", out.stderr);
    out.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rustupdate-fault-point "))
        .map(|l| l.to_string())
        .collect()
}

/// Boots and runs `rustupdate commit` until nothing is pending; checks every booted slot's content.
fn converge(rig: &Rig, context: &str) -> char {
    for _ in 0..8 {
        let slot = rig.boot();
        let expected = if slot == 'a' { image(1) } else { image(2) };
        assert!(
            rig.slot_holds(slot, &expected),
            "{context}: booted slot {slot} holds an incomplete image"
        );
        let out = rig.client(&["commit"]);
        assert!(
            out.code == 0 || out.code == 3,
            "{context}: commit failed: {}",
            out.stderr
        );
        let status = rig.status();
        if status["pending"].is_null() && !rig.reboot_requested() {
            let env = rig.env();
            assert_eq!(env["upgrade_available"], "0", "{context}");
            assert_eq!(env["rustupdate_slot"], slot.to_string(), "{context}");
            assert_eq!(status["situation"], "idle", "{context}");
            return slot;
        }
    }
    panic!("{context}: the client did not converge in 8 boots");
}

fn install(rig: &Rig) -> String {
    let artifact = rig.artifact("v2", &image(2), &[&rig.key], "test-board", None);
    artifact.to_str().unwrap().to_string()
}

#[test]
fn power_cut_at_every_durable_write_of_install_on_every_backend() {
    for backend in ALL_BACKENDS {
        power_cut_during_install(backend);
    }
}

fn power_cut_during_install(backend: Backend) {
    let probe = Rig::with(backend);
    let artifact = install(&probe);
    let points = fault_points(&probe, &["install", &artifact]);
    assert!(
        points.len() >= 8,
        "expected state, image and env writes, got {points:?}"
    );
    for (i, point) in points.iter().enumerate() {
        let rig = Rig::with(backend);
        let artifact = install(&rig);
        let n = (i + 1).to_string();
        let out = rig.client_env(&["install", &artifact], &[("RUSTUPDATE_FAULT_AFTER", &n)]);
        assert_eq!(out.code, 99, "point {point}: {}", out.stderr);
        let slot = converge(&rig, &format!("{backend:?}: install cut at {point}"));
        let result = rig.status()["last-result"]["result"]
            .as_str()
            .map(str::to_string);
        match slot {
            'b' => assert_eq!(result.as_deref(), Some("committed"), "cut at {point}"),
            _ => assert!(
                result.is_none() || result.as_deref() == Some("failed"),
                "cut at {point}: {result:?}"
            ),
        }
    }
}

#[test]
fn power_cut_at_every_durable_write_of_commit() {
    let probe = Rig::new();
    assert_eq!(probe.client(&["install", &install(&probe)]).code, 0);
    probe.boot();
    let points = fault_points(&probe, &["commit"]);
    assert!(points.len() >= 4, "{points:?}");
    for (i, point) in points.iter().enumerate() {
        let rig = Rig::new();
        assert_eq!(rig.client(&["install", &install(&rig)]).code, 0);
        assert_eq!(rig.boot(), 'b');
        let out = rig.client_env(
            &["commit"],
            &[("RUSTUPDATE_FAULT_AFTER", &(i + 1).to_string())],
        );
        assert_eq!(out.code, 99, "point {point}: {}", out.stderr);
        // A healthy new slot ends committed whatever the cut.
        assert_eq!(converge(&rig, &format!("commit cut at {point}")), 'b');
        assert_eq!(rig.status()["last-result"]["result"], "committed");
    }
}

#[test]
fn power_cut_at_every_durable_write_of_rollback() {
    let failing = "#!/bin/sh\nexit 1\n";
    let probe = Rig::new();
    probe.health_script("10-fail", failing);
    assert_eq!(probe.client(&["install", &install(&probe)]).code, 0);
    probe.boot();
    let points = fault_points(&probe, &["commit"]);
    assert!(points.len() >= 4, "{points:?}");
    for (i, point) in points.iter().enumerate() {
        let rig = Rig::new();
        rig.health_script("10-fail", failing);
        assert_eq!(rig.client(&["install", &install(&rig)]).code, 0);
        assert_eq!(rig.boot(), 'b');
        let out = rig.client_env(
            &["commit"],
            &[("RUSTUPDATE_FAULT_AFTER", &(i + 1).to_string())],
        );
        assert_eq!(out.code, 99, "point {point}: {}", out.stderr);
        // An unhealthy new slot always ends rolled back to the old one.
        assert_eq!(converge(&rig, &format!("rollback cut at {point}")), 'a');
        let result = rig.status()["last-result"]["result"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            result == "rolled-back" || result == "fell-back",
            "cut at {point}: {result}"
        );
    }
}
