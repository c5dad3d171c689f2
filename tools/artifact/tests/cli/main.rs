//! The `rustupdate-artifact` binary end to end: keys, build, sign (own key and an OpenSSL external
//! signer), inspect, verify, the exit codes, and trust documents (`trust.rs`). OpenSSL is the
//! reference implementation of the key formats; the tests fail loudly if it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod encryption;
mod trust;

fn tool(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustupdate-artifact"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the tool")
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = tool(args, dir);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is required for these tests: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image with data, zeros and a partial last block.
fn write_image(path: &Path) {
    let mut image = Vec::new();
    for i in 0..300_000u32 {
        image.extend_from_slice(&(i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes());
    }
    image.resize(3 << 20, 0);
    image.extend_from_slice(b"tail");
    std::fs::write(path, image).unwrap();
}

/// `build` of the test image, signed by `k`, with `extra` options.
fn build_args<'a>(extra: &[&'a str], out: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "build",
        "--image",
        "rootfs.ext4",
        "--name",
        "n",
        "--version",
        "1",
        "--device-type",
        "b",
        "--key",
        "k.key.pem",
        "--created",
        "1",
        "-o",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("rootfs.ext4"));
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn keygen_build_sign_verify() {
    let (_guard, d) = setup();
    ok(&["keygen", "-o", "release"], &d);
    let mode = std::fs::metadata(d.join("release.key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "secret key must be private");
    // keygen never overwrites a key.
    assert_eq!(
        tool(&["keygen", "-o", "release"], &d).status.code(),
        Some(2)
    );

    let out = ok(
        &[
            "build",
            "--image",
            "rootfs.ext4",
            "--name",
            "demo",
            "--version",
            "1.2",
            "--device-type",
            "board-a",
            "--device-type",
            "board-b",
            "--security-version",
            "4",
            "--key",
            "release.key.pem",
            "-o",
            "demo.rua",
        ],
        &d,
    );
    assert!(out.contains("signed by"), "{out}");
    let verified = ok(&["verify", "demo.rua", "--key", "release.pub.pem"], &d);
    assert!(verified.contains("OK"), "{verified}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", "demo.rua"], &d)).unwrap();
    assert_eq!(json["version"], "1.2");
    assert_eq!(json["security-version"], 4);
    assert_eq!(
        json["compatible"],
        serde_json::json!(["board-a", "board-b"])
    );
    assert_eq!(json["payloads"][0]["size"], (3 << 20) + 4);
    assert_eq!(json["signatures"].as_array().unwrap().len(), 1);

    // A different key is not trusted: exit code 1 (rejected), not 2 (error).
    ok(&["keygen", "-o", "other"], &d);
    let out = tool(&["verify", "demo.rua", "--key", "other.pub.pem"], &d);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn unsigned_build_signed_later_by_openssl_external_signer() {
    let (_guard, d) = setup();
    ok(
        &[
            "build",
            "--image",
            "rootfs.ext4",
            "--name",
            "demo",
            "--version",
            "1",
            "--device-type",
            "b",
            "-o",
            "u.rua",
        ],
        &d,
    );
    ok(&["keygen", "-o", "own"], &d);
    // Unsigned artifacts are rejected by verify.
    assert_eq!(
        tool(&["verify", "u.rua", "--key", "own.pub.pem"], &d)
            .status
            .code(),
        Some(1)
    );
    let before = std::fs::read(d.join("u.rua")).unwrap();

    // A key made by OpenSSL, used through an external signer command (the HSM path).
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "hsm.pem"], &d);
    openssl(
        &["pkey", "-in", "hsm.pem", "-pubout", "-out", "hsm.pub"],
        &d,
    );
    let signer = r#"f=$(mktemp); cat > "$f"; openssl pkeyutl -sign -rawin -inkey hsm.pem -in "$f"; rc=$?; rm -f "$f"; exit $rc"#;
    ok(
        &[
            "sign",
            "u.rua",
            "--signer-cmd",
            signer,
            "--public-key",
            "hsm.pub",
            "-o",
            "s.rua",
        ],
        &d,
    );
    // The input is untouched when -o is given; the body is carried over byte for byte.
    assert_eq!(std::fs::read(d.join("u.rua")).unwrap(), before);
    let signed = std::fs::read(d.join("s.rua")).unwrap();
    assert_eq!(signed.len(), before.len() + 72);
    assert_eq!(
        &signed[signed.len() - 1000..],
        &before[before.len() - 1000..]
    );
    ok(&["verify", "s.rua", "--key", "hsm.pub"], &d);

    // A second, own-key signature in place; threshold 2 now passes with both keys trusted.
    ok(&["sign", "s.rua", "--key", "own.key.pem"], &d);
    ok(
        &[
            "verify",
            "s.rua",
            "--key",
            "hsm.pub",
            "--key",
            "own.pub.pem",
            "--threshold",
            "2",
        ],
        &d,
    );
    // Signing twice with the same key is refused.
    assert_eq!(
        tool(&["sign", "s.rua", "--key", "own.key.pem"], &d)
            .status
            .code(),
        Some(2)
    );
    // Our own PEM secret key is readable by OpenSSL too.
    openssl(&["pkey", "-in", "own.key.pem", "-noout"], &d);

    // A signer that prints garbage, or signs with the wrong key, is caught before anything is written.
    let out = tool(
        &[
            "sign",
            "u.rua",
            "--signer-cmd",
            "echo nonsense",
            "--public-key",
            "hsm.pub",
        ],
        &d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a raw 64-byte signature"));
    let wrong = r#"f=$(mktemp); cat > "$f"; openssl pkeyutl -sign -rawin -inkey hsm.pem -in "$f"; rm -f "$f""#;
    let out = tool(
        &[
            "sign",
            "u.rua",
            "--signer-cmd",
            wrong,
            "--public-key",
            "own.pub.pem",
        ],
        &d,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    assert_eq!(std::fs::read(d.join("u.rua")).unwrap(), before);
}

#[test]
fn tampered_artifact_is_rejected_with_exit_code_1() {
    let (_guard, d) = setup();
    ok(&["keygen", "-o", "k"], &d);
    ok(
        &build_args(
            &[
                "--format-version",
                "1",
                "--compression",
                "gzip",
                "--chunking",
                "fastcdc:4096:16384:65536",
            ],
            "a.rua",
        ),
        &d,
    );
    let mut bytes = std::fs::read(d.join("a.rua")).unwrap();
    let at = bytes.len() - 5000;
    bytes[at] ^= 0x40;
    std::fs::write(d.join("bad.rua"), &bytes).unwrap();
    let out = tool(&["verify", "bad.rua", "--key", "k.pub.pem", "--json"], &d);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .contains("payload \"rootfs\""),
        "{json}"
    );
    // Not an artifact at all: a clear error, exit 1 from verify.
    std::fs::write(d.join("junk.rua"), b"hello").unwrap();
    let out = tool(&["verify", "junk.rua", "--key", "k.pub.pem"], &d);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("truncated in the header"));
}

