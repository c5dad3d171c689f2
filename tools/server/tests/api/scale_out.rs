//! Several server processes over one PostgreSQL database: devices polling both at once get one
//! action each, and each phase starts once; a change made through one server is obeyed by the
//! other at once, although it reads the running rollouts once a second.

use crate::harness::{Backend, Device, Server};
use serde_json::json;
use std::collections::BTreeSet;

const DEVICES: usize = 12;

#[test]
fn two_servers_on_one_postgres_give_each_action_once_and_advance_each_phase_once() {
    let a = Server::start(Backend::Postgres);
    let b = Server::beside(&a);
    let artifact = a.release("2.0");
    let devices_a: Vec<Device> = (0..DEVICES)
        .map(|i| a.device(&format!("dev-{i}")))
        .collect();
    // The same devices, talking to the other process.
    let devices_b: Vec<Device> = devices_a
        .iter()
        .map(|d| Device {
            server: &b,
            id: d.id.clone(),
            auth: d.auth.clone(),
        })
        .collect();
    let rollout = a.rollout(artifact, "25,50,100", "1");
    let mut done = BTreeSet::new();
    // Bounded: every round completes at least the phase that is open.
    for _round in 0..4 {
        let offers: Vec<(usize, i64, i64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..DEVICES)
                .map(|i| {
                    let (da, db) = (&devices_a[i], &devices_b[i]);
                    scope.spawn(move || (i, da.offered_action(), db.offered_action()))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| {
                    let (i, x, y) = h.join().unwrap();
                    match (x, y) {
                        (Some(x), Some(y)) => Some((i, x, y)),
                        (None, None) => None,
                        (x, y) => panic!("device {i}: one server offered {x:?}, the other {y:?}"),
                    }
                })
                .collect()
        });
        for (i, x, y) in &offers {
            assert_eq!(x, y, "device {i} got two different actions");
        }
        // Complete them, alternating servers, concurrently.
        std::thread::scope(|scope| {
            for (i, action, _) in &offers {
                let device = if i % 2 == 0 {
                    &devices_a[*i]
                } else {
                    &devices_b[*i]
                };
                scope.spawn(move || device.complete(*action, "success", &[]));
            }
        });
        done.extend(offers.iter().map(|(i, _, _)| *i));
        if a.rollout_status(rollout)["state"] == "finished" {
            break;
        }
    }
    assert_eq!(done.len(), DEVICES, "every device was served once");
    let status = b.rollout_status(rollout);
    assert_eq!(status["state"], "finished", "{status}");
    let started: Vec<i64> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "phase-started")
        .map(|e| e["phase"].as_i64().unwrap())
        .collect();
    assert_eq!(started, vec![0, 1, 2], "each phase started exactly once");
    let finished = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "finished")
        .count();
    assert_eq!(finished, 1);
    // One action per device in the database, whichever server created it.
    for d in &devices_a {
        let shown = a.admin_get(&format!("/api/v1/devices/{}", d.id));
        assert_eq!(
            shown.body["actions"].as_array().unwrap().len(),
            1,
            "{}",
            d.id
        );
    }
}

/// The same device, talking to another server process.
fn through<'a>(server: &'a Server, device: &Device) -> Device<'a> {
    Device {
        server,
        id: device.id.clone(),
        auth: device.auth.clone(),
    }
}

#[test]
fn a_phase_opened_through_one_server_is_offered_by_the_other_at_once() {
    let a = Server::start(Backend::Postgres);
    let b = Server::beside(&a);
    let artifact = a.release("2.0");
    let devices: Vec<Device> = (0..4).map(|i| a.device(&format!("dev-{i}"))).collect();
    let rollout = a.rollout(artifact, "50,100", "1");
    // Through b: two devices are in phase 1 and offered, two wait; b now holds the rollout
    // (running, phase 0) in its cache.
    let offers: Vec<Option<i64>> = devices
        .iter()
        .map(|d| through(&b, d).offered_action())
        .collect();
    let first: Vec<usize> = (0..4).filter(|i| offers[*i].is_some()).collect();
    let waiting: Vec<usize> = (0..4).filter(|i| offers[*i].is_none()).collect();
    assert_eq!((first.len(), waiting.len()), (2, 2), "{offers:?}");
    // Both succeed through a: phase 2 opens there; b, asked at once, offers it too.
    for i in &first {
        devices[*i].complete(offers[*i].unwrap(), "success", &[]);
    }
    assert_eq!(a.rollout_status(rollout)["current_phase"], 1);
    for i in &waiting {
        assert!(
            through(&b, &devices[*i]).offered_action().is_some(),
            "b offers the phase a opened"
        );
    }
}

