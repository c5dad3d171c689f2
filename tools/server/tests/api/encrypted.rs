//! Encrypted releases (docs/encryption.md): the server holds no recipient key, yet checks an
//! upload's signatures and every sealed byte against its signed digests, so it accepts an
//! encrypted release and refuses one altered in transit, naming the sealed part. It cannot build
//! a patch of an encrypted release (the job fails saying so), but files and offers the sealed
//! patch a release pipeline made.

use crate::harness::{BOARD, Backend, Server, release_key};
use crate::on_both_backends;

on_both_backends!(
    an_encrypted_release_is_checked_without_a_recipient_key,
    a_sealed_patch_from_the_release_pipeline_is_filed_and_offered,
);

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

/// The server cannot open a sealed patch (of an encrypted release): it files one whose clear
/// header names the target and a base it holds and whose length is whole sealed blocks, refuses
/// the rest naming why, and offers it like any patch; the device's content key opens it.
fn a_sealed_patch_from_the_release_pipeline_is_filed_and_offered(backend: Backend) {
    use crate::deltas::{
        deployment, download, images, release_of, report_base, sha256_hex, upload, upload_patch,
    };
    let server = Server::start(backend);
    let (v1, v2) = images();
    let v3 = rustupdate_testkit::next_release(&v2, 9);
    let recipient = rustupdate_testkit::recipient(5);
    let public = [recipient.public()];
    let encrypted = |version, image: &[u8]| {
        let spec = rustupdate_testkit::ArtifactSpec {
            version,
            compatible: &[BOARD],
            encrypt_to: &public,
            ..Default::default()
        };
        rustupdate_testkit::artifact(&spec, image, &[&release_key()])
    };
    let (a1, a2, a3) = (
        release_of("1.0", &v1),
        encrypted("2.0", &v2),
        encrypted("3.0", &v3),
    );
    upload(&server, &a1);
    let v2_id = upload(&server, &a2);
    let v3_id = upload(&server, &a3);

    // The pipeline: opens the release with a recipient key, makes the patch, seals it.
    let policy = rustupdate_verify::SignaturePolicy::dangerous_accept_unsigned();
    let keyring = rustupdate_verify::Keyring::new();
    let mut opened = rustupdate_verify::VerifiedArtifact::open(&a2[..], &keyring, &policy).unwrap();
    opened.unlock(Some(&recipient)).unwrap();
    let key = opened.content_key().cloned().unwrap();
    let head = opened.head().clone();
    let mut payload = opened.next_payload().unwrap().unwrap();
    let mut clear = Vec::new();
    rustupdate_delta::build_patch(
        &head,
        &mut payload,
        rustupdate_delta::Base::Image(&v1),
        &rustupdate_delta::BuildOptions::default(),
        &mut clear,
        &mut |_, _| {},
    )
    .unwrap();
    let mut sealed = Vec::new();
    rustupdate_delta::seal_patch(&key, &clear, &mut sealed).unwrap();

    for (target, patch, reason) in [
        (v2_id, &clear[..], "a clear patch for an encrypted artifact"),
        (v3_id, &sealed[..], "made for another artifact"),
        (
            v2_id,
            &sealed[..96 + 32 + 10],
            "no sealed patch (cut short)",
        ),
    ] {
        let a = upload_patch(&server, target, patch);
        assert_eq!(a.status, 400, "{reason}: {a:?}");
        assert!(a.text.contains(reason), "{reason}: {a:?}");
    }
    let a = upload_patch(&server, v2_id, &sealed);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body[0]["origin"], "uploaded", "{a:?}");
    assert_eq!(a.body[0]["state"], "ready", "{a:?}");

    let device = server.device("on-1.0");
    report_base(&device, &v1);
    server.rollout(v2_id, "100", "50");
    let action = device.offered_action().expect("offered");
    let (_, offered) = deployment(&device, action);
    let offered = offered.expect("the sealed patch is offered");
    assert_eq!(offered["hashes"]["sha256"], sha256_hex(&sealed));
    let (status, bytes) = download(&device, &offered, None);
    assert_eq!((status, &bytes), (200, &sealed));
    // What the device does with it: opened with the content key, it rebuilds v2.
    let mut rebuilt = rustupdate_delta::DeltaPayload::open_with_key(
        &head,
        std::io::Cursor::new(&bytes),
        &v1[..],
        false,
        Some(&key),
    )
    .unwrap();
    let image = rustupdate_testkit::read_image(&mut rebuilt).unwrap();
    assert_eq!(image, v2);
}
