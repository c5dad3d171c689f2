//! The hawkBit DDI device API: authentication, poll links, configData, deployment, download with
//! Range, installedBase, cancel.

use crate::harness::{Backend, Server, TENANT, answer};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    anything_but_the_right_token_is_the_same_401,
    gateway_token_registers_and_config_data_sets_the_type,
    deployment_download_with_range_and_installed_base,
    cancel_before_and_after_the_device_started,
    stops_cleanly_on_sigterm_and_keeps_its_data,
);

fn stops_cleanly_on_sigterm_and_keeps_its_data(backend: Backend) {
    let mut server = Server::start(backend);
    server.device("dev-1");
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(server.log().contains("event=shutdown"), "{}", server.log());
    // A new process on the same database and data directory has the device and the same tokens.
    let again = Server::beside(&server);
    assert_eq!(again.admin, server.admin);
    let devices = again.admin_get("/api/v1/devices");
    assert_eq!(devices.body[0]["controller_id"], "dev-1", "{devices:?}");
}

fn anything_but_the_right_token_is_the_same_401(backend: Backend) {
    let server = Server::start(backend);
    let dev1 = server.device("dev-1");
    let _dev2 = server.device("dev-2");
    let url = |tenant: &str, id: &str| server.url(&format!("/{tenant}/controller/v1/{id}"));
    let get = |url: String, auth: Option<String>| {
        let mut req = server.agent.get(&url);
        if let Some(auth) = auth {
            req = req.header("Authorization", &auth);
        }
        answer(req.call())
    };
    let unauthorized = [
        get(url(TENANT, "dev-1"), None),
        get(url(TENANT, "dev-1"), Some("TargetToken wrong".into())),
        // dev-1's token for dev-2: a device cannot act as another.
        get(url(TENANT, "dev-2"), Some(dev1.auth.clone())),
        get(url("OTHER", "dev-1"), Some(dev1.auth.clone())),
        get(
            url(TENANT, "dev-1"),
            Some(format!("Bearer {}", server.admin)),
        ),
        get(url(TENANT, "dev-1"), Some("GatewayToken nope".into())),
        get(url(TENANT, "new-device"), Some("GatewayToken nope".into())),
    ];
    for a in &unauthorized {
        assert_eq!(a.status, 401, "{a:?}");
        assert_eq!(a.text, unauthorized[0].text, "every 401 says the same");
    }
    assert_eq!(dev1.poll().status, 200);
    // The device API's token does not open the management API.
    let a = answer(
        server
            .agent
            .get(&server.url("/api/v1/devices"))
            .header("Authorization", &dev1.auth)
            .call(),
    );
    assert_eq!(a.status, 401);
    // A failed gateway attempt registered nothing.
    let devices = server.admin_get("/api/v1/devices");
    assert_eq!(devices.body.as_array().unwrap().len(), 2, "{devices:?}");
}

