//! Issue 20, "hostile input", from devices: bounded feedback, device reports that cannot change
//! what the operator set, ids without path specials, links from `public-url` or allowed hosts
//! only, poll intervals under a day. Each test failed before its fix.

use crate::harness::{BOARD, Backend, Server, TENANT, answer, release_key};
use crate::on_both_backends;
use crate::raw_http::raw;
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    feedback_per_action_is_bounded,
    device_reported_type_never_changes_the_registered_one,
    ids_of_256_characters_with_sub_delims_work,
);

fn feedback_per_action_is_bounded(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.device("dev-1");
    let artifact = server.release("2.0");
    server.rollout(artifact, "100", "1");
    let action = dev.offered_action().unwrap();
    // 300 posts of about 63 KB each, as in the issue.
    let line = "x".repeat(2000);
    let url = dev.path(&format!("/deploymentBase/{action}/feedback"));
    for i in 0..300 {
        let mut details = vec![format!("post {i}")];
        details.extend(std::iter::repeat_n(line.clone(), 31));
        let body = json!({"status": {"execution": "proceeding", "result": {"finished": "none"}, "details": details}});
        let body = body.to_string();
        assert!(body.len() > 62_000 && body.len() < 65_536, "{}", body.len());
        let a = dev.send("POST", &url, &body);
        assert_eq!(a.status, 200, "post {i}: {a:?}");
    }
    let a = dev.feedback(action, "closed", "success", &["committed slot b"]);
    assert_eq!(a.status, 200, "the final feedback is still accepted: {a:?}");
    let shown = server.admin_get("/api/v1/devices/dev-1");
    assert!(
        shown.text.len() < 100 * 1024,
        "the device API answers {} bytes",
        shown.text.len()
    );
    let action_view = &shown.body["actions"][0];
    assert_eq!(action_view["state"], "succeeded");
    let feedback = action_view["feedback"].as_array().unwrap();
    assert!(feedback.len() <= 100, "{} entries", feedback.len());
    // The first entry (how it began) and the latest (how it ended) are kept.
    assert_eq!(feedback[0]["details"][0], "post 0");
    assert_eq!(
        feedback.last().unwrap()["details"][0],
        "committed slot b",
        "{feedback:?}"
    );
    let second_to_last = &feedback[feedback.len() - 2]["details"];
    assert_eq!(second_to_last[0], "post 299");
    // An entry's details are cut, and say so.
    let last_line = second_to_last.as_array().unwrap().last().unwrap();
    assert!(
        last_line.as_str().unwrap().contains("not kept"),
        "{last_line}"
    );
    let dropped = action_view["feedback_dropped"].as_i64().unwrap();
    assert_eq!(dropped as usize + feedback.len(), 301, "{dropped}");
    // The dashboard says so too, and stays small.
    let page = server.dashboard_get("/ui/devices/dev-1", &server.dashboard_session());
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.text.contains("not kept"), "{}", page.text);
    assert!(page.text.len() < 100 * 1024, "{}", page.text.len());
}

/// A signed artifact for another product.
fn other_product_release(server: &Server) -> i64 {
    let spec = rustupdate_testkit::ArtifactSpec {
        name: "other-image",
        version: "9.0",
        compatible: &["other-board"],
        ..Default::default()
    };
    let image = rustupdate_testkit::pseudo_random(100_000, 9);
    let bytes = rustupdate_testkit::artifact(&spec, &image, &[&release_key()]);
    let a = server.upload(&bytes, "");
    assert_eq!(a.status, 201, "{a:?}");
    a.body["id"].as_i64().unwrap()
}

