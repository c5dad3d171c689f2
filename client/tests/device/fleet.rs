//! `rustupdate check-update` and `daemon` on the simulated device against a real
//! `rustupdate-server` process on loopback (built from `tools/server` when missing): install,
//! reboot, commit and the final report; health-check rollback and bootloader fallback reported
//! with their reasons; cancel before and after the slot is armed; a rejected artifact; the final
//! result kept across a server outage and sent exactly once; backoff on a failing server.

use crate::rig::{Rig, image, tool};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const BOARD: &str = "test-board";
const STARTUP: Duration = Duration::from_secs(30);

/// The server binary: `tools/server/target/debug/rustupdate-server`, built when missing (the
/// server is its own cargo workspace, so it cannot be a dev-dependency).
fn server_binary() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let manifest = repo.join("tools/server/Cargo.toml");
    let target = std::env::var_os("RUSTUPDATE_SERVER_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("tools/server/target"));
    let binary = target.join("debug/rustupdate-server");
    static BUILD: Mutex<()> = Mutex::new(());
    let _once = BUILD.lock().unwrap();
    tool(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "--locked",
                "--bin",
                "rustupdate-server",
                "--manifest-path",
            ])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target),
    );
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

pub(crate) struct FleetServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    admin: String,
    agent: ureq::Agent,
}

