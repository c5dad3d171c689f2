//! The trust rules on real ed25519 signatures: key rotation and revocation, threshold changes,
//! root rotation, replays and rollbacks, altered and under-signed documents, and artifacts
//! signed by revoked keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use rustupdate_testkit::key;
use rustupdate_trust::document::{DOCUMENT_TYPE, MAX_DOCUMENT_BYTES};
use rustupdate_trust::{Document, ParseError, Role, Signed, TrustError, Trusted, release_check};
use rustupdate_verify::{SecretKey, SignatureEntry};

fn role(threshold: usize, keys: &[&SecretKey]) -> Role {
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    Role::of(threshold, &public)
}

fn signed(version: u64, root: Role, release: Role, revoked: &[&SecretKey]) -> Signed {
    Signed {
        kind: DOCUMENT_TYPE.into(),
        version,
        root,
        release,
        revoked: revoked
            .iter()
            .map(|k| k.public_key().id().to_string())
            .collect(),
    }
}

fn sign(signed: Signed, by: &[&SecretKey]) -> Document {
    let mut document = Document::unsigned(signed);
    let message = document.signed.signing_message();
    for key in by {
        document.add_signature(key.public_key().id(), &key.sign(&message));
    }
    // Through the file format, as a device reads it.
    Document::parse(&document.to_bytes()).unwrap()
}

struct Keys {
    roots: [SecretKey; 3],
    releases: [SecretKey; 3],
}

fn keys() -> Keys {
    Keys {
        roots: [key(101), key(102), key(103)],
        releases: [key(201), key(202), key(203)],
    }
}

/// Version 1: roots r0, r1 (2 of 2), release key s0.
fn genesis(k: &Keys) -> (Role, Trusted) {
    let anchor = role(2, &[&k.roots[0], &k.roots[1]]);
    let doc = sign(
        signed(1, anchor.clone(), role(1, &[&k.releases[0]]), &[]),
        &[&k.roots[0], &k.roots[1]],
    );
    (anchor.clone(), Trusted::from_image(&anchor, doc).unwrap())
}

fn artifact_signatures(manifest: &[u8], by: &[&SecretKey]) -> Vec<SignatureEntry> {
    let message = rustupdate_format::signing_message(manifest);
    by.iter()
        .map(|k| SignatureEntry {
            key_id: k.public_key().id(),
            signature: k.sign(&message),
        })
        .collect()
}

#[test]
fn add_a_release_key_then_revoke_the_old_one_then_raise_the_threshold() {
    let k = keys();
    let (_, v1) = genesis(&k);
    let roots = [&k.roots[0], &k.roots[1]];
    let root = v1.document().signed.root.clone();
    let manifest = b"manifest";
    let by_old = artifact_signatures(manifest, &[&k.releases[0]]);
    let by_new = artifact_signatures(manifest, &[&k.releases[1]]);
    assert!(release_check(&v1, manifest, &by_old).is_ok());
    assert!(release_check(&v1, manifest, &by_new).is_err());

    let v2 = v1
        .accept(sign(
            signed(
                2,
                root.clone(),
                role(1, &[&k.releases[0], &k.releases[1]]),
                &[],
            ),
            &roots,
        ))
        .unwrap();
    assert!(release_check(&v2, manifest, &by_old).is_ok());
    assert!(release_check(&v2, manifest, &by_new).is_ok());

    let v3 = v2
        .accept(sign(
            signed(
                3,
                root.clone(),
                role(1, &[&k.releases[1]]),
                &[&k.releases[0]],
            ),
            &roots,
        ))
        .unwrap();
    let err = release_check(&v3, manifest, &by_old).unwrap_err();
    assert!(matches!(
        err,
        TrustError::Release(rustupdate_verify::Error::RevokedSigners { ref revoked, .. })
            if revoked == &[k.releases[0].public_key().id()]
    ));
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(release_check(&v3, manifest, &by_new).is_ok());

    let v4 = v3
        .accept(sign(
            signed(
                4,
                root,
                role(2, &[&k.releases[1], &k.releases[2]]),
                &[&k.releases[0]],
            ),
            &roots,
        ))
        .unwrap();
    assert!(
        release_check(&v4, manifest, &by_new).is_err(),
        "one of two is not enough"
    );
    let both = artifact_signatures(manifest, &[&k.releases[1], &k.releases[2]]);
    assert_eq!(release_check(&v4, manifest, &both).unwrap().len(), 2);
}

#[test]
fn root_rotation_needs_the_old_and_the_new_threshold() {
    let k = keys();
    let (_, v1) = genesis(&k);
    let release = role(1, &[&k.releases[0]]);
    // Replace r0 with r2: new root set r1, r2 (2 of 2).
    let new_root = role(2, &[&k.roots[1], &k.roots[2]]);
    let only_old = sign(
        signed(2, new_root.clone(), release.clone(), &[&k.roots[0]]),
        &[&k.roots[0], &k.roots[1]],
    );
    assert!(matches!(
        v1.accept(only_old),
        Err(TrustError::NotEnoughSignatures {
            role: "new root",
            valid: 1,
            ..
        })
    ));
    let only_new = sign(
        signed(2, new_root.clone(), release.clone(), &[]),
        &[&k.roots[1], &k.roots[2]],
    );
    assert!(matches!(
        v1.accept(only_new),
        Err(TrustError::NotEnoughSignatures {
            role: "current root",
            valid: 1,
            ..
        })
    ));
    // Signed by r0, r1 (old) and r1, r2 (new); r0 revoked in the new document.
    let both = sign(
        signed(2, new_root.clone(), release.clone(), &[&k.roots[0]]),
        &[&k.roots[0], &k.roots[1], &k.roots[2]],
    );
    let v2 = v1.accept(both).unwrap();
    // The next document is signed by the new roots alone; the revoked r0 counts for nothing.
    let v3 = v2
        .accept(sign(
            signed(3, new_root.clone(), release.clone(), &[&k.roots[0]]),
            &[&k.roots[1], &k.roots[2]],
        ))
        .unwrap();
    assert_eq!(v3.version(), 3);
    let by_revoked_root = sign(
        signed(4, new_root, release, &[]),
        &[&k.roots[0], &k.roots[1]],
    );
    assert!(matches!(
        v3.accept(by_revoked_root),
        Err(TrustError::NotEnoughSignatures { valid: 1, .. })
    ));
}

