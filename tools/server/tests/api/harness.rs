//! Real server processes on loopback (SQLite in a temporary directory, or a fresh database on the
//! PostgreSQL that `RUSTUPDATE_TEST_POSTGRES` names), and blocking HTTP clients for operators and
//! devices. Every wait is a bounded poll of a condition.

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TENANT: &str = "DEFAULT";
pub const BOARD: &str = "test-board";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh PostgreSQL database for one test, on the server `RUSTUPDATE_TEST_POSTGRES` points to.
pub fn fresh_postgres_database() -> String {
    let base = std::env::var("RUSTUPDATE_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "RUSTUPDATE_TEST_POSTGRES is not set: the PostgreSQL half of the server tests needs a \
             server (`ci/postgres.sh start` starts one and prints its URL; ci/server-test.sh does both)"
        )
    });
    let name = format!("t_{}", hex_suffix());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .expect("connecting to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("creating a test database");
    });
    match base.rfind('/') {
        Some(slash) => format!("{}/{name}", &base[..slash]),
        None => panic!("RUSTUPDATE_TEST_POSTGRES {base:?} has no database part"),
    }
}

/// Percent-encodes everything but unreserved characters (a form value).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn hex_suffix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// The answer of a request: status and body (JSON if it parses, else a string value).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

pub fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("the request reached the server");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    Answer { status, body, text }
}

pub struct Server {
    child: Child,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub base: String,
    pub admin: String,
    pub gateway: String,
    pub database: String,
    pub agent: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release key the test servers trust.
pub fn release_key() -> rustupdate_verify::SecretKey {
    rustupdate_testkit::key(7)
}

impl Server {
    pub fn start(backend: Backend) -> Server {
        Server::start_with(backend, &[])
    }

