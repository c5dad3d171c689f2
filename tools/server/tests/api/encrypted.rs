//! Encrypted releases (docs/encryption.md): the server holds no recipient key, yet checks an
//! upload's signatures and every sealed byte against its signed digests, so it accepts an
//! encrypted release and refuses one altered in transit, naming the sealed part. It cannot build
//! a patch of an encrypted release: the job fails saying so.

use crate::harness::{BOARD, Backend, Server, release_key};
use crate::on_both_backends;

on_both_backends!(an_encrypted_release_is_checked_without_a_recipient_key);

fn an_encrypted_release_is_checked_without_a_recipient_key(backend: Backend) {
    let server = Server::start(backend);
    let recipient = rustupdate_testkit::recipient(5).public();
    let spec = rustupdate_testkit::ArtifactSpec {
        version: "3.0",
        compatible: &[BOARD],
        encrypt_to: std::slice::from_ref(&recipient),
        ..Default::default()
    };
    let image = rustupdate_testkit::pseudo_random(300_000, 3);
    let sealed = rustupdate_testkit::artifact(&spec, &image, &[&release_key()]);

    let mut altered = sealed.clone();
    let at = altered.len() - 100;
    altered[at] ^= 0x20;
    let a = server.upload(&altered, "");
    assert_eq!(a.status, 400, "{a:?}");
    let error = a.body["error"].as_str().unwrap();
    assert!(
        error.starts_with("artifact rejected") && error.contains("data-sha256"),
        "{a:?}"
    );

    let a = server.upload(&sealed, "");
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["version"], "3.0", "{a:?}");
    let sealed_id = a.body["id"].as_i64().unwrap();

    let clear_spec = rustupdate_testkit::ArtifactSpec {
        version: "2.0",
        compatible: &[BOARD],
        ..Default::default()
    };
    let base = rustupdate_testkit::artifact(&clear_spec, &image[..200_000], &[&release_key()]);
    let base_id = server.upload(&base, "").body["id"].as_i64().unwrap();
    let path = format!("/api/v1/artifacts/{sealed_id}/deltas");
    let a = server.admin_post(&path, &serde_json::json!({"base_artifact_id": base_id}));
    assert_eq!(a.status, 201, "{a:?}");
    let patches = crate::deltas::settled_patches(&server, sealed_id);
    assert_eq!(patches[0]["state"], "failed", "{patches:?}");
    let reason = patches[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the target artifact is encrypted"),
        "{reason}"
    );
}
