//! HTTPS with rustls: the server speaks TLS only when given a certificate and key.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serves_https_only_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    // A CA and a server certificate for 127.0.0.1 signed by it, as a real deployment has.
    let ca = dir.path().join("ca.pem");
    let ca_key = dir.path().join("ca.key");
    let csr = dir.path().join("server.csr");
    let ext = dir.path().join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let p = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for args in [
        [
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-days",
                "1",
                "-subj",
                "/CN=test CA",
                "-keyout",
                &p(&ca_key),
                "-out",
                &p(&ca),
            ][..],
        ]
        .concat(),
        [
            &["req"][..],
            &ec[..],
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &p(&key),
                "-out",
                &p(&csr),
            ][..],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ],
    ] {
        let made = Command::new("openssl")
            .args(&args)
            .stderr(Stdio::null())
            .status()
            .expect("openssl (Debian package openssl) makes the test certificates");
        assert!(made.success(), "openssl {args:?}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rustupdate-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pem = std::fs::read(&ca).unwrap();
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match agent
            .get(&format!("https://127.0.0.1:{port}/healthz"))
            .call()
        {
            Ok(mut r) => break r.body_mut().read_to_string().unwrap(),
            Err(e) => {
                assert!(Instant::now() < deadline, "no HTTPS answer: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(body.contains("\"ok\""), "{body}");
    // Plain HTTP to the same port gets no HTTP answer.
    let plain = crate::harness::agent()
        .get(&format!("http://127.0.0.1:{port}/healthz"))
        .call();
    assert!(plain.is_err() || plain.unwrap().status().as_u16() >= 400);
    let _ = child.kill();
    let _ = child.wait();
}