    /// A server with extra serve flags.
    pub fn start_with(backend: Backend, args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                tmp.path().join("fleet.db").display()
            ),
            Backend::Postgres => fresh_postgres_database(),
        };
        let dir = tmp.path().to_owned();
        Server::spawn(dir, Some(tmp), &database, args)
    }

    /// Another server process on the same database (its own data directory holding the same
    /// tokens and artifacts, as a shared volume would).
    pub fn beside(other: &Server) -> Server {
        Server::spawn(other.dir.clone(), None, &other.database, &[])
    }

    /// A SQLite server on an existing data directory (e.g. one `rustupdate-server backup` wrote).
    pub fn on_data_dir(dir: PathBuf) -> Server {
        let database = format!("sqlite://{}?mode=rwc", dir.join("fleet.db").display());
        Server::spawn(dir, None, &database, &[])
    }

    fn spawn(
        dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        database: &str,
        args: &[&str],
    ) -> Server {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(
            keys.join("release.pem"),
            release_key().public_key().to_pem().unwrap(),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join(format!("server-{port}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rustupdate-server"))
            .args(["--data-dir", dir.to_str().unwrap(), "--database", database])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(if args.contains(&"--poll-interval") {
                &[][..]
            } else {
                &["--poll-interval", "60"][..]
            })
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting rustupdate-server");
        let base = format!("http://127.0.0.1:{port}");
        let agent = agent();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut server = Server {
            child,
            dir: dir.clone(),
            _tmp: tmp,
            base: base.clone(),
            admin: String::new(),
            gateway: String::new(),
            database: database.to_owned(),
            agent,
        };
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rustupdate-server exited with {status}: {}", server.log());
            }
            if let Ok(r) = server.agent.get(&format!("{base}/healthz")).call()
                && r.status().as_u16() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server did not answer /healthz: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server.admin = read_token(&dir.join("admin.token"));
        server.gateway = read_token(&dir.join("gateway.token"));
        server
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("server-") {
                out += &std::fs::read_to_string(entry.path()).unwrap_or_default();
            }
        }
        out
    }

    /// `127.0.0.1:port`, for raw TCP.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.admin)
    }

    /// Runs `rustupdate-server ARGS --data-dir … --database …` (the host-side commands: `user`,
    /// `token`) with `stdin`; its exit success, standard output and error.
    pub fn host_command(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_rustupdate-server"))
            .args(args)
            .args([
                "--data-dir",
                self.dir.to_str().unwrap(),
                "--database",
                &self.database,
            ])
            .env("USER", "tester")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rustupdate-server");
        // A command that refuses its arguments exits without reading stdin: the write then
        // meets a closed pipe, which is no failure of the test (its output says what happened).
        match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The password the test accounts get.
    pub fn password_of(name: &str) -> String {
        format!("{name}-correct-horse-battery")
    }

    /// Adds the account `name` with `role` (`user add`), its password [`Server::password_of`].
    pub fn add_user(&self, name: &str, role: &str) {
        let (ok, out, err) = self.host_command(
            &["user", "add", name, "--role", role],
            &format!("{}\n", Server::password_of(name)),
        );
        assert!(ok, "user add {name}: {out}{err}");
    }

    /// Logs in to the dashboard by the form (`POST /ui/login`) and returns the 303 with its
    /// `Set-Cookie`, unfollowed.
    pub fn dashboard_login(&self, name: &str, password: &str) -> (u16, Option<String>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let form = format!(
            "name={}&password={}&next=%2Fui%2F",
            urlencode(name),
            urlencode(password)
        );
        let r = agent
            .post(&self.url("/ui/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form)
            .unwrap();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), cookie)
    }

    /// A dashboard page with the session cookie `cookie` (`name=value`).
    pub fn dashboard_get(&self, path: &str, cookie: &str) -> Answer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        answer(agent.get(&self.url(path)).header("Cookie", cookie).call())
    }

    /// The `name=value` of a fresh dashboard session of an operator account (`operator`, made on
    /// first use).
    pub fn dashboard_session(&self) -> String {
        self.dashboard_session_as("operator", "operator")
    }

    /// The `name=value` of a fresh dashboard session of the account `name` with `role`, made if
    /// it does not exist yet.
    pub fn dashboard_session_as(&self, name: &str, role: &str) -> String {
        let _ = self.host_command(
            &["user", "add", name, "--role", role],
            &format!("{}\n", Server::password_of(name)),
        );
        let (status, cookie) = self.dashboard_login(name, &Server::password_of(name));
        assert_eq!(status, 303, "login");
        cookie
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    pub fn admin_get(&self, path: &str) -> Answer {
        answer(
            self.agent
                .get(&self.url(path))
                .header("Authorization", &self.bearer())
                .call(),
        )
    }

    pub fn admin_post(&self, path: &str, body: &Value) -> Answer {
        answer(
            self.agent
                .post(&self.url(path))
                .header("Authorization", &self.bearer())
                .send_json(body),
        )
    }

    pub fn upload(&self, bytes: &[u8], query: &str) -> Answer {
        answer(
            self.agent
                .post(&self.url(&format!("/api/v1/artifacts{query}")))
                .header("Authorization", &self.bearer())
                .header("Content-Type", "application/octet-stream")
                .send(bytes),
        )
    }

    /// A signed artifact of `version` for the test board.
    pub fn release_bytes(version: &str) -> Vec<u8> {
        let spec = rustupdate_testkit::ArtifactSpec {
            version,
            compatible: &[BOARD],
            ..Default::default()
        };
        let image = rustupdate_testkit::pseudo_random(300_000, version.len() as u64);
        rustupdate_testkit::artifact(&spec, &image, &[&release_key()])
    }

    /// Uploads a signed artifact of `version` for the test board; returns its id.
    pub fn release(&self, version: &str) -> i64 {
        let bytes = Server::release_bytes(version);
        let a = self.upload(&bytes, "");
        assert!(a.status == 201 || a.status == 200, "upload: {a:?}");
        a.body["id"].as_i64().unwrap()
    }

    /// Registers a device of the test board with its own token.
    pub fn device(&self, id: &str) -> Device<'_> {
        let a = self.admin_post(
            "/api/v1/devices",
            &json!({"controller_id": id, "device_type": BOARD}),
        );
        assert_eq!(a.status, 201, "{a:?}");
        Device {
            server: self,
            id: id.to_owned(),
            auth: format!("TargetToken {}", a.body["token"].as_str().unwrap()),
        }
    }

    /// A device that authenticates with the gateway token (registered on first poll).
    pub fn gateway_device(&self, id: &str) -> Device<'_> {
        Device {
            server: self,
            id: id.to_owned(),
            auth: format!("GatewayToken {}", self.gateway),
        }
    }

    /// Creates and starts a rollout of `artifact` to the test board.
    pub fn rollout(&self, artifact: i64, phases: &str, error_threshold: &str) -> i64 {
        let a = self.admin_post(
            "/api/v1/rollouts",
            &json!({
                "name": format!("rollout of {artifact}"), "artifact_id": artifact,
                "device_type": BOARD, "phases": phases, "success_threshold": 100,
                "error_threshold": error_threshold, "start": true
            }),
        );
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_i64().unwrap()
    }

    pub fn rollout_status(&self, id: i64) -> Value {
        let a = self.admin_get(&format!("/api/v1/rollouts/{id}"));
        assert_eq!(a.status, 200, "{a:?}");
        a.body
    }

    pub fn action_state(&self, device: &str, action: i64) -> String {
        let a = self.admin_get(&format!("/api/v1/devices/{device}"));
        assert_eq!(a.status, 200, "{a:?}");
        a.body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"].as_i64() == Some(action))
            .map(|x| x["state"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("device {device} has no action {action}: {}", a.text))
    }
}

