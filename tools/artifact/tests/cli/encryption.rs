//! Encrypted artifacts end to end (docs/encryption.md): `keygen --recipient` keys that OpenSSL
//! reads (and an OpenSSL-made recipient key the tool reads), `build --encrypt-to` to two
//! recipients, `inspect` naming them, `verify` of the sealed bytes without a key, of the contents
//! with each recipient's key, and refusals naming the problem.

use super::{build_args, ok, openssl, setup, tool};
use std::path::Path;

fn verify(args: &[&str], d: &Path) -> (i32, serde_json::Value) {
    let mut all = vec!["verify", "--key", "k.pub.pem", "--json"];
    all.extend_from_slice(args);
    let out = tool(&all, d);
    let json = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), json)
}

#[test]
fn encrypt_to_two_recipients_inspect_and_verify() {
    let (_guard, d) = setup();
    ok(&["keygen", "-o", "k"], &d);
    let made = ok(&["keygen", "--recipient", "-o", "dev"], &d);
    assert!(made.contains("recipient key id"), "{made}");
    // OpenSSL derives the same public key from the secret the tool wrote ...
    openssl(
        &[
            "pkey",
            "-in",
            "dev.key.pem",
            "-pubout",
            "-out",
            "dev.openssl.pub.pem",
        ],
        &d,
    );
    assert_eq!(
        std::fs::read(d.join("dev.openssl.pub.pem")).unwrap(),
        std::fs::read(d.join("dev.pub.pem")).unwrap()
    );
    // ... and the tool takes a recipient key OpenSSL made.
    openssl(
        &["genpkey", "-algorithm", "x25519", "-out", "other.key.pem"],
        &d,
    );
    openssl(
        &[
            "pkey",
            "-in",
            "other.key.pem",
            "-pubout",
            "-out",
            "other.pub.pem",
        ],
        &d,
    );
    ok(&["keygen", "--recipient", "-o", "stranger"], &d);
    let build = |extra: &[&str], out: &str| ok(&build_args(extra, out), &d);
    let said = build(
        &[
            "--encrypt-to",
            "dev.pub.pem",
            "--encrypt-to",
            "other.pub.pem",
        ],
        "e.rua",
    );
    assert!(said.contains("encrypted to 2 recipient(s)"), "{said}");
    build(&[], "c.rua");
    let (clear, sealed) = (
        std::fs::metadata(d.join("c.rua")).unwrap().len(),
        std::fs::metadata(d.join("e.rua")).unwrap().len(),
    );
    // Two recipients' stanzas, a tag per table and per 64 KiB block, a digest per frame.
    assert!(
        sealed > clear && sealed - clear < 2048,
        "{clear} -> {sealed}"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "e.rua", "--json"], &d)).unwrap();
    assert_eq!(
        inspect["encrypted-to"].as_array().unwrap().len(),
        2,
        "{inspect}"
    );

    let (code, json) = verify(&["e.rua"], &d);
    assert_eq!(code, 0, "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("contents not opened"),
        "{json}"
    );
    for key in ["dev.key.pem", "other.key.pem"] {
        let (code, json) = verify(&["e.rua", "--decryption-key", key], &d);
        assert_eq!(code, 0, "{key}: {json}");
        assert!(
            json["detail"]
                .as_str()
                .unwrap()
                .contains("image bytes verified"),
            "{json}"
        );
    }
    let (code, json) = verify(&["e.rua", "--decryption-key", "stranger.key.pem"], &d);
    assert_eq!(code, 1, "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("is not one of them"),
        "{json}"
    );

    // One byte of the sealed body changed: caught with and without a key.
    let mut bytes = std::fs::read(d.join("e.rua")).unwrap();
    let at = bytes.len() - 3000;
    bytes[at] ^= 0x04;
    std::fs::write(d.join("bad.rua"), &bytes).unwrap();
    let (code, json) = verify(&["bad.rua"], &d);
    assert_eq!(code, 1, "{json}");
    assert!(
        json["detail"].as_str().unwrap().contains("data-sha256"),
        "{json}"
    );
    let (code, json) = verify(&["bad.rua", "--decryption-key", "dev.key.pem"], &d);
    assert_eq!(code, 1, "{json}");
    assert!(
        json["detail"].as_str().unwrap().contains("does not open"),
        "{json}"
    );

    // A signing key is no recipient key, and version 1 cannot be encrypted.
    for (extra, message) in [
        (&["--encrypt-to", "k.pub.pem"][..], "not X25519"),
        (
            &["--encrypt-to", "dev.pub.pem", "--format-version", "1"][..],
            "needs format version 2",
        ),
    ] {
        let out = tool(&build_args(extra, "x.rua"), &d);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{message:?} in {stderr}");
    }
}
