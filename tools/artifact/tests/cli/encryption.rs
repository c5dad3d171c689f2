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

/// `delta --decryption-key`: the patch of an encrypted release is made from the opened target
/// (and an encrypted base) and sealed; `inspect` shows its clear header only; a device with the
/// content key rebuilds the target from it. Without the key the tool refuses, naming the option.
#[test]
fn the_patch_of_an_encrypted_release_is_sealed() {
    let (_guard, d) = setup();
    ok(&["keygen", "-o", "k"], &d);
    ok(&["keygen", "--recipient", "-o", "dev"], &d);
    let mut next = std::fs::read(d.join("rootfs.ext4")).unwrap();
    next[8192..8200].copy_from_slice(b"release2");
    std::fs::write(d.join("next.ext4"), &next).unwrap();
    for (image, version, out) in [("rootfs.ext4", "1", "e1.rua"), ("next.ext4", "2", "e2.rua")] {
        let args = [
            "build",
            "--image",
            image,
            "--name",
            "n",
            "--version",
            version,
            "--device-type",
            "b",
            "--key",
            "k.key.pem",
            "--encrypt-to",
            "dev.pub.pem",
            "-o",
            out,
        ];
        ok(&args, &d);
    }
    let delta = |extra: &[&str]| {
        let mut args = vec![
            "delta",
            "--base",
            "e1.rua",
            "--target",
            "e2.rua",
            "-o",
            "p.rudelta",
        ];
        args.extend_from_slice(extra);
        tool(&args, &d)
    };
    let refused = delta(&[]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("give --decryption-key"), "{stderr}");
    let made = delta(&["--decryption-key", "dev.key.pem"]);
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(stdout.contains("sealed for the recipients"), "{stdout}");

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "p.rudelta", "--json"], &d)).unwrap();
    assert_eq!(inspect["sealed"], true, "{inspect}");
    let patch = std::fs::read(d.join("p.rudelta")).unwrap();
    assert_eq!(inspect["file-size"], patch.len() as u64);

    // The device's side: unwrap the content key, rebuild the image from the base.
    let artifact = std::fs::read(d.join("e2.rua")).unwrap();
    let secret = rustupdate_seal::RecipientSecretKey::from_pem(
        &std::fs::read_to_string(d.join("dev.key.pem")).unwrap(),
    )
    .unwrap();
    let policy = rustupdate_verify::SignaturePolicy::dangerous_accept_unsigned();
    let mut opened =
        rustupdate_verify::VerifiedArtifact::open(&artifact[..], &Default::default(), &policy)
            .unwrap();
    opened.unlock(Some(&secret)).unwrap();
    let base = std::fs::read(d.join("rootfs.ext4")).unwrap();
    let mut rebuilt = rustupdate_delta::DeltaPayload::open_with_key(
        opened.head(),
        std::io::Cursor::new(&patch),
        &base[..],
        false,
        opened.content_key(),
    )
    .unwrap();
    let image = rustupdate_testkit::read_image(&mut rebuilt).unwrap();
    assert_eq!(image, next);
}