impl Drop for FleetServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FleetServer {
    pub(crate) fn start(rig: &Rig) -> FleetServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/release.pem"),
            rig.key.public_key().to_pem().unwrap(),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn_server(dir.path(), port);
        let mut server = FleetServer {
            child,
            dir,
            port,
            admin: String::new(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into(),
        };
        server.wait_ready();
        server.admin = std::fs::read_to_string(server.dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .into();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rustupdate-server exited with {status}: {}", self.log());
            }
            if let Ok(r) = self.agent.get(&self.url("/healthz")).call()
                && r.status().as_u16() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "no /healthz: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory and port.
    fn restart(&mut self) {
        self.stop();
        self.child = spawn_server(self.dir.path(), self.port);
        self.wait_ready();
    }

    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = self.url(path);
        let auth = format!("Bearer {}", self.admin);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            (_, Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
            (_, None) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert!(status < 300, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub(crate) fn upload(&self, bytes: &[u8], query: &str) -> i64 {
        let mut response = self
            .agent
            .post(&self.url(&format!("/api/v1/artifacts{query}")))
            .header("Authorization", &format!("Bearer {}", self.admin))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status == 200 || status == 201, "upload: {status} {text}");
        serde_json::from_str::<Value>(&text).unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// Registers the device and gives the rig a `[server]` section with its 0600 token file.
    pub(crate) fn enroll(&self, rig: &Rig, id: &str, extra: &str) {
        let device = self.admin(
            "POST",
            "/api/v1/devices",
            Some(&json!({"controller_id": id, "device_type": BOARD})),
        );
        let token = rig.file("target-token", device["token"].as_str().unwrap().as_bytes());
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut config = std::fs::read_to_string(rig.config_path()).unwrap();
        config += &format!(
            "[server]\nurl = \"{}\"\ncontroller-id = \"{id}\"\ntoken-file = \"{}\"\n\
             allow-insecure-http = true\npoll-interval-secs = 1\n{extra}",
            self.url(""),
            token.display()
        );
        std::fs::write(rig.config_path(), config).unwrap();
    }

    pub(crate) fn rollout(&self, artifact: i64) -> i64 {
        let rollout = self.admin(
            "POST",
            "/api/v1/rollouts",
            Some(&json!({
                "name": format!("rollout of {artifact}"), "artifact_id": artifact,
                "device_type": BOARD, "phases": "100", "success_threshold": 100,
                "error_threshold": "1", "start": true
            })),
        );
        rollout["id"].as_i64().unwrap()
    }

    /// The device's one action: (state, reason).
    pub(crate) fn action(&self, device: &str) -> (String, String) {
        let shown = self.admin("GET", &format!("/api/v1/devices/{device}"), None);
        let actions = shown["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1, "{shown}");
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (text(&actions[0]["state"]), text(&actions[0]["reason"]))
    }

    /// The device's inventory attributes as the server stores them.
    pub(crate) fn inventory(&self, device: &str) -> Value {
        self.admin("GET", &format!("/api/v1/devices/{device}"), None)["device"]["attributes"]
            .clone()
    }
}

fn spawn_server(dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    Command::new(server_binary())
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-interval",
            "1",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting rustupdate-server")
}

fn release(rig: &Rig, server: &FleetServer, version: &str, n: u8) -> i64 {
    let path = rig.artifact(version, &image(n), &[&rig.key], BOARD, None);
    server.upload(&std::fs::read(path).unwrap(), "")
}

/// The device boots the new slot, commits it and reports: the server shows success.
pub(crate) fn boot_commit_and_report(rig: &Rig, server: &FleetServer, device: &str) {
    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(rig).code, 0);
    assert_eq!(check_update(rig).code, 0);
    assert_eq!(server.action(device).0, "succeeded");
}

pub(crate) fn check_update(rig: &Rig) -> crate::rig::Output {
    let out = rig.client(&["check-update"]);
    eprintln!("check-update: {}\n{}", out.stdout, out.stderr);
    out
}

pub(crate) fn commit(rig: &Rig) -> crate::rig::Output {
    let out = rig.client(&["commit"]);
    eprintln!("commit: {}\n{}", out.stdout, out.stderr);
    out
}

#[test]
fn update_reports_success_only_after_commit() {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-1", "");
    let artifact = release(&rig, &server, "2.0", 2);
    server.rollout(artifact);

    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("rebooting"), "{}", out.stdout);
    assert!(rig.slot_holds('b', &image(2)) && rig.reboot_requested());
    assert_eq!(rig.env()["upgrade_available"], "1");
    // Installed and rebooting is not success.
    assert_eq!(server.action("dev-1").0, "running");
    let inventory = server.inventory("dev-1");
    assert_eq!(inventory["running_slot"], "a", "{inventory}");
    assert_eq!(inventory["device_type"], BOARD, "{inventory}");
    assert_eq!(inventory["client_version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(&rig).code, 0);
    assert_eq!(
        server.action("dev-1").0,
        "running",
        "commit itself does not talk"
    );
    assert_eq!(check_update(&rig).code, 0);
    assert_eq!(server.action("dev-1").0, "succeeded");
    let inventory = server.inventory("dev-1");
    assert_eq!(inventory["running_version"], "2.0", "{inventory}");
    assert_eq!(inventory["running_slot"], "b", "{inventory}");
    assert_eq!(inventory["slot_b_version"], "2.0", "{inventory}");
    assert_eq!(rig.status()["situation"], "idle");
    // Nothing more to do, nothing sent twice.
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("no update offered"), "{}", out.stdout);
}

#[test]
fn health_failure_and_fallback_are_reported_with_reasons() {
    // Health check fails: the client rolls back, the server hears why.
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-h", "");
    server.rollout(release(&rig, &server, "2.0", 2));
    assert_eq!(check_update(&rig).code, 0);
    rig.health_script("50-app", "#!/bin/sh\necho app is down >&2\nexit 1\n");
    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(&rig).code, 3);
    assert_eq!(rig.boot(), 'a');
    assert_eq!(commit(&rig).code, 0);
    assert_eq!(check_update(&rig).code, 0);
    let (state, reason) = server.action("dev-h");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("rolled-back") && reason.contains("50-app"),
        "{reason}"
    );
    assert!(
        reason.contains("app is down"),
        "the check's output: {reason}"
    );

    // The new slot never comes up: the bootloader falls back by itself after bootlimit tries.
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-f", "");
    server.rollout(release(&rig, &server, "3.0", 3));
    assert_eq!(check_update(&rig).code, 0);
    let boots: Vec<char> = (0..4).map(|_| rig.boot()).collect();
    assert_eq!(boots, ['b', 'b', 'b', 'a']);
    assert_eq!(commit(&rig).code, 0);
    assert_eq!(check_update(&rig).code, 0);
    let (state, reason) = server.action("dev-f");
    assert_eq!(state, "failed");
    assert!(reason.contains("fell back"), "{reason}");
}

#[test]
fn cancel_before_the_slot_is_armed_and_refused_after() {
    // The consent script defers the install after the device fetched the deployment; the
    // server then cancels, and the device confirms: nothing was written.
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    let consent = rig.executable(
        "consent.sh",
        "#!/bin/sh\n[ -e \"$(dirname \"$0\")/consent-given\" ]\n",
    );
    server.enroll(
        &rig,
        "dev-c",
        &format!("consent-script = \"{}\"\n", consent.display()),
    );
    let slot_b = rig.slot_bytes('b');
    let rollout = server.rollout(release(&rig, &server, "2.0", 2));
    let out = check_update(&rig);
    assert!(
        out.stdout.contains("deferred by the consent script"),
        "{}",
        out.stdout
    );
    assert_eq!(server.action("dev-c").0, "running");
    server.admin("POST", &format!("/api/v1/rollouts/{rollout}/cancel"), None);
    rig.file("consent-given", b"");
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("cancelled"), "{}", out.stdout);
    assert_eq!(server.action("dev-c").0, "canceled");
    assert_eq!(
        rig.slot_bytes('b'),
        slot_b,
        "a cancelled action wrote the slot"
    );
    assert!(!rig.reboot_requested());

