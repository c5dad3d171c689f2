//! `trust …` end to end with real keys from `keygen` and an OpenSSL external signer: a document
//! made, signed offline and accepted; edits that raise the version and drop the signatures;
//! signers that are not root keys; a root rotation; a rollback; edits that break a rule.

use super::{ok, openssl, tool};
use std::path::Path;

fn keygen(names: &[&str], d: &Path) {
    for name in names {
        ok(&["keygen", "-o", name], d);
    }
}

fn document(d: &Path, file: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.join(file)).unwrap()).unwrap()
}

/// The key id of a public key file, as the tool names it (from a throwaway document).
fn id_of(d: &Path, public: &str) -> String {
    ok(
        &[
            "trust",
            "init",
            "-o",
            "probe.json",
            "--force",
            "--root-key",
            public,
            "--release-key",
            public,
        ],
        d,
    );
    document_ids(d, "probe.json").0[0].clone()
}

/// The root and release key ids of a document, from `inspect --json`.
fn document_ids(d: &Path, file: &str) -> (Vec<String>, Vec<String>) {
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["trust", "inspect", file, "--json"], d)).unwrap();
    let ids = |role: &str| -> Vec<String> {
        report[role]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    };
    (ids("root"), ids("release"))
}

fn fails(args: &[&str], d: &Path, code: i32, message: &str) {
    let out = tool(args, d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{message:?} in {stderr:?}");
}

#[test]
fn trust_init_sign_edit_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&["r1", "r2", "s1", "s2", "other"], d);
    let init = [
        "trust",
        "init",
        "-o",
        "t.json",
        "--root-key",
        "r1.pub.pem",
        "--root-key",
        "r2.pub.pem",
        "--root-threshold",
        "2",
        "--release-key",
        "s1.pub.pem",
    ];
    ok(&init, d);
    assert_eq!(document(d, "t.json")["signed"]["version"], 1);
    fails(&init, d, 2, "refusing to overwrite");

    // Unsigned: it parses (exit 0) and is not accepted as an image's document.
    let text = ok(&["trust", "inspect", "t.json"], d);
    assert!(text.contains("signatures:       none (UNSIGNED)"), "{text}");
    assert!(text.contains("image document:   NOT accepted"), "{text}");

    // Signed offline by 2 of 2 roots: accepted as an image document, by its own roots and by
    // the image's anchor.
    ok(
        &[
            "trust",
            "sign",
            "t.json",
            "--key",
            "r1.key.pem",
            "--key",
            "r2.key.pem",
        ],
        d,
    );
    let text = ok(&["trust", "inspect", "t.json"], d);
    assert!(text.contains("image document:   accepted"), "{text}");
    assert!(text.contains("(root): verifies"), "{text}");
    let anchored = [
        "trust",
        "inspect",
        "t.json",
        "--json",
        "--root-anchor",
        "r1.pub.pem",
        "--root-anchor",
        "r2.pub.pem",
        "--anchor-threshold",
        "2",
    ];
    let report: serde_json::Value = serde_json::from_str(&ok(&anchored, d)).unwrap();
    assert_eq!(report["image"]["accepted"], true);
    assert_eq!(report["ok"], true);
    assert_eq!(report["signatures"].as_array().unwrap().len(), 2);
    assert_eq!(report["signatures"][0]["verifies"], true);
    let anchored_by_other = [
        "trust",
        "inspect",
        "t.json",
        "--root-anchor",
        "other.pub.pem",
    ];
    fails(
        &anchored_by_other,
        d,
        1,
        "signed by 0 of the image's root keys",
    );
    std::fs::copy(d.join("t.json"), d.join("v1.json")).unwrap();

    // A key that is not a root key cannot sign; the file is unchanged.
    let before = std::fs::read(d.join("t.json")).unwrap();
    fails(
        &["trust", "sign", "t.json", "--key", "s1.key.pem"],
        d,
        2,
        "is not a root key",
    );
    assert_eq!(std::fs::read(d.join("t.json")).unwrap(), before);

    // Each edit raises the version by one and drops the signatures.
    ok(
        &["trust", "add-key", "t.json", "--release-key", "s2.pub.pem"],
        d,
    );
    let v2 = document(d, "t.json");
    assert_eq!(v2["signed"]["version"], 2);
    assert_eq!(v2["signatures"].as_array().unwrap().len(), 0);
    assert_eq!(v2["signed"]["release"]["keys"].as_array().unwrap().len(), 2);
    ok(
        &[
            "trust",
            "sign",
            "t.json",
            "--key",
            "r1.key.pem",
            "--key",
            "r2.key.pem",
        ],
        d,
    );
    let after_v1 = ["trust", "inspect", "t.json", "--previous", "v1.json"];
    let text = ok(&after_v1, d);
    assert!(text.contains("after previous:   accepted"), "{text}");
    std::fs::copy(d.join("t.json"), d.join("v2.json")).unwrap();

    let s1 = id_of(d, "s1.pub.pem");
    ok(&["trust", "revoke", "t.json", "--key", "s1.pub.pem"], d);
    let v3 = document(d, "t.json");
    assert_eq!(v3["signed"]["version"], 3);
    assert_eq!(v3["signatures"].as_array().unwrap().len(), 0);
    assert_eq!(v3["signed"]["revoked"], serde_json::json!([s1]));
    assert_eq!(v3["signed"]["release"]["keys"].as_array().unwrap().len(), 1);
    // Not signed again yet: a device holding v2 refuses it, with the reason.
    fails(
        &["trust", "inspect", "t.json", "--previous", "v2.json"],
        d,
        1,
        "signed by 0 of the current root keys, 2 needed",
    );

    ok(&["trust", "set-threshold", "t.json", "--root", "1"], d);
    let v4 = document(d, "t.json");
    assert_eq!(v4["signed"]["version"], 4);
    assert_eq!(v4["signed"]["root"]["threshold"], 1);
    ok(
        &[
            "trust",
            "set-threshold",
            "t.json",
            "--release",
            "1",
            "--version",
            "10",
        ],
        d,
    );
    assert_eq!(document(d, "t.json")["signed"]["version"], 10);
    fails(
        &[
            "trust",
            "set-threshold",
            "t.json",
            "--root",
            "2",
            "--version",
            "9",
        ],
        d,
        2,
        "version 9 is not higher than the document's version 10",
    );

    // Edits that break a rule fail with the rule and leave the file unchanged.
    let before = std::fs::read(d.join("t.json")).unwrap();
    fails(
        &["trust", "set-threshold", "t.json", "--release", "2"],
        d,
        2,
        "release threshold 2 is not between 1 and its 1 key(s)",
    );
    let s2 = id_of(d, "s2.pub.pem");
    fails(
        &["trust", "revoke", "t.json", "--key-id", &s2],
        d,
        2,
        "release threshold 1 is not between 1 and its 0 key(s)",
    );
    fails(
        &["trust", "revoke", "t.json", "--key-id", &s1],
        d,
        2,
        "already revoked",
    );
    fails(
        &[
            "trust",
            "remove-key",
            "t.json",
            "--root-key",
            "other.pub.pem",
        ],
        d,
        2,
        "the root role has no key",
    );
    fails(
        &["trust", "add-key", "t.json", "--release-key", "s1.pub.pem"],
        d,
        2,
        "is also revoked",
    );
    fails(
        &["trust", "revoke", "t.json", "--key-id", "xyz"],
        d,
        2,
        "not a key id",
    );
    assert_eq!(std::fs::read(d.join("t.json")).unwrap(), before);

    // A rollback: a device holding v2 refuses v1 (a lower version), with the reason.
    fails(
        &["trust", "inspect", "v1.json", "--previous", "v2.json"],
        d,
        1,
        "version 1 is not newer than the trusted version 2",
    );
    let report = tool(
        &[
            "trust",
            "inspect",
            "v1.json",
            "--previous",
            "v2.json",
            "--json",
        ],
        d,
    );
    assert_eq!(report.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["previous"]["accepted"], false);
    assert!(
        report["previous"]["reason"]
            .as_str()
            .unwrap()
            .contains("rollback")
    );

    // A file that is not a trust document: exit 1 with the reason.
    std::fs::write(d.join("bad.json"), "{").unwrap();
    fails(
        &["trust", "inspect", "bad.json"],
        d,
        1,
        "not a trust document",
    );
}

