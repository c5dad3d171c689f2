//! The daemon against servers that fail or must be trusted with care: exponential backoff on a
//! server that answers 500, a token file readable by others refused, and TLS with a private CA
//! and client certificates (refused without them).

use crate::fleet_server::{STARTUP, server_binary};
use crate::rig::{Rig, tool};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