fn device_reported_type_never_changes_the_registered_one(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.device("dev-1");
    let other = other_product_release(&server);
    let a = server.admin_post(
        "/api/v1/rollouts",
        &json!({"name": "other", "artifact_id": other, "device_type": "other-board",
                "phases": "100", "success_threshold": 100, "error_threshold": "1", "start": true}),
    );
    assert_eq!(a.status, 201, "{a:?}");
    // The device claims the other product, and tags, in its inventory.
    let a = dev
        .config(&json!({"device_type": "other-board", "tags": "beta", "running_version": "1.0"}));
    assert_eq!(a.status, 200, "{a:?}");
    let shown = server.admin_get("/api/v1/devices/dev-1");
    let device = &shown.body["device"];
    assert_eq!(device["device_type"], BOARD, "{shown:?}");
    assert_eq!(device["reported_device_type"], "other-board", "{shown:?}");
    assert!(device["tags"].as_array().unwrap().is_empty(), "{shown:?}");
    // Not obeyed: the other product's rollout is not offered.
    assert_eq!(dev.offered_action(), None);
    assert!(server.log().contains("event=device-type-mismatch"));
    // A gateway device's first report fills in the type nobody set; later reports change nothing.
    let gw = server.gateway_device("gw-1");
    assert_eq!(gw.poll().status, 200);
    assert_eq!(gw.config(&json!({"device_type": BOARD})).status, 200);
    assert_eq!(
        gw.config(&json!({"device_type": "other-board"})).status,
        200
    );
    let shown = server.admin_get("/api/v1/devices/gw-1");
    assert_eq!(shown.body["device"]["device_type"], BOARD, "{shown:?}");
    assert_eq!(shown.body["device"]["reported_device_type"], "other-board");
    assert_eq!(gw.offered_action(), None);
    // A device whose report matches shows no mismatch.
    let fine = server.device("dev-2");
    assert_eq!(fine.config(&json!({"device_type": BOARD})).status, 200);
    let shown = server.admin_get("/api/v1/devices/dev-2");
    assert!(shown.body["device"]["reported_device_type"].is_null());
    // The dashboard shows the mismatch.
    let page = server.dashboard_get("/ui/devices/dev-1", &server.dashboard_session());
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.text.contains("the device reports"), "{}", page.text);
}

#[test]
fn ids_with_path_specials_are_refused() {
    let server = Server::start(Backend::Sqlite);
    for id in [
        ".",
        "..",
        "a/b",
        "a b",
        "tab\there",
        "nul\u{0}",
        "a?b",
        "a#b",
        "100%",
        &"x".repeat(257),
    ] {
        let a = server.admin_post("/api/v1/devices", &json!({"controller_id": id}));
        assert_eq!(a.status, 400, "{id:?}: {a:?}");
        assert!(
            a.body["error"].as_str().unwrap().contains("controller id"),
            "{a:?}"
        );
    }
    // Through the device API, with the gateway token: refused, nothing registered.
    for path in ["%2E", "%2e%2E", "..%2Fx"] {
        let a = answer(
            server
                .agent
                .get(&server.url(&format!("/{TENANT}/controller/v1/{path}")))
                .header("Authorization", &format!("GatewayToken {}", server.gateway))
                .call(),
        );
        assert_eq!(a.status, 400, "{path}: {a:?}");
        assert!(a.body["error"].as_str().unwrap().contains("controller id"));
    }
    let raw_dots = format!(
        "GET /{TENANT}/controller/v1/.. HTTP/1.1\r\nHost: {}\r\nAuthorization: GatewayToken {}\r\nConnection: close\r\n\r\n",
        server.addr(),
        server.gateway
    );
    let a = raw(&server.addr(), raw_dots.as_bytes(), Duration::from_secs(5)).unwrap();
    assert_eq!(a.status, 400, "{a:?}");
    let devices = server.admin_get("/api/v1/devices");
    assert!(devices.body.as_array().unwrap().is_empty(), "{devices:?}");
}