#[test]
fn trust_root_rotation_with_an_openssl_signer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&["r1", "s1"], d);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "hsm.pem"], d);
    openssl(&["pkey", "-in", "hsm.pem", "-pubout", "-out", "hsm.pub"], d);
    ok(
        &[
            "trust",
            "init",
            "-o",
            "t.json",
            "--root-key",
            "r1.pub.pem",
            "--release-key",
            "s1.pub.pem",
        ],
        d,
    );
    ok(&["trust", "sign", "t.json", "--key", "r1.key.pem"], d);
    std::fs::copy(d.join("t.json"), d.join("v1.json")).unwrap();

    // Rotate the root from r1 to the HSM key.
    ok(&["trust", "add-key", "t.json", "--root-key", "hsm.pub"], d);
    ok(
        &["trust", "remove-key", "t.json", "--root-key", "r1.pub.pem"],
        d,
    );
    assert_eq!(document(d, "t.json")["signed"]["version"], 3);
    // r1 is a root of the previous document only: it signs with --previous.
    fails(
        &["trust", "sign", "t.json", "--key", "r1.key.pem"],
        d,
        2,
        "give the old document with --previous",
    );
    let out = ok(
        &[
            "trust",
            "sign",
            "t.json",
            "--key",
            "r1.key.pem",
            "--previous",
            "v1.json",
        ],
        d,
    );
    assert!(out.contains("root key of the previous document"), "{out}");
    fails(
        &["trust", "inspect", "t.json", "--previous", "v1.json"],
        d,
        1,
        "signed by 0 of the new root keys, 1 needed",
    );

    // A signer that prints garbage is refused before anything is written.
    let before = std::fs::read(d.join("t.json")).unwrap();
    let garbage = [
        "trust",
        "sign",
        "t.json",
        "--public-key",
        "hsm.pub",
        "--signer-cmd",
        "echo nonsense",
    ];
    fails(&garbage, d, 2, "expected a raw 64-byte signature");
    assert_eq!(std::fs::read(d.join("t.json")).unwrap(), before);

    let signer = r#"f=$(mktemp); cat > "$f"; openssl pkeyutl -sign -rawin -inkey hsm.pem -in "$f"; rc=$?; rm -f "$f"; exit $rc"#;
    ok(
        &[
            "trust",
            "sign",
            "t.json",
            "--public-key",
            "hsm.pub",
            "--signer-cmd",
            signer,
        ],
        d,
    );
    let report: serde_json::Value = serde_json::from_str(&ok(
        &[
            "trust",
            "inspect",
            "t.json",
            "--previous",
            "v1.json",
            "--json",
        ],
        d,
    ))
    .unwrap();
    assert_eq!(report["previous"]["accepted"], true);
    assert_eq!(report["ok"], true);
    let roles: Vec<_> = report["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["roles"][0].as_str().unwrap().to_string(),
                s["verifies"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("previous root".to_string(), Some(true)),
            ("root".to_string(), Some(true))
        ]
    );
}

#[test]
fn build_embeds_a_trust_document_and_inspect_shows_its_version() {
    let (_dir, d) = super::setup();
    let d = d.as_path();
    keygen(&["root", "release"], d);
    ok(
        &[
            "trust",
            "init",
            "-o",
            "trust.json",
            "--root-key",
            "root.pub.pem",
            "--release-key",
            "release.pub.pem",
        ],
        d,
    );
    ok(&["trust", "sign", "trust.json", "--key", "root.key.pem"], d);
    let build = |document: &str, output: &str| {
        tool(
            &[
                "build",
                "--image",
                "rootfs.ext4",
                "--name",
                "img",
                "--version",
                "2",
                "--device-type",
                "board",
                "--key",
                "release.key.pem",
                "--trust-document",
                document,
                "-o",
                output,
            ],
            d,
        )
    };
    assert!(build("trust.json", "a.rua").status.success());
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "a.rua", "--json"], d)).unwrap();
    assert_eq!(report["trust-document-version"], 1);
    assert!(ok(&["inspect", "a.rua"], d).contains("trust document:   version 1"));
    let out = build("rootfs.ext4", "b.rua");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trust document"));
    assert!(!d.join("b.rua").exists());
}
