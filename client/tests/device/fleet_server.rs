//! The fleet side of the device tests: a real `rustupdate-server` process on loopback (built from
//! `tools/server` when missing), its admin API as the tests need it (enrol, upload, roll out, the
//! action's status, the inventory), and the client commands a fleet test runs.

use crate::rig::{Rig, image, tool};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const BOARD: &str = "test-board";
pub(crate) const STARTUP: Duration = Duration::from_secs(30);

/// The server binary: `tools/server/target/debug/rustupdate-server`, built when missing (the
/// server is its own cargo workspace, so it cannot be a dev-dependency).
pub(crate) fn server_binary() -> PathBuf {
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

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data directory and port.
    pub(crate) fn restart(&mut self) {
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

    /// `PUT path` with a raw JSON `body` as the admin: the status and the answer's text.
    pub(crate) fn put(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut response = self
            .agent
            .put(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.admin))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
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

pub(crate) fn release(rig: &Rig, server: &FleetServer, version: &str, n: u8) -> i64 {
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