fn read_token(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

pub struct Device<'a> {
    pub server: &'a Server,
    pub id: String,
    pub auth: String,
}

impl Device<'_> {
    pub fn path(&self, rest: &str) -> String {
        self.server
            .url(&format!("/{TENANT}/controller/v1/{}{rest}", self.id))
    }

    pub fn get(&self, url: &str) -> Answer {
        answer(
            self.server
                .agent
                .get(url)
                .header("Authorization", &self.auth)
                .call(),
        )
    }

    pub fn poll(&self) -> Answer {
        self.get(&self.path(""))
    }

    /// The action id the poll offers (deploymentBase), if any.
    pub fn offered_action(&self) -> Option<i64> {
        let a = self.poll();
        assert_eq!(a.status, 200, "poll of {}: {a:?}", self.id);
        let href = a.body["_links"]["deploymentBase"]["href"].as_str()?;
        let tail = href.rsplit('/').next().unwrap();
        Some(tail.split('?').next().unwrap().parse().unwrap())
    }

    pub fn send(&self, method: &str, url: &str, body: &str) -> Answer {
        let req = match method {
            "PUT" => self.server.agent.put(url),
            _ => self.server.agent.post(url),
        };
        answer(
            req.header("Authorization", &self.auth)
                .header("Content-Type", "application/json")
                .send(body),
        )
    }

    pub fn config(&self, data: &Value) -> Answer {
        self.send(
            "PUT",
            &self.path("/configData"),
            &json!({"mode": "merge", "data": data}).to_string(),
        )
    }

    pub fn feedback(
        &self,
        action: i64,
        execution: &str,
        finished: &str,
        details: &[&str],
    ) -> Answer {
        let body = json!({"status": {"execution": execution, "result": {"finished": finished}, "details": details}});
        self.send(
            "POST",
            &self.path(&format!("/deploymentBase/{action}/feedback")),
            &body.to_string(),
        )
    }

    pub fn cancel_feedback(&self, action: i64, execution: &str, finished: &str) -> Answer {
        let body = json!({"status": {"execution": execution, "result": {"finished": finished}}});
        self.send(
            "POST",
            &self.path(&format!("/cancelAction/{action}/feedback")),
            &body.to_string(),
        )
    }

    /// Runs a deployment the way rustupdate's daemon does: fetch, progress, downloaded,
    /// then (after the reboot and commit) closed with `finished`.
    pub fn complete(&self, action: i64, finished: &str, details: &[&str]) {
        let d = self.get(&self.path(&format!("/deploymentBase/{action}")));
        assert_eq!(d.status, 200, "{d:?}");
        assert_eq!(
            self.feedback(action, "proceeding", "none", &["downloading"])
                .status,
            200
        );
        assert_eq!(self.feedback(action, "downloaded", "none", &[]).status, 200);
        let a = self.feedback(action, "closed", finished, details);
        assert_eq!(a.status, 200, "{a:?}");
    }
}

/// Runs each scenario once per backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::harness::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::harness::Backend::Postgres) })*
        }
    };
}