#[test]
fn a_rollout_paused_through_one_server_gives_nothing_new_through_the_other() {
    let a = Server::start(Backend::Postgres);
    let b = Server::beside(&a);
    let artifact = a.release("2.0");
    let devices: Vec<Device> = (0..2).map(|i| a.device(&format!("dev-{i}"))).collect();
    let rollout = a.rollout(artifact, "100", "1");
    // b reads the running rollout into its cache while serving the first device.
    assert!(through(&b, &devices[0]).offered_action().is_some());
    let paused = a.admin_post(&format!("/api/v1/rollouts/{rollout}/pause"), &json!({}));
    assert_eq!(paused.status, 200, "{paused:?}");
    // b's cache still says running: the action is refused where it is created.
    assert!(
        through(&b, &devices[1]).offered_action().is_none(),
        "b gives nothing from a paused rollout"
    );
    let resumed = a.admin_post(&format!("/api/v1/rollouts/{rollout}/resume"), &json!({}));
    assert_eq!(resumed.status, 200, "{resumed:?}");
    assert!(through(&b, &devices[1]).offered_action().is_some());
}

#[test]
fn two_servers_on_one_postgres_build_each_patch_once() {
    let a = Server::start(Backend::Postgres);
    // Four releases devices run, and a fifth: each upload queues a patch from every earlier
    // release devices run (ten in all).
    let images: Vec<Vec<u8>> = (0..5u64)
        .map(|n| rustupdate_testkit::fs_image(1 << 20, 40 + n))
        .collect();
    let releases: Vec<Vec<u8>> = images
        .iter()
        .enumerate()
        .map(|(n, image)| {
            let spec = rustupdate_testkit::ArtifactSpec {
                version: &format!("{n}.0"),
                compatible: &[crate::harness::BOARD],
                ..Default::default()
            };
            rustupdate_testkit::artifact(&spec, image, &[&crate::harness::release_key()])
        })
        .collect();
    for (n, release) in releases[..4].iter().enumerate() {
        assert!(a.upload(release, "").status < 300);
        let device = a.device(&format!("on-{n}"));
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&images[n]));
        let r = device.config(&json!({"accepts_delta": "known-base", "running_image_sha256": sha}));
        assert_eq!(r.status, 200);
    }
    // a starts building as the target arrives; b, started meanwhile, takes jobs too.
    let up = a.upload(&releases[4], "");
    assert_eq!(up.status, 201, "{up:?}");
    let target = up.body["id"].as_i64().unwrap();
    let b = Server::beside(&a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let patches = loop {
        let of_target = b.admin_get(&format!("/api/v1/artifacts/{target}/deltas"));
        let rows = b
            .admin_get("/api/v1/deltas")
            .body
            .as_array()
            .unwrap()
            .clone();
        if of_target.body.as_array().unwrap().len() == 4
            && rows.len() == 10
            && rows.iter().all(|p| p["state"] == "ready")
        {
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // The two processes share the data directory, and with it the directory of their logs.
    let log = a.log();
    let mut built: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=delta-ready"))
        .filter_map(|l| l.split(" id=").nth(1)?.split(' ').next())
        .collect();
    built.sort_unstable();
    let ids: Vec<String> = patches.iter().map(|p| p["id"].to_string()).collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(built, expected, "each patch built once:\n{log}");
    let processes = log.lines().filter(|l| l.contains("event=started")).count();
    assert_eq!(processes, 2);
}