    // Armed: too late to cancel; the device says why and the update goes on.
    let rig = Rig::new();
    server.enroll(&rig, "dev-d", "reboot = \"manual\"\n");
    let rollout = server.rollout(release(&rig, &server, "3.0", 3));
    let out = check_update(&rig);
    assert!(out.stdout.contains("manual reboot"), "{}", out.stdout);
    assert!(!rig.reboot_requested(), "reboot = manual rebooted");
    server.admin("POST", &format!("/api/v1/rollouts/{rollout}/cancel"), None);
    let out = check_update(&rig);
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
    let (state, reason) = server.action("dev-d");
    assert_eq!(state, "running");
    assert!(reason.contains("too late to cancel"), "{reason}");
    boot_commit_and_report(&rig, &server, "dev-d");
}

#[test]
fn rejected_artifact_is_reported_and_nothing_is_written() {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-r", "");
    // Signed by a key this device does not trust; uploaded as a foreign file so that the server
    // (which trusts it) does not judge it.
    let other = rustupdate_testkit::key(99);
    let path = rig.artifact("6.6", &image(6), &[&other], BOARD, None);
    let artifact = server.upload(
        &std::fs::read(path).unwrap(),
        "?foreign=true&name=evil&version=6.6&device_types=test-board&filename=evil.rua",
    );
    server.rollout(artifact);
    let slot_b = rig.slot_bytes('b');
    let out = check_update(&rig);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("rejected"), "{}", out.stderr);
    assert_eq!(rig.slot_bytes('b'), slot_b);
    assert_eq!(rig.env()["upgrade_available"], "0");
    let (state, reason) = server.action("dev-r");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("rejected") && reason.contains("signature"),
        "{reason}"
    );
    assert_eq!(rig.status()["last-result"]["result"], "rejected");
}

#[test]
fn final_result_survives_an_outage_and_is_sent_once() {
    let rig = Rig::new();
    let mut server = FleetServer::start(&rig);
    server.enroll(&rig, "dev-o", "");
    server.rollout(release(&rig, &server, "2.0", 2));
    assert_eq!(check_update(&rig).code, 0);
    assert_eq!(rig.boot(), 'b');
    assert_eq!(commit(&rig).code, 0);
    server.stop();
    let out = check_update(&rig);
    assert_eq!(out.code, 1, "server down: {}", out.stdout);
    assert!(rig.state_text().contains("\"action\""));
    assert!(
        !rig.state_text().contains("reported-action"),
        "{}",
        rig.state_text()
    );
    server.restart();
    assert_eq!(check_update(&rig).code, 0);
    assert_eq!(server.action("dev-o").0, "succeeded");
    // The acknowledgement got lost (a power cut right after the server accepted): the repeat is
    // answered "already recorded" and changes nothing.
    let state = rig.state_text();
    assert!(state.contains("\"reported-action\""), "{state}");
    let forgotten: Value = serde_json::from_str(&state).unwrap();
    let mut forgotten = forgotten.as_object().unwrap().clone();
    forgotten.remove("reported-action");
    std::fs::write(
        rig.data_dir().join("state.json"),
        serde_json::to_string(&forgotten).unwrap(),
    )
    .unwrap();
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("already settled"), "{}", out.stderr);
    assert!(rig.state_text().contains("\"reported-action\""));
    assert_eq!(server.action("dev-o").0, "succeeded");
}

/// A server that answers every request with 500 and records when each came.
fn failing_server() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let times = seen.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    times.lock().unwrap().push(Instant::now());
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (url, seen)
}