fn gateway_token_registers_and_config_data_sets_the_type(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.gateway_device("gw-1");
    let poll = dev.poll();
    assert_eq!(poll.status, 200, "{poll:?}");
    assert_eq!(poll.body["config"]["polling"]["sleep"], "00:01:00");
    // No attributes yet: the server asks for them.
    let href = poll.body["_links"]["configData"]["href"].as_str().unwrap();
    assert_eq!(
        href,
        server.url(&format!("/{TENANT}/controller/v1/gw-1/configData"))
    );
    let a = dev.config(
        &json!({"device_type": "test-board", "running_version": "1.0", "running_slot": "a"}),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let poll = dev.poll();
    assert!(poll.body["_links"].get("configData").is_none(), "{poll:?}");
    let shown = server.admin_get("/api/v1/devices/gw-1");
    assert_eq!(shown.body["device"]["device_type"], "test-board");
    assert_eq!(shown.body["device"]["running_version"], "1.0");
    assert!(shown.body["device"]["last_seen"].as_i64().unwrap() > 0);
    // Remove mode drops keys.
    let body = json!({"mode": "remove", "data": {"running_slot": ""}}).to_string();
    assert_eq!(dev.send("PUT", &dev.path("/configData"), &body).status, 200);
    let shown = server.admin_get("/api/v1/devices/gw-1");
    assert!(
        shown.body["device"]["attributes"]
            .get("running_slot")
            .is_none()
    );
}

fn deployment_download_with_range_and_installed_base(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.device("dev-1");
    let artifact = server.release("2.0");
    server.rollout(artifact, "100", "1");
    let action = dev
        .offered_action()
        .expect("the device is offered the deployment");
    let d = dev.get(&dev.path(&format!("/deploymentBase/{action}")));
    assert_eq!(d.status, 200, "{d:?}");
    assert_eq!(d.body["id"], action.to_string());
    let chunk = &d.body["deployment"]["chunks"][0];
    assert_eq!(chunk["version"], "2.0");
    let file = &chunk["artifacts"][0];
    let size = file["size"].as_u64().unwrap();
    assert_eq!(file["hashes"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(file["hashes"]["sha1"].as_str().unwrap().len(), 40);
    assert_eq!(file["hashes"]["md5"].as_str().unwrap().len(), 32);
    let link = file["_links"]["download-http"]["href"].as_str().unwrap();
    // Fetching the deployment moved the action to running.
    assert_eq!(server.action_state("dev-1", action), "running");

    // The whole file, then a range of it (resume), byte-identical.
    let mut whole = server
        .agent
        .get(link)
        .header("Authorization", &dev.auth)
        .call()
        .unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    let whole = whole
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    assert_eq!(whole.len() as u64, size);
    let mut part = server
        .agent
        .get(link)
        .header("Authorization", &dev.auth)
        .header("Range", "bytes=100-199")
        .call()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.body_mut().read_to_vec().unwrap(), whole[100..200]);
    // Another device (not given this artifact) cannot download it.
    let other = server.device("dev-2");
    let other_link = link.replace("/dev-1/", "/dev-2/");
    let a = answer(
        server
            .agent
            .get(&other_link)
            .header("Authorization", &other.auth)
            .call(),
    );
    assert_eq!(a.status, 404, "{a:?}");

    // Progress does not finish the action; installed-but-not-committed is not success.
    assert_eq!(
        dev.feedback(action, "proceeding", "none", &["50%"]).status,
        200
    );
    assert_eq!(dev.feedback(action, "downloaded", "none", &[]).status, 200);
    assert_eq!(server.action_state("dev-1", action), "downloaded");
    assert!(dev.poll().body["_links"].get("installedBase").is_none());
    assert_eq!(
        dev.feedback(action, "closed", "success", &["committed slot b"])
            .status,
        200
    );
    assert_eq!(server.action_state("dev-1", action), "succeeded");
    let poll = dev.poll();
    assert!(
        poll.body["_links"].get("deploymentBase").is_none(),
        "{poll:?}"
    );
    let installed = poll.body["_links"]["installedBase"]["href"]
        .as_str()
        .unwrap();
    let i = dev.get(installed);
    assert_eq!(i.status, 200);
    assert_eq!(i.body["deployment"]["chunks"][0]["version"], "2.0");
    // The history keeps every feedback with its details.
    let shown = server.admin_get("/api/v1/devices/dev-1");
    let feedback = shown.body["actions"][0]["feedback"].as_array().unwrap();
    assert_eq!(feedback.len(), 3);
    assert_eq!(feedback[2]["details"][0], "committed slot b");
}

fn cancel_before_and_after_the_device_started(backend: Backend) {
    let server = Server::start(backend);
    let started = server.device("started");
    let idle = server.device("idle");
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let action = started.offered_action().unwrap();
    // `idle` is offered its action but never fetches it.
    let idle_action = idle.offered_action().unwrap();
    assert_eq!(
        started.feedback(action, "proceeding", "none", &[]).status,
        200
    );
    let a = server.admin_post(&format!("/api/v1/rollouts/{rollout}/cancel"), &json!({}));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["state"], "canceled");
    // The device that started is asked to cancel; the other one's action ended at once.
    assert_eq!(idle.offered_action(), None);
    assert_eq!(server.action_state("idle", idle_action), "canceled");
    let d = idle.get(&idle.path(&format!("/deploymentBase/{idle_action}")));
    assert_eq!(d.status, 409, "{d:?}");
    let poll = started.poll();
    let href = poll.body["_links"]["cancelAction"]["href"]
        .as_str()
        .unwrap();
    let c = started.get(href);
    assert_eq!(c.status, 200);
    assert_eq!(c.body["cancelAction"]["stopId"], action.to_string());
    // A cancel feedback for an action without a cancel pending is refused.
    assert_eq!(
        idle.cancel_feedback(action, "closed", "success").status,
        404
    );
    assert_eq!(
        started.cancel_feedback(action, "closed", "success").status,
        200
    );
    assert_eq!(server.action_state("started", action), "canceled");
    assert!(started.poll().body["_links"].get("cancelAction").is_none());
    // Cancelling twice is a conflict.
    let again = server.admin_post(&format!("/api/v1/rollouts/{rollout}/cancel"), &json!({}));
    assert_eq!(again.status, 409, "{again:?}");
}
