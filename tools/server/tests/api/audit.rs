//! The audit log (issue 20, operators): every operator action that changed the fleet, who, what
//! and when, in `GET /api/v1/audit` and on the dashboard's overview; and the dashboard's rollout
//! commands, which are such actions, behind the session and its CSRF token.

use crate::harness::{Backend, Server, answer};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    operator_actions_are_in_the_audit_log,
    dashboard_commands_need_the_session_and_its_csrf_token,
);

fn logout(server: &Server, cookie: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let r = agent
        .post(&server.url("/ui/logout"))
        .header("Cookie", cookie)
        .send_empty()
        .unwrap();
    r.status().as_u16()
}

fn operator_actions_are_in_the_audit_log(backend: Backend) {
    let server = Server::start(backend);
    server.device("audited-1");
    let tags = server
        .agent
        .put(&server.url("/api/v1/devices/audited-1/tags"))
        .header("Authorization", &format!("Bearer {}", server.admin))
        .send_json(json!({"add": ["beta"], "remove": []}));
    assert_eq!(answer(tags).status, 200);
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let paused = server.admin_post(&format!("/api/v1/rollouts/{rollout}/pause"), &json!({}));
    assert_eq!(paused.status, 200, "{paused:?}");
    // A refused action is not an action.
    let again = server.admin_post(&format!("/api/v1/rollouts/{rollout}/pause"), &json!({}));
    assert_eq!(again.status, 409);
    let cookie = server.dashboard_session();
    let overview = server.dashboard_get("/ui/", &cookie);
    assert!(
        overview.text.contains("Operator actions"),
        "{}",
        overview.text
    );
    assert!(overview.text.contains("rollout-pause"), "{}", overview.text);
    assert_eq!(logout(&server, &cookie), 303);
    // A made-up session cookie's logout is nobody's action.
    assert_eq!(logout(&server, "rustupdate_session=made-up"), 303);

    let log = server.admin_get("/api/v1/audit");
    assert_eq!(log.status, 200, "{log:?}");
    let entries = log.body.as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "dashboard-logout",
            "dashboard-login",
            "user-add",
            "rollout-pause",
            "rollout-start",
            "rollout-create",
            "artifact-upload",
            "device-tags",
            "device-add",
        ],
        "{log:?}"
    );
    let by_action = |a: &str| entries.iter().find(|e| e["action"] == a).unwrap();
    assert_eq!(by_action("rollout-pause")["actor"], "admin-token");
    assert_eq!(
        by_action("rollout-pause")["target"],
        format!("rollout {rollout}")
    );
    assert_eq!(by_action("device-tags")["detail"], "add [beta], remove []");
    assert_eq!(by_action("dashboard-login")["actor"], "operator");
    assert_eq!(by_action("dashboard-login")["target"], "127.0.0.1");
    assert_eq!(by_action("user-add")["actor"], "host:tester");
    assert_eq!(by_action("user-add")["target"], "user operator");
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["at"].as_i64() >= w[1]["at"].as_i64())
    );

    assert_eq!(
        server
            .admin_get("/api/v1/audit?limit=2")
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for bad in ["0", "1001", "x"] {
        let a = server.admin_get(&format!("/api/v1/audit?limit={bad}"));
        assert_eq!(a.status, 400, "limit={bad}: {a:?}");
    }
    let anonymous = answer(server.agent.get(&server.url("/api/v1/audit")).call());
    assert_eq!(anonymous.status, 401);
}

/// The rollout page's buttons post with the session's CSRF token; a post without it, with a wrong
/// one, or without a session changes nothing.
fn dashboard_commands_need_the_session_and_its_csrf_token(backend: Backend) {
    let server = Server::start(backend);
    server.device("steered-1");
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let cookie = server.dashboard_session();
    let page = server.dashboard_get(&format!("/ui/rollouts/{rollout}"), &cookie);
    assert!(page.text.contains(">Pause<"), "{}", page.text);
    assert!(!page.text.contains(">Resume<"), "{}", page.text);
    let csrf = page
        .text
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's csrf field")
        .to_owned();
    let post = |cookie: Option<&str>, body: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut req = agent
            .post(&server.url(&format!("/ui/rollouts/{rollout}/pause")))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            req = req.header("Cookie", cookie);
        }
        req.send(body.to_owned()).unwrap().status().as_u16()
    };
    let state = || server.rollout_status(rollout)["state"].clone();
    // As a page of another site would post it: the cookie (if the browser sent it), no token.
    assert_eq!(post(Some(&cookie), ""), 403);
    assert_eq!(post(Some(&cookie), "csrf=0000"), 403);
    // Without a session the token alone does nothing: to the login page.
    assert_eq!(post(None, &format!("csrf={csrf}")), 303);
    assert_eq!(state(), "running");
    assert!(server.log().contains("event=dashboard-csrf-refused"));
    // The form as the page made it.
    assert_eq!(post(Some(&cookie), &format!("csrf={csrf}")), 303);
    assert_eq!(state(), "paused");
    let log = server.admin_get("/api/v1/audit?limit=1");
    assert_eq!(log.body[0]["action"], "rollout-pause", "{log:?}");
    assert_eq!(log.body[0]["actor"], "operator", "{log:?}");
    // Pausing again is refused by the rollout's state, as in the API.
    assert_eq!(post(Some(&cookie), &format!("csrf={csrf}")), 409);
}