#[test]
fn daemon_backs_off_exponentially_on_errors() {
    let rig = Rig::new();
    let (url, seen) = failing_server();
    let token = rig.file("token", b"secret");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = std::fs::read_to_string(rig.config_path()).unwrap();
    config += &format!(
        "[server]\nurl = \"{url}\"\ncontroller-id = \"dev-b\"\ntoken-file = \"{}\"\n\
         allow-insecure-http = true\npoll-interval-secs = 1\nmax-backoff-secs = 8\n",
        token.display()
    );
    std::fs::write(rig.config_path(), config).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_rustupdate"))
        .arg("-c")
        .arg(rig.config_path())
        .arg("daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // 2 + 4 + 8 + 8 s of backoff (±10 %): five requests within 25 s, then stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let times = seen.lock().unwrap().clone();
    assert!(times.len() >= 5, "only {} requests in 30 s", times.len());
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    for (gap, expected) in gaps.iter().zip([2.0, 4.0, 8.0, 8.0]) {
        assert!(
            (expected * 0.85..expected * 1.15 + 0.5).contains(gap),
            "gaps {gaps:?}: expected about {expected} s"
        );
    }
}

#[test]
fn token_file_readable_by_others_is_refused() {
    let rig = Rig::new();
    let token = rig.file("token", b"secret");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut config = std::fs::read_to_string(rig.config_path()).unwrap();
    config += &format!(
        "[server]\nurl = \"https://127.0.0.1:9\"\ntoken-file = \"{}\"\ncontroller-id = \"x\"\n",
        token.display()
    );
    std::fs::write(rig.config_path(), config).unwrap();
    let out = rig.client(&["check-update"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
}

#[test]
fn power_cut_during_the_download_is_redone_not_reported_as_failure() {
    // Device "trace" shows where the image write's durable points are; device "cut" loses power
    // at the first of them (the state says "writing", the bootloader is untouched).
    let (traced, cut) = (Rig::new(), Rig::new());
    let server = FleetServer::start(&traced);
    std::fs::write(
        cut.root().join("keys/release.pem"),
        traced.key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    server.enroll(&traced, "dev-trace", "");
    server.enroll(&cut, "dev-cut", "");
    server.rollout(release(&traced, &server, "2.0", 2));
    let trace = traced.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_TRACE", "1")]);
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    let point = trace
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rustupdate-fault-point "))
        .find(|l| l.contains(" image:"))
        .and_then(|l| l.split(' ').next())
        .expect("no image fault point")
        .to_owned();
    let out = cut.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_AFTER", &point)]);
    assert_eq!(out.code, 99, "{}", out.stderr);
    assert_eq!(cut.boot(), 'a');
    let out = commit(&cut);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("interrupted"), "{}", out.stdout);
    assert_eq!(cut.status()["situation"], "install-interrupted");
    assert_eq!(
        server.action("dev-cut").0,
        "running",
        "a cut is not a failure"
    );
    let out = check_update(&cut);
    assert_eq!(out.code, 0);
    assert!(out.stderr.contains("installing again"), "{}", out.stderr);
    assert!(cut.slot_holds('b', &image(2)) && cut.reboot_requested());
    boot_commit_and_report(&cut, &server, "dev-cut");
}

#[test]
fn power_cut_after_a_checkpoint_resumes_the_download_there() {
    use rustupdate_format::Chunking;
    use rustupdate_format::builder::BodyOptions;
    // 512-byte chunks, 4096 per segment: 2 MiB segments (one zstd frame each), three of them in
    // a 5 MiB image (slots hold 6 MiB).
    let image = rustupdate_testkit::fs_image(5 << 20, 21);
    let options = BodyOptions {
        chunking: Chunking::Fixed { size: 512 },
        segment_entries: Some(4096),
        ..BodyOptions::default()
    };
    let spec = rustupdate_testkit::ArtifactSpec {
        version: "5.0",
        compatible: &[BOARD],
        ..Default::default()
    };
    let (traced, cut) = (Rig::new(), Rig::new());
    let (head, body) = rustupdate_testkit::artifact_parts(&spec, &image, &options, &[&traced.key]);
    let mut bytes = head.to_bytes().unwrap();
    bytes.extend_from_slice(&body);
    let server = FleetServer::start(&traced);
    std::fs::write(
        cut.root().join("keys/release.pem"),
        traced.key.public_key().to_pem().unwrap(),
    )
    .unwrap();
    server.enroll(&traced, "dev-trace", "");
    server.enroll(&cut, "dev-cut", "");
    server.rollout(server.upload(&bytes, ""));
    // The power goes at the first image write after the first checkpoint (segment 1) is in
    // the state.
    let trace = traced.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_TRACE", "1")]);
    assert_eq!(trace.code, 0, "{}", trace.stderr);
    let points: Vec<(&str, &str)> = trace
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rustupdate-fault-point "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let first_checkpoint = points
        .iter()
        .position(|(_, name)| *name == "image:checkpoint")
        .unwrap_or_else(|| panic!("no checkpoint: {}", trace.stderr));
    let (cut_at, _) = points[first_checkpoint..]
        .iter()
        .find(|(_, name)| name.starts_with("image:") && *name != "image:checkpoint")
        .unwrap();
    let out = cut.client_env(&["check-update"], &[("RUSTUPDATE_FAULT_AFTER", cut_at)]);
    assert_eq!(out.code, 99, "{}", out.stderr);
    assert_eq!(cut.boot(), 'a');
    assert_eq!(commit(&cut).code, 0);
    let status = cut.status();
    assert_eq!(status["pending"]["checkpoint"]["segment"], 1, "{status}");
    let out = check_update(&cut);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let offset: u64 = out
        .stderr
        .split("resuming the download at byte ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume: {}", out.stderr));
    // Segment 0 (its table and data) is not downloaded again.
    assert_eq!(offset, head.segment_offset(0, 1).unwrap());
    assert!(
        offset > bytes.len() as u64 / 4,
        "{offset} of {}",
        bytes.len()
    );
    assert!(cut.slot_holds('b', &image) && cut.reboot_requested());
    boot_commit_and_report(&cut, &server, "dev-cut");
}

/// Test certificates made with openssl: a CA, a server certificate for 127.0.0.1 and a client
/// certificate, all signed by the CA. Returns the directory.
fn certificates(rig: &Rig) -> PathBuf {
    let dir = rig.root().join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let openssl = |args: &[&str]| {
        tool(Command::new("openssl").current_dir(&dir).args(args));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ed25519",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    for name in ["server", "client"] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={name}");
        openssl(&[
            "req", "-newkey", "ed25519", "-nodes", "-subj", &subject, "-keyout", &key, "-out", &csr,
        ]);
        let mut sign = vec![
            "x509",
            "-req",
            "-days",
            "1",
            "-CAcreateserial",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-out",
            &pem,
        ];
        let ext = format!("{name}.ext");
        sign.extend(["-extfile", &ext]);
        openssl(&sign);
    }
    // Without extensions, openssl makes an X.509 v1 certificate, which rustls refuses.
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-out",
        "client-v1.pem",
    ]);
    dir
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + STARTUP;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn with_server_section(rig: &Rig, section: &str) {
    let mut config = std::fs::read_to_string(rig.config_path()).unwrap();
    config += section;
    std::fs::write(rig.config_path(), config).unwrap();
}