#[test]
fn bad_arguments_are_named() {
    let (_guard, d) = setup();
    let out = tool(
        &[
            "build",
            "--image",
            "rootfs.ext4",
            "--name",
            "n",
            "--version",
            "1",
            "--device-type",
            "b",
            "--chunking",
            "fixed:3",
            "-o",
            "x.rua",
        ],
        &d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fixed:3"));
    let out = tool(
        &[
            "build",
            "--image",
            "missing.img",
            "--name",
            "n",
            "--version",
            "1",
            "--device-type",
            "b",
            "-o",
            "x.rua",
        ],
        &d,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.img"));
    assert!(!d.join("x.rua").exists());
}

/// `delta` makes a patch from an image (or the artifact it came from) to a new artifact, reports
/// its size against the full artifact, and `inspect` shows the patch; a version 1 target is
/// refused with the reason.
#[test]
fn delta_patch_from_an_image_or_an_artifact() {
    let (_dir, d) = setup();
    ok(&["keygen", "-o", "k"], &d);
    let build = |image: &str, version: &str, out: &str, format: &str| {
        ok(
            &[
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
                "--format-version",
                format,
                "-o",
                out,
            ],
            &d,
        )
    };
    build("rootfs.ext4", "1", "v1.rua", "2");
    // The next release: one 4 KiB block changed, the rest as it was.
    let mut next = std::fs::read(d.join("rootfs.ext4")).unwrap();
    next[8192..8200].copy_from_slice(b"release2");
    std::fs::write(d.join("next.ext4"), &next).unwrap();
    build("next.ext4", "2", "v2.rua", "2");
    let full = std::fs::metadata(d.join("v2.rua")).unwrap().len();
    for base in ["rootfs.ext4", "v1.rua"] {
        let out = ok(
            &[
                "delta",
                "--base",
                base,
                "--target",
                "v2.rua",
                "--key",
                "k.pub.pem",
                "-o",
                "p.rudelta",
            ],
            &d,
        );
        assert!(out.contains("% of the full artifact"), "{out}");
        let patch = std::fs::metadata(d.join("p.rudelta")).unwrap().len();
        assert!(patch * 20 < full, "patch {patch} bytes, artifact {full}");
    }
    let shown = ok(&["inspect", "p.rudelta"], &d);
    assert!(
        shown.contains("delta patch:") && shown.contains("segments:"),
        "{shown}"
    );
    build("next.ext4", "2", "v2-format1.rua", "1");
    let out = tool(
        &[
            "delta",
            "--base",
            "rootfs.ext4",
            "--target",
            "v2-format1.rua",
            "-o",
            "x.rudelta",
        ],
        &d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("format version 2"));
}

/// `delta --base-index`: a patch from a device's block index (what `rustupdate index` writes).
#[test]
fn delta_patch_from_a_block_index() {
    let (_dir, d) = setup();
    ok(&["keygen", "-o", "k"], &d);
    let mut next = std::fs::read(d.join("rootfs.ext4")).unwrap();
    next[8192..8200].copy_from_slice(b"release2");
    std::fs::write(d.join("next.ext4"), &next).unwrap();
    ok(
        &[
            "build",
            "--image",
            "next.ext4",
            "--name",
            "n",
            "--version",
            "2",
            "--device-type",
            "b",
            "--key",
            "k.key.pem",
            "-o",
            "v2.rua",
        ],
        &d,
    );
    let base = std::fs::read(d.join("rootfs.ext4")).unwrap();
    let index = rustupdate_delta::BlockIndex::of(&mut &base[..], base.len() as u64).unwrap();
    std::fs::write(d.join("dev.ruindex"), index.to_bytes().unwrap()).unwrap();
    let out = ok(
        &[
            "delta",
            "--base-index",
            "dev.ruindex",
            "--target",
            "v2.rua",
            "-o",
            "p.rudelta",
        ],
        &d,
    );
    assert!(out.contains("copied from the base"), "{out}");
    let shown = ok(&["inspect", "p.rudelta"], &d);
    assert!(
        shown.contains(&format!("sha256 {}", "0".repeat(64))),
        "{shown}"
    );
    let out = tool(&["delta", "--target", "v2.rua", "-o", "x.rudelta"], &d);
    assert_eq!(
        out.status.code(),
        Some(2),
        "neither --base nor --base-index"
    );
}
