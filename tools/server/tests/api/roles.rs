//! Operators and roles (issue 20): accounts made on the host, API tokens scoped to a role, the
//! dashboard's forms (upload, create a rollout, tag a device, steer) for operators and not for
//! viewers, each change in the audit log under the account's name.

use crate::harness::{Answer, BOARD, Backend, Server, agent, answer};
use crate::on_both_backends;
use serde_json::{Value, json};

on_both_backends!(
    api_tokens_act_with_their_role,
    viewers_read_the_dashboard_and_change_nothing,
    operators_run_a_rollout_from_the_dashboard,
    account_changes_apply_at_once,
);

fn token(server: &Server, user: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token", "create", "--user", user, "--label", "test", "--role", role,
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = server.host_command(&args, "");
    assert!(ok, "token create: {out}{err}");
    out.trim().to_owned()
}

fn with_token(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    let auth = format!("Bearer {token}");
    let url = server.url(path);
    let a = agent();
    answer(match (method, body) {
        ("GET", _) => a.get(&url).header("Authorization", &auth).call(),
        ("POST", Some(body)) => a.post(&url).header("Authorization", &auth).send_json(body),
        ("PUT", Some(body)) => a.put(&url).header("Authorization", &auth).send_json(body),
        _ => panic!("{method} {path}"),
    })
}

fn new_rollout(artifact: i64) -> Value {
    json!({"name": "by token", "artifact_id": artifact, "device_type": BOARD, "phases": "100",
           "success_threshold": 100, "error_threshold": "1"})
}

fn api_tokens_act_with_their_role(backend: Backend) {
    let server = Server::start(backend);
    server.add_user("vera", "viewer");
    server.add_user("otto", "operator");
    server.add_user("ada", "admin");
    let artifact = server.release("2.0");
    let viewer = token(&server, "vera", "viewer", &[]);
    // A token asking for more than its account has acts with the account's role.
    let viewer_as_admin = token(&server, "vera", "admin", &[]);
    let operator = token(&server, "otto", "operator", &[]);
    let operator_scoped_down = token(&server, "otto", "viewer", &[]);
    let admin = token(&server, "ada", "admin", &[]);
    assert_eq!(operator.len(), 64);

    for t in [
        &viewer,
        &viewer_as_admin,
        &operator,
        &operator_scoped_down,
        &admin,
    ] {
        assert_eq!(
            with_token(&server, "GET", "/api/v1/rollouts", t, None).status,
            200
        );
        assert_eq!(with_token(&server, "GET", "/metrics", t, None).status, 200);
    }
    for t in [&viewer, &viewer_as_admin, &operator_scoped_down] {
        let a = with_token(
            &server,
            "POST",
            "/api/v1/rollouts",
            t,
            Some(&new_rollout(artifact)),
        );
        assert_eq!(a.status, 403, "{a:?}");
        assert!(
            a.body["error"]
                .as_str()
                .unwrap()
                .contains("needs the role operator"),
            "{a:?}"
        );
    }
    assert_eq!(
        server.admin_get("/api/v1/rollouts").body,
        json!([]),
        "nothing was created"
    );
    let created = with_token(
        &server,
        "POST",
        "/api/v1/rollouts",
        &operator,
        Some(&new_rollout(artifact)),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let device = json!({"controller_id": "by-token-1", "device_type": BOARD});
    let refused = with_token(&server, "POST", "/api/v1/devices", &operator, Some(&device));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        with_token(&server, "POST", "/api/v1/devices", &admin, Some(&device)).status,
        201
    );
    // The audit log names the accounts.
    let log = server.admin_get("/api/v1/audit?limit=2");
    assert_eq!(log.body[0]["action"], "device-add", "{log:?}");
    assert_eq!(log.body[0]["actor"], "ada", "{log:?}");
    assert_eq!(log.body[1]["actor"], "otto", "{log:?}");
    // Unknown, revoked and expired tokens open nothing.
    assert_eq!(
        with_token(&server, "GET", "/api/v1/rollouts", &"0".repeat(64), None).status,
        401
    );
    let (_, list, _) = server.host_command(&["token", "list"], "");
    let admin_id = list
        .lines()
        .find(|l| l.contains("\tada\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    let (ok, _, err) = server.host_command(&["token", "revoke", &admin_id], "");
    assert!(ok, "{err}");
    assert_eq!(
        with_token(&server, "GET", "/api/v1/rollouts", &admin, None).status,
        401
    );
    let expired = token(&server, "ada", "admin", &["--expires-in-days", "0"]);
    assert_eq!(
        with_token(&server, "GET", "/api/v1/rollouts", &expired, None).status,
        401
    );
    // Bad input to the host commands names the problem.
    let (ok, _, err) = server.host_command(
        &["user", "add", "x", "--role", "root"],
        "long enough password\n",
    );
    assert!(
        !ok && err.contains("not one of viewer, operator, admin"),
        "{err}"
    );
    let (ok, _, err) =
        server.host_command(&["user", "add", "shorty", "--role", "viewer"], "short\n");
    assert!(!ok && err.contains("at least 12 characters"), "{err}");
    let (ok, _, err) = server.host_command(
        &["user", "add", "vera", "--role", "viewer"],
        "long enough password\n",
    );
    assert!(!ok && err.contains("exists already"), "{err}");
}

/// The value of the hidden `csrf` field of a page.
fn csrf_of(page: &str) -> String {
    page.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form's csrf field")
        .to_owned()
}

fn post_form(server: &Server, path: &str, cookie: &str, body: &str) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    answer(
        agent
            .post(&server.url(path))
            .header("Cookie", cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.to_owned()),
    )
}

/// A multipart upload as the artifact page's form sends it: `csrf`, then `file`.
fn upload_form(server: &Server, cookie: &str, csrf: &str, file: &[u8]) -> Answer {
    let boundary = "----rustupdate-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.rua\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    answer(
        agent
            .post(&server.url("/ui/artifacts"))
            .header("Cookie", cookie)
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&body[..]),
    )
}

