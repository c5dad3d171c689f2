//! Issue 20, "hostile input", at the dashboard's login: a POST that opens a random session,
//! failed logins limited per address, no login by a token in the URL. Each test failed before its
//! fix.

use crate::harness::{Backend, Server, answer};
use crate::on_both_backends;

on_both_backends!(
    dashboard_login_is_a_post_and_opens_a_random_session,
    failed_dashboard_logins_are_limited,
    a_token_in_the_login_url_never_logs_in,
);

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
