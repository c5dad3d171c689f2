//! Every class of bad input gets a clear 4xx and changes nothing.

use crate::harness::{Backend, Server, answer};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    malformed_oversized_and_foreign_feedback_change_nothing,
    replayed_and_out_of_order_feedback_is_a_conflict,
    unsigned_untrusted_tampered_uploads_are_refused,
    management_requests_are_checked,
);

fn malformed_oversized_and_foreign_feedback_change_nothing(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.device("dev-1");
    let other = server.device("dev-2");
    let artifact = server.release("2.0");
    server.rollout(artifact, "100", "100%");
    let action = dev.offered_action().unwrap();
    let url = dev.path(&format!("/deploymentBase/{action}/feedback"));
    for (body, expect) in [
        ("{not json", "malformed JSON"),
        (
            r#"{"status":{"execution":"exploded","result":{"finished":"none"}}}"#,
            "malformed JSON",
        ),
        (
            r#"{"status":{"execution":"closed","result":{"finished":"none"}}}"#,
            "",
        ),
    ] {
        let a = dev.send("POST", &url, body);
        assert_eq!(a.status, 400, "{body}: {a:?}");
        assert!(a.body["error"].as_str().unwrap().contains(expect), "{a:?}");
    }
    let many: Vec<String> = (0..rustupdate_ddi::MAX_DETAILS + 1)
        .map(|i| i.to_string())
        .collect();
    let body = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}, "details": many}});
    let a = dev.send("POST", &url, &body.to_string());
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains(&rustupdate_ddi::MAX_DETAILS.to_string())
    );
    let huge = "x".repeat(rustupdate_ddi::MAX_BODY_LEN + 1);
    let a = dev.send("POST", &url, &huge);
    assert_eq!(a.status, 413, "{a:?}");
    // Another device's action is invisible: exactly like a missing one.
    let foreign = other.feedback(action, "closed", "failure", &["evil"]);
    let missing = other.feedback(action + 1000, "closed", "failure", &["evil"]);
    assert_eq!(foreign.status, 404);
    assert_eq!(
        foreign.text.replace(&action.to_string(), "N"),
        missing.text.replace(&(action + 1000).to_string(), "N")
    );
    assert_eq!(
        other
            .get(&other.path(&format!("/deploymentBase/{action}")))
            .status,
        404
    );
    let a = dev.feedback(0, "proceeding", "none", &[]);
    assert_eq!(a.status, 400, "action id 0: {a:?}");
    // Nothing changed: the action is still scheduled, with no feedback.
    assert_eq!(server.action_state("dev-1", action), "scheduled");
    let shown = server.admin_get("/api/v1/devices/dev-1");
    assert!(
        shown.body["actions"][0]["feedback"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Bad configData.
    let attrs: serde_json::Map<String, serde_json::Value> = (0..rustupdate_ddi::MAX_ATTRIBUTES + 1)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    assert_eq!(dev.config(&serde_json::Value::Object(attrs)).status, 400);
    assert_eq!(
        dev.config(&json!({"k": "v".repeat(rustupdate_ddi::MAX_ATTRIBUTE_VALUE_LEN + 1)}))
            .status,
        400
    );
    assert!(
        server.admin_get("/api/v1/devices/dev-1").body["device"]["attributes"]
            .as_object()
            .unwrap()
            .is_empty()
    );
}

fn replayed_and_out_of_order_feedback_is_a_conflict(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.device("dev-1");
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let action = dev.offered_action().unwrap();
    dev.complete(action, "success", &["committed"]);
    for (execution, finished) in [
        ("closed", "success"),
        ("closed", "failure"),
        ("proceeding", "none"),
    ] {
        let a = dev.feedback(action, execution, finished, &["late"]);
        assert_eq!(a.status, 409, "{execution}/{finished}: {a:?}");
        assert!(
            a.body["error"].as_str().unwrap().contains("succeeded"),
            "{a:?}"
        );
    }
    assert_eq!(server.action_state("dev-1", action), "succeeded");
    let status = server.rollout_status(rollout);
    assert_eq!(status["phases"][0]["failed"], 0);
    assert_eq!(status["state"], "finished");
}

fn unsigned_untrusted_tampered_uploads_are_refused(backend: Backend) {
    let server = Server::start(backend);
    let spec = rustupdate_testkit::ArtifactSpec::default();
    let image = rustupdate_testkit::pseudo_random(200_000, 1);
    let unsigned = rustupdate_testkit::artifact(&spec, &image, &[]);
    let untrusted = rustupdate_testkit::artifact(&spec, &image, &[&rustupdate_testkit::key(99)]);
    let mut tampered =
        rustupdate_testkit::artifact(&spec, &image, &[&crate::harness::release_key()]);
    let at = tampered.len() - 100;
    tampered[at] ^= 0x20;
    for (what, bytes) in [
        ("unsigned", unsigned),
        ("untrusted", untrusted),
        ("tampered", tampered),
        ("garbage", b"not an artifact".to_vec()),
    ] {
        let a = server.upload(&bytes, "");
        assert_eq!(a.status, 400, "{what}: {a:?}");
        assert!(
            a.body["error"]
                .as_str()
                .unwrap()
                .starts_with("artifact rejected"),
            "{what}: {a:?}"
        );
    }
    assert!(
        server
            .admin_get("/api/v1/artifacts")
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    let files = std::fs::read_dir(server.dir.join("artifacts"))
        .unwrap()
        .count();
    assert_eq!(files, 0, "a rejected upload leaves no file");
    // Foreign artifacts need their description.
    let a = server.upload(b"swu", "?foreign=true&name=x&version=1");
    assert_eq!(a.status, 400, "{a:?}");
    let a = server.upload(
        b"swu",
        "?foreign=true&name=x&version=1&device_types=b&filename=../x",
    );
    assert_eq!(a.status, 400, "{a:?}");
    let a = server.upload(
        b"swu",
        "?foreign=true&name=x&version=1&device_types=b&filename=x.swu",
    );
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["kind"], "foreign");
    // The same upload twice is one artifact.
    let id = server.release("2.0");
    assert_eq!(server.release("2.0"), id);
}

fn management_requests_are_checked(backend: Backend) {
    let server = Server::start(backend);
    for path in ["/api/v1/devices", "/api/v1/artifacts", "/api/v1/rollouts"] {
        let a = answer(server.agent.get(&server.url(path)).call());
        assert_eq!(a.status, 401, "{path}");
        let a = answer(
            server
                .agent
                .get(&server.url(path))
                .header("Authorization", "Bearer wrong")
                .call(),
        );
        assert_eq!(a.status, 401, "{path}");
    }
    let artifact = server.release("2.0");
    for (body, expect) in [
        (
            json!({"name": "r", "artifact_id": artifact, "device_type": "other-board", "phases": "100", "success_threshold": 100, "error_threshold": "1"}),
            "not compatible",
        ),
        (
            json!({"name": "r", "artifact_id": artifact, "device_type": "test-board", "phases": "50,10", "success_threshold": 100, "error_threshold": "1"}),
            "phase",
        ),
        (
            json!({"name": "r", "artifact_id": artifact, "device_type": "test-board", "phases": "100", "success_threshold": 100, "error_threshold": "0"}),
            "threshold",
        ),
        (
            json!({"name": "r", "artifact_id": artifact, "device_type": "test-board", "phases": "100", "success_threshold": 100, "error_threshold": "1", "surprise": 1}),
            "unknown field",
        ),
    ] {
        let a = server.admin_post("/api/v1/rollouts", &body);
        assert_eq!(a.status, 400, "{body}: {a:?}");
        assert!(
            a.body["error"].as_str().unwrap().contains(expect),
            "{expect}: {a:?}"
        );
    }
    let a = server.admin_post("/api/v1/rollouts", &json!({"name": "r", "artifact_id": 999, "device_type": "test-board", "phases": "100", "success_threshold": 100, "error_threshold": "1"}));
    assert_eq!(a.status, 404, "{a:?}");
    assert!(
        server
            .admin_get("/api/v1/rollouts")
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    let a = server.admin_post("/api/v1/devices", &json!({"controller_id": "bad/id"}));
    assert_eq!(a.status, 400, "{a:?}");
    server.device("dev-1");
    let a = server.admin_post("/api/v1/devices", &json!({"controller_id": "dev-1"}));
    assert_eq!(a.status, 409, "{a:?}");
    let a = server.admin_post("/api/v1/rollouts/1/explode", &json!({}));
    assert_eq!(a.status, 404, "{a:?}");
}