fn viewers_read_the_dashboard_and_change_nothing(backend: Backend) {
    let server = Server::start(backend);
    server.device("seen-1");
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let viewer = server.dashboard_session_as("vera", "viewer");
    for path in [
        "/ui/",
        "/ui/devices",
        "/ui/devices/seen-1",
        "/ui/rollouts",
        "/ui/artifacts",
    ] {
        let page = server.dashboard_get(path, &viewer);
        assert_eq!(page.status, 200, "{path}: {page:?}");
        assert!(page.text.contains("vera (viewer)"), "{path}");
        assert!(
            !page.text.contains(r#"name="csrf""#),
            "{path} offers a form to a viewer"
        );
    }
    let page = server.dashboard_get(&format!("/ui/rollouts/{rollout}"), &viewer);
    assert!(
        page.text.contains("reloads every"),
        "a running rollout's page is live"
    );
    assert!(!page.text.contains(">Pause<"), "{}", page.text);
    // Even with its own session's valid CSRF token (derived from the cookie as the server does,
    // which a viewer's pages never show), every form is refused for the role.
    let own_csrf = {
        use sha2::Digest;
        let key = viewer.split_once('=').unwrap().1;
        hex::encode(sha2::Sha256::digest(format!("rustupdate-csrf:{key}")))
    };
    for (path, body) in [
        (
            format!("/ui/rollouts/{rollout}/pause"),
            format!("csrf={own_csrf}"),
        ),
        (
            "/ui/devices/seen-1/tags".into(),
            format!("csrf={own_csrf}&add=owned"),
        ),
    ] {
        let a = post_form(&server, &path, &viewer, &body);
        assert_eq!(a.status, 403, "{path}: {a:?}");
        assert!(
            a.text.contains("needs the role operator"),
            "{path}: {}",
            a.text
        );
    }
    assert_eq!(server.rollout_status(rollout)["state"], "running");
    // A small file: the server answers 403 before it reads the body, and a client still
    // sending a large one may see its connection closed instead of the answer.
    let upload = upload_form(
        &server,
        &viewer,
        &own_csrf,
        b"never read: the role is checked first",
    );
    assert_eq!(upload.status, 403, "{upload:?}");
    assert_eq!(
        server
            .admin_get("/api/v1/artifacts")
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn operators_run_a_rollout_from_the_dashboard(backend: Backend) {
    let server = Server::start(backend);
    server.device("ops-1");
    let cookie = server.dashboard_session_as("otto", "operator");
    let csrf = csrf_of(&server.dashboard_get("/ui/artifacts", &cookie).text);
    // Upload: a signed .rua through the form.
    let uploaded = upload_form(&server, &cookie, &csrf, &Server::release_bytes("3.0"));
    assert_eq!(uploaded.status, 303, "{uploaded:?}");
    let artifacts = server.admin_get("/api/v1/artifacts").body;
    assert_eq!(artifacts[0]["version"], "3.0", "{artifacts}");
    let artifact = artifacts[0]["id"].as_i64().unwrap();
    // A tampered one is refused with the reason, and nothing is added.
    let mut bad = Server::release_bytes("4.0");
    let at = bad.len() / 2;
    bad[at] ^= 1;
    let refused = upload_form(&server, &cookie, &csrf, &bad);
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.text.contains("artifact rejected"),
        "{}",
        refused.text
    );
    assert_eq!(
        server
            .admin_get("/api/v1/artifacts")
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Without the token first, the upload is refused before the file is read.
    // (A short file: the server answers before reading it, and a long one could still be on
    // its way when the connection closes.)
    assert_eq!(
        upload_form(&server, &cookie, "wrong", &bad[..1024]).status,
        403
    );
    // Tag the device, then create a rollout targeting the tag, started at once.
    let tagged = post_form(
        &server,
        "/ui/devices/ops-1/tags",
        &cookie,
        &format!("csrf={csrf}&add=lab%2C+eu&remove="),
    );
    assert_eq!(tagged.status, 303, "{tagged:?}");
    let device = server.admin_get("/api/v1/devices/ops-1").body;
    assert_eq!(device["device"]["tags"], json!(["eu", "lab"]), "{device}");
    let form = format!(
        "csrf={csrf}&name=from+the+form&artifact_id={artifact}&device_type={BOARD}&tags=lab\
         &attributes=&phases=50%2C100&success_threshold=90&error_threshold=10%25&start=on"
    );
    let created = post_form(&server, "/ui/rollouts", &cookie, &form);
    assert_eq!(created.status, 303, "{created:?}");
    let rollouts = server.admin_get("/api/v1/rollouts").body;
    let r = &rollouts[0];
    assert_eq!(r["name"], "from the form");
    assert_eq!(r["phases"][0]["percent"], 50, "{r}");
    assert_eq!(r["phases"][1]["percent"], 100, "{r}");
    assert_eq!(r["success_threshold"], 90);
    assert_eq!(r["error_threshold"], "10%");
    assert_eq!(r["tags"], json!(["lab"]));
    assert_eq!(r["state"], "running");
    let id = r["id"].as_i64().unwrap();
    // Bad input in the form: a clear 400, nothing created.
    let bad_form = form.replace("50%2C100", "100%2C50");
    let a = post_form(&server, "/ui/rollouts", &cookie, &bad_form);
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(
        server
            .admin_get("/api/v1/rollouts")
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Steer it.
    assert_eq!(
        post_form(
            &server,
            &format!("/ui/rollouts/{id}/pause"),
            &cookie,
            &format!("csrf={csrf}")
        )
        .status,
        303
    );
    assert_eq!(server.rollout_status(id)["state"], "paused");
    assert_eq!(
        post_form(
            &server,
            &format!("/ui/rollouts/{id}/cancel"),
            &cookie,
            &format!("csrf={csrf}")
        )
        .status,
        303
    );
    assert_eq!(server.rollout_status(id)["state"], "canceled");
    let log = server.admin_get("/api/v1/audit?limit=6").body;
    let actions: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("otto", "rollout-cancel"),
            ("otto", "rollout-pause"),
            ("otto", "rollout-start"),
            ("otto", "rollout-create"),
            ("otto", "device-tags"),
            ("otto", "artifact-upload"),
        ]
    );
}

fn account_changes_apply_at_once(backend: Backend) {
    let server = Server::start(backend);
    server.device("kept-1");
    let artifact = server.release("2.0");
    let rollout = server.rollout(artifact, "100", "1");
    let cookie = server.dashboard_session_as("otto", "operator");
    let csrf = csrf_of(
        &server
            .dashboard_get(&format!("/ui/rollouts/{rollout}"), &cookie)
            .text,
    );
    let (ok, _, err) = server.host_command(&["user", "set-role", "otto", "--role", "viewer"], "");
    assert!(ok, "{err}");
    let a = post_form(
        &server,
        &format!("/ui/rollouts/{rollout}/pause"),
        &cookie,
        &format!("csrf={csrf}"),
    );
    assert_eq!(a.status, 403, "a demoted session steers nothing: {a:?}");
    assert_eq!(server.rollout_status(rollout)["state"], "running");
    assert_eq!(
        server.dashboard_get("/ui/", &cookie).status,
        200,
        "it still reads"
    );
    // A new password ends the sessions; removing the account ends its tokens.
    let (ok, _, err) =
        server.host_command(&["user", "set-password", "otto"], "another long password\n");
    assert!(ok, "{err}");
    assert_eq!(server.dashboard_get("/ui/", &cookie).status, 303);
    let t = token(&server, "otto", "viewer", &[]);
    assert_eq!(
        with_token(&server, "GET", "/api/v1/rollouts", &t, None).status,
        200
    );
    let (ok, _, err) = server.host_command(&["user", "remove", "otto"], "");
    assert!(ok, "{err}");
    assert_eq!(
        with_token(&server, "GET", "/api/v1/rollouts", &t, None).status,
        401
    );
}
