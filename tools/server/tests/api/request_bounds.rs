//! Issue 20, "hostile input", on the wire: every request bounded before it is read (size and
//! memory), half-sent and idle connections closed, errors JSON on every route. Each test failed
//! before its fix.

use crate::harness::{Backend, Server, TENANT, answer};
use crate::raw_http::{closed_within, raw};
use serde_json::Value;
use std::time::Duration;

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
