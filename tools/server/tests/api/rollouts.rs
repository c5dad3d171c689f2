//! Phased rollouts through the API: phases open only on success after commit, failures pause,
//! late joiners, resume, per-phase counts and events.

use crate::harness::{Backend, Device, Server};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    phases_advance_only_on_committed_success,
    failures_pause_with_the_reason_and_resume_continues,
    late_joiners_get_the_current_phase,
);

/// Devices of phase `phase` (from 0) as the rollout assigned them: those offered an action now.
fn offered<'a>(devices: &'a [Device<'a>]) -> Vec<(&'a Device<'a>, i64)> {
    devices
        .iter()
        .filter_map(|d| d.offered_action().map(|a| (d, a)))
        .collect()
}

fn phase_events(server: &Server, rollout: i64) -> Vec<i64> {
    server.rollout_status(rollout)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "phase-started")
        .map(|e| e["phase"].as_i64().unwrap())
        .collect()
}

fn phases_advance_only_on_committed_success(backend: Backend) {
    let server = Server::start(backend);
    let devices: Vec<Device> = (0..4).map(|i| server.device(&format!("dev-{i}"))).collect();
    let artifact = server.release("2.0");
    // 4 devices at 25,100: phase 1 has one device, phase 2 the other three.
    let rollout = server.rollout(artifact, "25,100", "1");
    let first = offered(&devices);
    assert_eq!(first.len(), 1, "phase 1 holds 1 of 4 devices");
    let (device, action) = first[0];
    let d = device.get(&device.path(&format!("/deploymentBase/{action}")));
    assert_eq!(d.status, 200);
    // Installed, rebooting: not a success yet, the next phase stays closed.
    assert_eq!(
        device.feedback(action, "downloaded", "none", &[]).status,
        200
    );
    assert_eq!(
        device
            .feedback(action, "proceeding", "none", &["installed, rebooting"])
            .status,
        200
    );
    assert_eq!(offered(&devices).len(), 1, "no one else before the commit");
    assert_eq!(server.rollout_status(rollout)["current_phase"], 0);
    // Committed after the reboot: phase 2 opens to the other three.
    assert_eq!(
        device
            .feedback(action, "closed", "success", &["committed"])
            .status,
        200
    );
    let status = server.rollout_status(rollout);
    assert_eq!(status["current_phase"], 1, "{status}");
    assert_eq!(status["phases"][0]["succeeded"], 1);
    let second = offered(&devices);
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|(d, _)| d.id != device.id));
    for (d, a) in &second {
        d.complete(*a, "success", &["committed"]);
    }
    let status = server.rollout_status(rollout);
    assert_eq!(status["state"], "finished", "{status}");
    assert_eq!(status["phases"][1]["succeeded"], 3);
    assert_eq!(
        phase_events(&server, rollout),
        vec![0, 1],
        "each phase started once"
    );
    // A finished rollout offers nothing more.
    assert!(offered(&devices).is_empty());
}

fn failures_pause_with_the_reason_and_resume_continues(backend: Backend) {
    let server = Server::start(backend);
    let devices: Vec<Device> = (0..4).map(|i| server.device(&format!("dev-{i}"))).collect();
    let artifact = server.release("3.0");
    let rollout = server.rollout(artifact, "50,100", "1");
    let first = offered(&devices);
    assert_eq!(first.len(), 2);
    let (bad, bad_action) = first[0];
    bad.complete(
        bad_action,
        "failure",
        &[
            "health check 20-no-failed-units failed",
            "rolled back to slot a",
        ],
    );
    let status = server.rollout_status(rollout);
    assert_eq!(status["state"], "paused", "{status}");
    let reason = status["pause_reason"].as_str().unwrap();
    assert!(reason.contains("1 of 2 devices failed"), "{reason}");
    let detail = server.admin_get(&format!("/api/v1/devices/{}", bad.id));
    assert_eq!(detail.body["actions"][0]["state"], "failed");
    assert!(
        detail.body["actions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("20-no-failed-units")
    );
    // The device already working goes on; nobody new is offered anything while paused.
    let (good, good_action) = first[1];
    good.complete(good_action, "success", &[]);
    let rest: Vec<&Device> = devices
        .iter()
        .filter(|d| d.id != bad.id && d.id != good.id)
        .collect();
    assert!(rest.iter().all(|d| d.offered_action().is_none()));
    assert_eq!(server.rollout_status(rollout)["current_phase"], 0);
    // Pausing a paused rollout is a conflict; resuming accepts the failure and opens phase 2.
    let again = server.admin_post(&format!("/api/v1/rollouts/{rollout}/pause"), &json!({}));
    assert_eq!(again.status, 409);
    let resumed = server.admin_post(&format!("/api/v1/rollouts/{rollout}/resume"), &json!({}));
    assert_eq!(resumed.status, 200, "{resumed:?}");
    assert_eq!(resumed.body["current_phase"], 1, "{resumed:?}");
    assert!(rest.iter().all(|d| d.offered_action().is_some()));
}

fn late_joiners_get_the_current_phase(backend: Backend) {
    let server = Server::start(backend);
    let early = server.device("early");
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let late = server.gateway_device("late");
    // Unknown type: not targeted.
    assert_eq!(late.offered_action(), None);
    assert_eq!(
        late.config(&json!({"device_type": "test-board"})).status,
        200
    );
    let action = late
        .offered_action()
        .expect("a device that starts matching joins");
    late.complete(action, "success", &[]);
    let status = server.rollout_status(rollout);
    assert_eq!(status["phases"][0]["members"], 2);
    assert_eq!(
        status["state"], "running",
        "early has not finished: {status}"
    );
    let a = early.offered_action().unwrap();
    early.complete(a, "success", &[]);
    assert_eq!(server.rollout_status(rollout)["state"], "finished");
    // A device of another type never joins.
    let other = server.gateway_device("other");
    assert_eq!(
        other.config(&json!({"device_type": "other-board"})).status,
        200
    );
    assert_eq!(other.offered_action(), None);
}