#[test]
fn tls_with_a_private_ca_and_client_certificates() {
    rustupdate_testkit::require_tool("openssl", "openssl");
    let rig = Rig::new();
    let pki = certificates(&rig);
    let pem = |name: &str| pki.join(name).display().to_string();

    // rustupdate-server over TLS with a certificate from the private CA.
    let data = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(server_binary())
        .arg("--data-dir")
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--tls-cert",
            &pem("server.pem"),
            "--tls-key",
            &pem("server.key"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let deadline = Instant::now() + STARTUP;
    while !data.path().join("gateway.token").exists() {
        assert!(Instant::now() < deadline, "no gateway token");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = rig.file(
        "gateway-token",
        std::fs::read(data.path().join("gateway.token"))
            .unwrap()
            .as_slice(),
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base = std::fs::read_to_string(rig.config_path()).unwrap();
    let section = |url: &str, extra: &str| {
        format!(
            "[server]\nurl = \"{url}\"\ncontroller-id = \"dev-tls\"\ngateway-token-file = \"{}\"\n{extra}",
            token.display()
        )
    };
    let https = format!("https://127.0.0.1:{port}");
    with_server_section(&rig, &section(&https, ""));
    let out = rig.client(&["check-update"]);
    assert_eq!(out.code, 1, "the built-in roots do not know the private CA");
    assert!(
        out.stderr.to_lowercase().contains("certificate"),
        "{}",
        out.stderr
    );
    std::fs::write(rig.config_path(), &base).unwrap();
    with_server_section(
        &rig,
        &section(&https, &format!("ca-file = \"{}\"\n", pem("ca.pem"))),
    );
    let out = rig.client(&["check-update"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("no update offered"), "{}", out.stdout);
    let _ = server.kill();
    let _ = server.wait();

    // A TLS server that demands a client certificate from the CA (openssl s_server): without one
    // the handshake fails; with one it completes (s_server then answers with an HTML page, not
    // DDI JSON).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s_server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-www",
            "-Verify",
            "1",
        ])
        .args(["-cert", &pem("server.pem"), "-key", &pem("server.key")])
        .args(["-CAfile", &pem("ca.pem")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let mtls = format!("https://127.0.0.1:{port}");
    std::fs::write(rig.config_path(), &base).unwrap();
    with_server_section(
        &rig,
        &section(&mtls, &format!("ca-file = \"{}\"\n", pem("ca.pem"))),
    );
    let without = rig.client(&["check-update"]);
    std::fs::write(rig.config_path(), &base).unwrap();
    with_server_section(
        &rig,
        &section(
            &mtls,
            &format!(
                "ca-file = \"{}\"\nclient-cert = \"{}\"\nclient-key = \"{}\"\n",
                pem("ca.pem"),
                pem("client.pem"),
                pem("client.key")
            ),
        ),
    );
    let with = rig.client(&["check-update"]);
    // A certificate rustls cannot use is a clear configuration error, not a crash.
    let config = std::fs::read_to_string(rig.config_path()).unwrap();
    std::fs::write(
        rig.config_path(),
        config.replace("client.pem", "client-v1.pem"),
    )
    .unwrap();
    let v1 = rig.client(&["check-update"]);
    assert_eq!(v1.code, 1, "{}", v1.stderr);
    assert!(
        v1.stderr.contains("client-v1.pem: not usable"),
        "{}",
        v1.stderr
    );
    let _ = s_server.kill();
    let _ = s_server.wait();
    assert_eq!(without.code, 1);
    assert!(
        !without.stderr.contains("unexpected JSON"),
        "{}",
        without.stderr
    );
    assert_eq!(with.code, 1, "s_server speaks no DDI: {}", with.stderr);
    assert!(with.stderr.contains("unexpected JSON"), "{}", with.stderr);
}

#[test]
fn maintenance_window_and_inventory_script() {
    let rig = Rig::new();
    let server = FleetServer::start(&rig);
    let inventory = rig.executable(
        "inventory.sh",
        "#!/bin/sh\necho serial=SN-0042\necho 'not a pair'\necho board.rev = 3\n",
    );
    // A window that starts two hours from now (UTC) and lasts one hour: not now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % (24 * 60);
    let hm = |m: u64| format!("{:02}:{:02}", m / 60 % 24, m % 60);
    let later = format!("{}-{}", hm(now + 120), hm(now + 180));
    server.enroll(
        &rig,
        "dev-w",
        &format!(
            "inventory-script = \"{}\"\nreboot = \"maintenance-window\"\nmaintenance-window = \"{later}\"\n",
            inventory.display()
        ),
    );
    server.rollout(release(&rig, &server, "2.0", 2));
    let out = check_update(&rig);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains(&format!("maintenance window {later}")),
        "{}",
        out.stdout
    );
    assert!(
        rig.slot_holds('b', &image(2)),
        "installed before the window"
    );
    assert!(!rig.reboot_requested(), "rebooted outside the window");
    let attributes = server.inventory("dev-w");
    assert_eq!(attributes["serial"], "SN-0042", "{attributes}");
    assert_eq!(attributes["board.rev"], "3", "{attributes}");
    assert_eq!(attributes["device_type"], BOARD, "{attributes}");
    // The window is open now: the next cycle reboots.
    let open = format!("{}-{}", hm(now + 24 * 60 - 5), hm(now + 60));
    let config = std::fs::read_to_string(rig.config_path()).unwrap();
    std::fs::write(rig.config_path(), config.replace(&later, &open)).unwrap();
    let out = check_update(&rig);
    assert!(out.stdout.contains("rebooting"), "{}", out.stdout);
    assert!(rig.reboot_requested());
    boot_commit_and_report(&rig, &server, "dev-w");
}