/// hawkBit's length (256) and the characters a path carries unescaped: registered, polled, and
/// the links handed back carry the id as it is.
fn ids_of_256_characters_with_sub_delims_work(backend: Backend) {
    let server = Server::start(backend);
    let prefix = "serial+42@line-3;o'brien(1),x=y*!$&~:";
    let id = format!("{prefix}{}", "x".repeat(256 - prefix.len()));
    let dev = server.device(&id);
    let poll = dev.poll();
    assert_eq!(poll.status, 200, "{poll:?}");
    let href = poll.body["_links"]["configData"]["href"].as_str().unwrap();
    assert!(
        href.ends_with(&format!("/controller/v1/{id}/configData")),
        "{href}"
    );
    assert_eq!(dev.config(&json!({"running_version": "1.0"})).status, 200);
    let shown = server.admin_get(&format!("/api/v1/devices/{id}"));
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.body["device"]["controller_id"], id.as_str());
}

fn poll_links(server: &Server, host: &str) -> Value {
    let dev_auth = format!("GatewayToken {}", server.gateway);
    let request = format!(
        "GET /{TENANT}/controller/v1/gw-1 HTTP/1.1\r\nHost: {host}\r\nAuthorization: {dev_auth}\r\nConnection: close\r\n\r\n"
    );
    let a = raw(&server.addr(), request.as_bytes(), Duration::from_secs(10)).unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_str::<Value>(&a.body).unwrap()["_links"].clone()
}

#[test]
fn links_come_from_public_url_or_allowed_hosts_only() {
    let server = Server::start_with(Backend::Sqlite, &["--allowed-host", "fleet.test:8080"]);
    let own = format!(
        "http://{}/{TENANT}/controller/v1/gw-1/configData",
        server.addr()
    );
    // Any other Host: the listen address.
    let links = poll_links(&server, "evil.example");
    assert_eq!(links["configData"]["href"], own.as_str(), "{links}");
    // An allowed one is used.
    let links = poll_links(&server, "fleet.test:8080");
    assert_eq!(
        links["configData"]["href"],
        format!("http://fleet.test:8080/{TENANT}/controller/v1/gw-1/configData"),
    );
    // public-url wins over any Host.
    let server = Server::start_with(
        Backend::Sqlite,
        &["--public-url", "https://updates.example.com/fleet/"],
    );
    for host in ["evil.example", server.addr().as_str()] {
        let links = poll_links(&server, host);
        assert_eq!(
            links["configData"]["href"],
            format!("https://updates.example.com/fleet/{TENANT}/controller/v1/gw-1/configData"),
        );
    }
}

#[test]
fn artifact_file_names_are_encoded_in_links() {
    let server = Server::start(Backend::Sqlite);
    let dev = server.device("dev-1");
    let spec = rustupdate_testkit::ArtifactSpec {
        name: "demo image#1?",
        version: "2.0/../x",
        compatible: &[BOARD],
        ..Default::default()
    };
    let image = rustupdate_testkit::pseudo_random(100_000, 3);
    let bytes = rustupdate_testkit::artifact(&spec, &image, &[&release_key()]);
    let a = server.upload(&bytes, "");
    assert_eq!(a.status, 201, "the format allows printable names: {a:?}");
    server.rollout(a.body["id"].as_i64().unwrap(), "100", "1");
    let action = dev.offered_action().unwrap();
    let d = dev.get(&dev.path(&format!("/deploymentBase/{action}")));
    let file = &d.body["deployment"]["chunks"][0]["artifacts"][0];
    assert_eq!(file["filename"], "demo image#1?-2.0/../x.rua");
    let href = file["_links"]["download-http"]["href"].as_str().unwrap();
    assert!(
        href.ends_with("/demo%20image%231%3F-2.0%2F..%2Fx.rua"),
        "{href}"
    );
    let mut got = server
        .agent
        .get(href)
        .header("Authorization", &dev.auth)
        .call()
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let n = got.body_mut().read_to_vec().unwrap().len();
    assert_eq!(n, bytes.len());
}

#[test]
fn poll_interval_is_sent_under_a_day() {
    let server = Server::start_with(Backend::Sqlite, &["--poll-interval", "86399"]);
    let dev = server.device("dev-1");
    assert_eq!(dev.poll().body["config"]["polling"]["sleep"], "23:59:59");
    // A day or more is refused at start, with the ceiling in the message.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rustupdate-server"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--poll-interval", "86400"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("23:59:59"), "{stderr}");
}
