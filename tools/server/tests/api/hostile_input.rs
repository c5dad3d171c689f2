//! Issue 20, "hostile input": every request bounded before it is read, timeouts, bounded feedback,
//! device reports that cannot change what the operator set, ids without path specials, links
//! from `public-url` or allowed hosts only, poll intervals under a day. Each test failed before
//! its fix.

use crate::harness::{BOARD, Backend, Server, TENANT, answer, release_key};
use crate::on_both_backends;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

on_both_backends!(
    feedback_per_action_is_bounded,
    device_reported_type_never_changes_the_registered_one,
    dashboard_login_is_a_post_and_opens_a_random_session,
    failed_dashboard_logins_are_limited,
    a_token_in_the_login_url_never_logs_in,
    ids_of_256_characters_with_sub_delims_work,
);

/// What a raw exchange got: the status line's code, the body, and how long it took.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: String,
    elapsed: Duration,
}

/// Writes `bytes` on a new connection (without closing our side) and reads one response, for at
/// most `wait`. `None` if the server closed the connection or stayed silent without answering.
fn raw(addr: &str, bytes: &[u8], wait: Duration) -> Option<Raw> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..head_end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= head_end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&got[head_end + 4..head_end + 4 + length]);
                return Some(Raw {
                    status,
                    body: body.to_string(),
                    elapsed: started.elapsed(),
                });
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the server closes a connection on which `bytes` were sent, within `wait`.
fn closed_within(addr: &str, bytes: &[u8], wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

fn error_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {body:?}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_owned()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const HALF_GIB: u64 = 512 << 20;

#[test]
fn an_unauthenticated_huge_body_is_refused_before_it_is_read() {
    let server = Server::start(Backend::Sqlite);
    let before = rss_kib(server.pid());
    let head = |path: &str, auth: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {HALF_GIB}\r\n\r\n{{\"controller_id\": \"x",
            server.addr()
        )
    };
    // No token: 401 at once, while 512 MiB are still owed.
    let a = raw(
        &server.addr(),
        head("/api/v1/devices", "").as_bytes(),
        Duration::from_secs(5),
    )
    .expect("the server answers before the body arrives");
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(error_text(&a.body), "unauthorized");
    for path in [
        "/api/v1/rollouts",
        "/api/v1/artifacts",
        "/api/v1/devices/x/tags",
    ] {
        let method_head =
            head(path, "").replace("POST /api/v1/devices/x/tags", "PUT /api/v1/devices/x/tags");
        let a = raw(
            &server.addr(),
            method_head.as_bytes(),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("{path}: no answer before the body"));
        assert_eq!(a.status, 401, "{path}: {a:?}");
    }
    // With the token, a declared length above the limit is 413, also at once, as JSON.
    let auth = format!("Authorization: Bearer {}\r\n", server.admin);
    let a = raw(
        &server.addr(),
        head("/api/v1/devices", &auth).as_bytes(),
        Duration::from_secs(5),
    )
    .expect("the server answers before the body arrives");
    assert_eq!(a.status, 413, "{a:?}");
    assert!(error_text(&a.body).contains("65536"), "{a:?}");
    // An upload above max-upload-bytes as well.
    let upload = head("/api/v1/artifacts", &auth).replace(
        &format!("Content-Length: {HALF_GIB}"),
        &format!("Content-Length: {}", 9u64 << 30),
    );
    let a = raw(&server.addr(), upload.as_bytes(), Duration::from_secs(5))
        .expect("the server answers before the upload arrives");
    assert_eq!(a.status, 413, "{a:?}");
    assert!(error_text(&a.body).contains("max-upload-bytes"), "{a:?}");
    // The device API: 413 before anything is read.
    let ddi = head(
        &format!("/{TENANT}/controller/v1/dev-1/deploymentBase/1/feedback"),
        "Authorization: TargetToken nope\r\n",
    );
    let a = raw(&server.addr(), ddi.as_bytes(), Duration::from_secs(5))
        .expect("the server answers before the body arrives");
    assert!(a.status == 401 || a.status == 413, "{a:?}");
    error_text(&a.body);
    // Nothing was buffered: the resident set grew by far less than one body.
    let after = rss_kib(server.pid());
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn half_sent_and_idle_connections_are_closed() {
    let server = Server::start_with(
        Backend::Sqlite,
        &["--header-read-timeout", "2", "--request-timeout", "2"],
    );
    let addr = server.addr();
    let wait = Duration::from_secs(8);
    // Connected, nothing sent.
    let t = closed_within(&addr, b"", wait).expect("a silent connection is closed");
    assert!(t < Duration::from_secs(6), "{t:?}");
    // Half the headers.
    let t = closed_within(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", wait)
        .expect("half-sent headers are dropped");
    assert!(t < Duration::from_secs(6), "{t:?}");
    // Headers complete, half the body: 408 as JSON.
    let dev = server.device("dev-1");
    let body = format!(
        "PUT /{TENANT}/controller/v1/dev-1/configData HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"mode\":",
        dev.auth
    );
    let a = raw(&addr, body.as_bytes(), wait).expect("a half-sent body is answered");
    assert_eq!(a.status, 408, "{a:?}");
    assert!(error_text(&a.body).contains("request-timeout"), "{a:?}");
    assert!(a.elapsed < Duration::from_secs(6), "{a:?}");
    // A keep-alive connection left idle after a complete request.
    let t = closed_within(
        &addr,
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        wait,
    )
    .expect("an idle keep-alive connection is closed");
    assert!(t < Duration::from_secs(6), "{t:?}");
    // A stalled upload: the per-chunk idle timeout.
    let upload = format!(
        "POST /api/v1/artifacts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\nRUA",
        server.admin
    );
    let a = raw(&addr, upload.as_bytes(), wait).expect("a stalled upload is answered");
    assert_eq!(a.status, 408, "{a:?}");
    // The server still serves.
    assert_eq!(dev.poll().status, 200);
}

/// A chunked body above the limit, until its 413 arrives. The server answers as soon as the limit
/// is passed and closes the connection with the rest of the body unread, so the kernel may reset
/// the connection before the client has read the answer (a transport error, not a verdict): up
/// to three tries.
fn chunked_too_large(url: &str, auth: &str) -> crate::harness::Answer {
    // Its own agent: the server closes this connection, which must not go back into the pool
    // that the next requests of the test use (they would find it dead).
    let agent = crate::harness::agent();
    let mut last = None;
    for _ in 0..3 {
        let sent = agent
            .post(url)
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .send(ureq::SendBody::from_reader(&mut std::io::Cursor::new(
                vec![b' '; 200_000],
            )));
        match sent {
            Ok(_) => return answer(sent),
            Err(err) => last = Some(err),
        }
    }
    panic!("the oversized chunked body got no answer in three tries: {last:?}");
}

#[test]
fn errors_are_json_everywhere() {
    let server = Server::start(Backend::Sqlite);
    let dev = server.device("dev-1");
    let checks = [
        // 401 of both APIs.
        answer(server.agent.get(&server.url("/api/v1/devices")).call()),
        answer(server.agent.get(&dev.path("")).call()),
        // 413 of a body sent without a declared length (chunked).
        chunked_too_large(&dev.path("/deploymentBase/1/feedback"), &dev.auth),
        // Unknown route, wrong method, malformed path and query parameters.
        server.admin_get("/api/v1/nothing-here"),
        answer(
            server
                .agent
                .delete(&server.url("/api/v1/devices"))
                .header("Authorization", &format!("Bearer {}", server.admin))
                .call(),
        ),
        server.admin_get("/api/v1/rollouts/not-a-number"),
        answer(
            server
                .agent
                .post(&server.url("/api/v1/artifacts?foreign=maybe"))
                .header("Authorization", &format!("Bearer {}", server.admin))
                .send(&b"x"[..]),
        ),
    ];
    let expected = [401, 401, 413, 404, 405, 400, 400];
    for (a, status) in checks.iter().zip(expected) {
        assert_eq!(a.status, status, "{a:?}");
        assert!(
            a.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "not a JSON error: {a:?}"
        );
    }
}

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

fn dashboard_login_is_a_post_and_opens_a_random_session(backend: Backend) {
    let server = Server::start(backend);
    server.add_user("alice", "viewer");
    let password = Server::password_of("alice");
    // A wrong password, an unknown name, the admin token as a password: the form again, no
    // cookie.
    for (name, password) in [
        ("alice", "not-the-password"),
        ("mallory", password.as_str()),
        ("alice", server.admin.as_str()),
    ] {
        let (status, cookie) = server.dashboard_login(name, password);
        assert_eq!(status, 401, "{name}");
        assert!(cookie.is_none(), "{cookie:?}");
    }
    // The right one: a random session key, never the password, with the flags.
    let (status, cookie) = server.dashboard_login("alice", &password);
    assert_eq!(status, 303);
    let cookie = cookie.unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/ui"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(&password), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let (name, key) = session.split_once('=').unwrap();
    assert_eq!(name, "rustupdate_session");
    assert_eq!(key.len(), 64);
    assert_eq!(server.dashboard_get("/ui/", &session).status, 200);
    // The admin token as a cookie, or a made-up session, opens nothing.
    for forged in [
        format!("rustupdate_session={}", server.admin),
        format!("rustupdate_admin={}", server.admin),
        format!("rustupdate_session={}", "0".repeat(64)),
    ] {
        let a = server.dashboard_get("/ui/", &forged);
        assert_eq!(a.status, 303, "{forged}: {a:?}");
    }
    // Two sessions are distinct; logging out ends one.
    let other = server.dashboard_session_as("alice", "viewer");
    assert_ne!(other, session);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let out = agent
        .post(&server.url("/ui/logout"))
        .header("Cookie", &session)
        .send_empty()
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    let cleared = out.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(server.dashboard_get("/ui/", &session).status, 303);
    assert_eq!(server.dashboard_get("/ui/", &other).status, 200);
    // Behind an https public-url the cookie is Secure.
    let https = Server::start_with(backend, &["--public-url", "https://updates.example.com"]);
    https.add_user("bob", "viewer");
    let (_, cookie) = https.dashboard_login("bob", &Server::password_of("bob"));
    assert!(cookie.unwrap().contains("; Secure"));
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

/// Five wrong passwords in a minute from one address: the next login is refused with 429, even with
/// the right password, so guessing learns nothing; the management API stays open.
fn failed_dashboard_logins_are_limited(backend: Backend) {
    let server = Server::start(backend);
    server.add_user("carol", "operator");
    for _ in 0..5 {
        assert_eq!(server.dashboard_login("carol", "not-the-password").0, 401);
    }
    let (status, cookie) = server.dashboard_login("carol", &Server::password_of("carol"));
    assert_eq!(status, 429);
    assert!(cookie.is_none(), "{cookie:?}");
    let page = answer(server.agent.get(&server.url("/ui/login")).call());
    assert_eq!(page.status, 200, "the form itself still shows");
    assert_eq!(server.admin_get("/api/v1/devices").status, 200);
    assert!(server.log().contains("event=dashboard-login-limited"));
}

/// `GET /ui/login?token=…` (the admin token in a URL, which ends up in histories and logs): 400,
/// no session, whatever the token.
fn a_token_in_the_login_url_never_logs_in(backend: Backend) {
    let server = Server::start(backend);
    let url = server.url(&format!("/ui/login?token={}&next=%2Fui%2F", server.admin));
    let r = server.agent.get(&url).call().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(
        server
            .log()
            .contains("event=dashboard-login-by-url-refused")
    );
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