#[test]
fn replays_rollbacks_and_under_signed_or_altered_documents_are_refused() {
    let k = keys();
    let (anchor, v1) = genesis(&k);
    let roots = [&k.roots[0], &k.roots[1]];
    let release = role(1, &[&k.releases[0]]);
    let again = sign(signed(1, anchor.clone(), release.clone(), &[]), &roots);
    assert!(matches!(
        v1.accept(again),
        Err(TrustError::NotNewer {
            trusted: 1,
            offered: 1
        })
    ));
    let v5 = v1
        .accept(sign(
            signed(5, anchor.clone(), release.clone(), &[]),
            &roots,
        ))
        .unwrap();
    let older = sign(signed(4, anchor.clone(), release.clone(), &[]), &roots);
    let err = v5.accept(older).unwrap_err();
    assert!(err.to_string().contains("not newer"), "{err}");

    let one_root = sign(
        signed(6, anchor.clone(), release.clone(), &[]),
        &[&k.roots[0]],
    );
    assert!(matches!(
        v5.accept(one_root),
        Err(TrustError::NotEnoughSignatures {
            valid: 1,
            required: 2,
            ..
        })
    ));
    // A release key (or any other) cannot sign a document.
    let by_release = sign(
        signed(6, anchor.clone(), release.clone(), &[]),
        &[&k.roots[0], &k.releases[0]],
    );
    assert!(v5.accept(by_release).is_err());
    // The same root signing twice counts once.
    let mut twice = sign(
        signed(6, anchor.clone(), release.clone(), &[]),
        &[&k.roots[0]],
    );
    twice.signatures.push(twice.signatures[0].clone());
    assert!(matches!(
        v5.accept(twice),
        Err(TrustError::NotEnoughSignatures { valid: 1, .. })
    ));
    // Altered after signing: the version raised in the file.
    let signed_doc = sign(signed(6, anchor.clone(), release.clone(), &[]), &roots);
    let altered = String::from_utf8(signed_doc.to_bytes())
        .unwrap()
        .replace("\"version\": 6", "\"version\": 7");
    let err = v5
        .accept(Document::parse(altered.as_bytes()).unwrap())
        .unwrap_err();
    assert!(matches!(err, TrustError::BadSignature(_)), "{err}");
    // A torn copy does not parse; a kept copy must carry its own roots' signatures.
    let bytes = signed_doc.to_bytes();
    assert!(Document::parse(&bytes[..bytes.len() / 2]).is_err());
    assert!(Trusted::kept(signed_doc).is_ok());
    let unsigned = Document::unsigned(signed(6, anchor, release, &[]));
    assert!(Trusted::kept(unsigned).is_err());
}

#[test]
fn the_image_document_must_be_signed_by_the_image_roots() {
    let k = keys();
    let anchor = role(2, &[&k.roots[0], &k.roots[1]]);
    let release = role(1, &[&k.releases[0]]);
    let foreign = role(1, &[&k.roots[2]]);
    let self_signed = sign(signed(1, foreign, release, &[]), &[&k.roots[2]]);
    assert!(matches!(
        Trusted::from_image(&anchor, self_signed),
        Err(TrustError::NotEnoughSignatures {
            role: "image's root",
            valid: 0,
            ..
        })
    ));
}

#[test]
fn structural_errors_name_the_problem() {
    let k = keys();
    let good = sign(
        signed(1, role(1, &[&k.roots[0]]), role(1, &[&k.releases[0]]), &[]),
        &[&k.roots[0]],
    );
    let text = String::from_utf8(good.to_bytes()).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            text.replace("\"threshold\": 1", "\"threshold\": 0"),
            "threshold 0",
        ),
        (
            text.replace("\"threshold\": 1", "\"threshold\": 2"),
            "threshold 2",
        ),
        (text.replace("rustupdate-trust", "other"), "type is"),
        (
            text.replace("\"version\"", "\"extra\": 1, \"version\""),
            "unknown field",
        ),
        (
            text.replacen("\"keys\": [\n", "\"keys\": [\n      \"zz\",\n", 1),
            "not a hex ed25519",
        ),
        (String::from("{"), "not a trust document"),
    ];
    for (bytes, expected) in cases {
        let err = Document::parse(bytes.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} in {err:?}");
    }
    let revoked_in_role = Signed {
        revoked: vec![k.releases[0].public_key().id().to_string()],
        ..good.signed.clone()
    };
    assert!(matches!(
        revoked_in_role.check(),
        Err(ParseError::RevokedInRole {
            role: "release",
            ..
        })
    ));
    let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(
        Document::parse(&huge),
        Err(ParseError::TooLarge(_))
    ));
}
