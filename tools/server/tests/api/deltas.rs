//! Delta patches through the fleet (issue 21): the server builds the patch of a new release from
//! the release devices report they run, offers it beside the artifact only to devices that take
//! deltas, serves it with Range, counts what each action downloaded and why a device fell back.

use crate::harness::{BOARD, Backend, Device, Server, release_key};
use crate::on_both_backends;
use rustupdate_delta::DeltaPayload;
use rustupdate_verify::{ChunkData, ChunkSource, Keyring, SignaturePolicy, read_verified_head};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

on_both_backends!(
    a_device_on_a_known_release_is_offered_a_patch_the_server_built,
    patches_from_a_release_pipeline_are_checked_before_they_are_offered,
    a_base_reported_after_the_rollout_started_gets_its_patch_and_fallbacks_are_counted,
    operators_name_bases_and_failed_jobs_say_why,
);

const IMAGE_LEN: usize = 1 << 20;

/// Two releases of one file-system-like image, as a small update changes it.
pub(crate) fn images() -> (Vec<u8>, Vec<u8>) {
    let v1 = rustupdate_testkit::fs_image(IMAGE_LEN, 7);
    let v2 = rustupdate_testkit::next_release(&v1, 8);
    (v1, v2)
}

pub(crate) fn release_of(version: &str, image: &[u8]) -> Vec<u8> {
    let spec = rustupdate_testkit::ArtifactSpec {
        version,
        compatible: &[BOARD],
        ..Default::default()
    };
    rustupdate_testkit::artifact(&spec, image, &[&release_key()])
}

/// A patch that rebuilds `target` (an artifact's bytes) from the image `base`, as
/// `rustupdate-artifact delta` makes it.
pub fn patch_of(target: &[u8], base: &[u8]) -> Vec<u8> {
    let policy = SignaturePolicy::dangerous_accept_unsigned();
    let mut artifact =
        rustupdate_verify::VerifiedArtifact::open(target, &Keyring::new(), &policy).unwrap();
    let head = artifact.head().clone();
    let mut payload = artifact.next_payload().unwrap().unwrap();
    let mut out = Vec::new();
    rustupdate_delta::build_patch(
        &head,
        &mut payload,
        rustupdate_delta::Base::Image(base),
        &rustupdate_delta::BuildOptions::default(),
        &mut out,
        &mut |_, _| {},
    )
    .unwrap();
    out
}

/// Uploads a patch of artifact `target` made by a release pipeline.
pub(crate) fn upload_patch(server: &Server, target: i64, patch: &[u8]) -> crate::harness::Answer {
    crate::harness::answer(
        server
            .agent
            .post(&server.url(&format!("/api/v1/artifacts/{target}/patch")))
            .header("Authorization", &format!("Bearer {}", server.admin))
            .header("Content-Type", "application/octet-stream")
            .send(patch),
    )
}

/// The status the server answers a patch upload that declares `length` bytes and sends none.
fn declared_upload_status(server: &Server, target: i64, length: usize) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v1/artifacts/{target}/patch HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n",
        server.addr(),
        server.admin
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

pub(crate) fn upload(server: &Server, bytes: &[u8]) -> i64 {
    let a = server.upload(bytes, "");
    assert!(a.status == 201 || a.status == 200, "upload: {a:?}");
    a.body["id"].as_i64().unwrap()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reports the inventory of a rustupdate device that runs `image` as its committed release.
pub(crate) fn report_base(device: &Device, image: &[u8]) {
    let a = device.config(&json!({
        "accepts_delta": "known-base",
        "running_image_sha256": sha256_hex(image),
    }));
    assert_eq!(a.status, 200, "{a:?}");
}

/// The artifact's patches once none is queued or building (bounded wait).
pub(crate) fn settled_patches(server: &Server, artifact: i64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = server.admin_get(&format!("/api/v1/artifacts/{artifact}/deltas"));
        assert_eq!(a.status, 200, "{a:?}");
        let patches = a.body.as_array().unwrap().clone();
        let busy = patches
            .iter()
            .any(|p| p["state"] == "queued" || p["state"] == "building");
        if !patches.is_empty() && !busy {
            return patches;
        }
        assert!(
            Instant::now() < deadline,
            "patches of {artifact} still not built: {patches:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The deployment of `action` as the device gets it: (artifact, patch if offered).
pub(crate) fn deployment(device: &Device, action: i64) -> (Value, Option<Value>) {
    let d = device.get(&device.path(&format!("/deploymentBase/{action}")));
    assert_eq!(d.status, 200, "{d:?}");
    let artifacts = d.body["deployment"]["chunks"][0]["artifacts"]
        .as_array()
        .unwrap()
        .clone();
    let full = artifacts
        .iter()
        .find(|a| a["filename"].as_str().unwrap().ends_with(".rua"))
        .cloned()
        .expect("the .rua is offered");
    let patch = artifacts
        .iter()
        .find(|a| a["filename"].as_str().unwrap().ends_with(".rudelta"))
        .cloned();
    assert_eq!(
        artifacts.len(),
        1 + usize::from(patch.is_some()),
        "{artifacts:?}"
    );
    (full, patch)
}

/// Downloads a deployment artifact's bytes (optionally a `Range`); (status, bytes).
pub(crate) fn download(device: &Device, artifact: &Value, range: Option<&str>) -> (u16, Vec<u8>) {
    let href = artifact["_links"]["download-http"]["href"]
        .as_str()
        .unwrap();
    let mut req = device
        .server
        .agent
        .get(href)
        .header("Authorization", &device.auth);
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    let mut r = req.call().unwrap();
    let status = r.status().as_u16();
    let bytes = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (status, bytes)
}

/// Rebuilds the target of `patch` from `base` against the signed head of `artifact`: every chunk
/// is checked against the signed tables by the delta crate; the result must be `expected`.
fn rebuild(artifact: &[u8], patch: &[u8], base: &[u8], expected: &[u8]) {
    let mut keyring = Keyring::new();
    keyring.add(release_key().public_key());
    let policy = SignaturePolicy::threshold(1).unwrap();
    let (head, _) = read_verified_head(&mut &artifact[..], &keyring, &policy).unwrap();
    let mut payload = DeltaPayload::open(&head, std::io::Cursor::new(patch), base, false).unwrap();
    let mut rebuilt = Vec::new();
    while let Some(chunk) = payload.next_chunk().unwrap() {
        match chunk.data {
            ChunkData::Bytes(b) => rebuilt.extend_from_slice(b),
            ChunkData::Zeros(n) => rebuilt.resize(rebuilt.len() + n as usize, 0),
        }
    }
    assert!(rebuilt == expected, "the patch rebuilds the target image");
}

fn a_device_on_a_known_release_is_offered_a_patch_the_server_built(backend: Backend) {
    let server = Server::start(backend);
    let (v1, v2) = images();
    let (a1, a2) = (release_of("1.0", &v1), release_of("2.0", &v2));
    upload(&server, &a1);
    let taker = server.device("takes-deltas");
    let other = server.device("suricatta-like");
    let unknown = server.device("unknown-base");
    report_base(&taker, &v1);
    // A release the server holds no artifact of (a modified slot, one uploaded elsewhere).
    report_base(&unknown, &rustupdate_testkit::fs_image(IMAGE_LEN, 99));
    // The other client reports what it likes, never that it takes deltas.
    assert_eq!(other.config(&json!({"sw_version": "1.0"})).status, 200);
    let v2_id = upload(&server, &a2);
    let patches = settled_patches(&server, v2_id);
    assert_eq!(patches.len(), 1, "one base runs in the fleet: {patches:?}");
    let patch_row = &patches[0];
    assert_eq!(patch_row["state"], "ready", "{patch_row}");
    assert_eq!(patch_row["base_sha256"], sha256_hex(&v1));
    assert_eq!(patch_row["origin"], "built");
    let patch_size = patch_row["size"].as_i64().unwrap();
    assert!(
        patch_size * 4 < a2.len() as i64,
        "the patch ({patch_size} bytes) is well below the artifact ({} bytes)",
        a2.len()
    );
    let rollout = server.rollout(v2_id, "100", "50");

    // The delta-taking device: the artifact and the patch, both with hashes and links.
    let action = taker.offered_action().expect("offered");
    let (full, patch) = deployment(&taker, action);
    let patch = patch.expect("a patch is offered to a device that takes deltas");
    assert_eq!(patch["size"].as_i64().unwrap(), patch_size);
    assert_eq!(full["size"].as_u64().unwrap(), a2.len() as u64);
    let name = patch["filename"].as_str().unwrap();
    assert!(
        name.starts_with("test-image-2.0.from-") && name.ends_with(".rudelta"),
        "{name}"
    );
    // Served with Range, and whole; it rebuilds v2 from v1.
    let (status, head) = download(&taker, &patch, Some("bytes=0-95"));
    assert_eq!((status, head.len()), (206, 96));
    let (status, bytes) = download(&taker, &patch, None);
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as i64, patch_size);
    assert_eq!(patch["hashes"]["sha256"], sha256_hex(&bytes));
    rebuild(&a2, &bytes, &v1, &v2);
    taker.complete(action, "success", &["committed"]);

    // Any other client sees the deployment as before: one artifact, the .rua.
    let action = other.offered_action().expect("offered");
    let (full, none) = deployment(&other, action);
    assert!(none.is_none());
    let (status, bytes) = download(&other, &full, None);
    assert_eq!((status, bytes.len()), (200, a2.len()));
    other.complete(action, "success", &["committed"]);

    // A device on a base the server does not know: the artifact alone.
    let action = unknown.offered_action().expect("offered");
    let (_, none) = deployment(&unknown, action);
    assert!(none.is_none(), "no patch for an unknown base");
    unknown.complete(action, "success", &["committed"]);

    // The patch is for devices given it: a device of no rollout gets 404.
    let stranger = server.device("stranger");
    let mut foreign = patch.clone();
    let href = patch["_links"]["download-http"]["href"].as_str().unwrap();
    foreign["_links"]["download-http"]["href"] =
        json!(href.replace("/takes-deltas/", "/stranger/"));
    let (status, _) = download(&stranger, &foreign, None);
    assert_eq!(status, 404);

    let downloads = &server.rollout_status(rollout)["downloads"];
    assert_eq!(
        downloads["delta_bytes"].as_i64().unwrap(),
        96 + patch_size,
        "{downloads}"
    );
    assert_eq!(downloads["full_bytes"].as_i64().unwrap(), a2.len() as i64);
    assert_eq!(downloads["actions"], 2);
    assert_eq!(downloads["delta_actions"], 1);
    assert_eq!(downloads["fallbacks"], 0);
    let metrics = server.admin_get("/metrics").text;
    assert!(
        metrics.contains(&format!(
            "rustupdate_served_bytes{{kind=\"delta\"}} {}",
            96 + patch_size
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("rustupdate_delta_patches{state=\"ready\"} 1"),
        "{metrics}"
    );
}

fn a_base_reported_after_the_rollout_started_gets_its_patch_and_fallbacks_are_counted(
    backend: Backend,
) {
    let server = Server::start(backend);
    let (v1, v2) = images();
    let (a1, a2) = (release_of("1.0", &v1), release_of("2.0", &v2));
    upload(&server, &a1);
    let v2_id = upload(&server, &a2);
    // Nobody runs 1.0 yet: nothing to build.
    let a = server.admin_get(&format!("/api/v1/artifacts/{v2_id}/deltas"));
    assert_eq!(a.body, json!([]), "{a:?}");
    let device = server.device("late-reporter");
    let rollout = server.rollout(v2_id, "100", "50");
    // Its first report names 1.0's image: the running rollout's patch is queued for it, and the
    // deployment is offered with the patch once built (the poll holds it back meanwhile).
    report_base(&device, &v1);
    let patches = settled_patches(&server, v2_id);
    assert_eq!(patches[0]["state"], "ready", "{patches:?}");
    let action = device
        .offered_action()
        .expect("offered once the patch is ready");
    let (full, patch) = deployment(&device, action);
    assert!(patch.is_some());
    // The device could not use it: it says why and downloads the full artifact.
    let why = "patch was made for base image 00ff, slot a holds something else";
    let a = device.feedback(
        action,
        "proceeding",
        "none",
        &[&format!("delta fallback: {why}")],
    );
    assert_eq!(a.status, 200, "{a:?}");
    let (status, bytes) = download(&device, &full, None);
    assert_eq!((status, bytes.len()), (200, a2.len()));
    device.complete(action, "success", &["committed"]);
    let status = server.rollout_status(rollout);
    let downloads = &status["downloads"];
    assert_eq!(downloads["fallbacks"], 1, "{downloads}");
    assert_eq!(downloads["fallback_reasons"][0][0], why);
    assert_eq!(downloads["full_bytes"].as_i64().unwrap(), a2.len() as i64);
    let shown = server.admin_get(&format!("/api/v1/devices/{}", device.id));
    assert_eq!(shown.body["actions"][0]["delta_fallback"], why);
    let metrics = server.admin_get("/metrics").text;
    assert!(
        metrics.contains("rustupdate_delta_fallbacks 1"),
        "{metrics}"
    );
}

fn operators_name_bases_and_failed_jobs_say_why(backend: Backend) {
    let server = Server::start_with(backend, &["--delta-max-image-bytes", "1000"]);
    let (v1, v2) = images();
    let (a1, a2) = (release_of("1.0", &v1), release_of("2.0", &v2));
    let v1_id = upload(&server, &a1);
    let v2_id = upload(&server, &a2);
    let path = format!("/api/v1/artifacts/{v2_id}/deltas");
    // Not a base of itself; not a base that does not exist.
    let a = server.admin_post(&path, &json!({"base_artifact_id": v2_id}));
    assert_eq!(a.status, 400, "{a:?}");
    let a = server.admin_post(&path, &json!({"base_artifact_id": 999}));
    assert_eq!(a.status, 404, "{a:?}");
    let a = server.admin_post(&path, &json!({"base_artifact_id": v1_id}));
    assert_eq!(a.status, 201, "{a:?}");
    let again = server.admin_post(&path, &json!({"base_artifact_id": v1_id}));
    assert_eq!(again.status, 200, "{again:?}");
    // This server holds at most 1000 bytes of base image: the job fails and says why.
    let patches = settled_patches(&server, v2_id);
    assert_eq!(patches[0]["state"], "failed", "{patches:?}");
    let reason = patches[0]["reason"].as_str().unwrap();
    assert!(reason.contains("delta-max-image-bytes"), "{reason}");
    let all = server.admin_get("/api/v1/deltas");
    assert_eq!(all.body.as_array().unwrap().len(), 1, "{all:?}");
    // A device on 1.0 gets the full artifact at once: a failed patch holds nothing back.
    let device = server.device("on-1.0");
    report_base(&device, &v1);
    server.rollout(v2_id, "100", "50");
    let action = device.offered_action().expect("offered");
    let (_, patch) = deployment(&device, action);
    assert!(patch.is_none());
}

fn patches_from_a_release_pipeline_are_checked_before_they_are_offered(backend: Backend) {
    let server = Server::start(backend);
    let (v1, v2) = images();
    let v3 = rustupdate_testkit::next_release(&v2, 9);
    let (a1, a2, a3) = (
        release_of("1.0", &v1),
        release_of("2.0", &v2),
        release_of("3.0", &v3),
    );
    upload(&server, &a1);
    let v2_id = upload(&server, &a2);
    let v3_id = upload(&server, &a3);
    let patch = patch_of(&a2, &v1);
    let leftovers = || {
        std::fs::read_dir(server.dir.join("uploads"))
            .unwrap()
            .count()
    };
    // Refused, with the reason, leaving nothing: garbage; a patch of another artifact; a patch
    // from a base the server holds no release of.
    let a = upload_patch(
        &server,
        v2_id,
        b"not a patch at all, but long enough to be read as one...",
    );
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.text.contains("not a delta patch"), "{a:?}");
    let a = upload_patch(&server, v3_id, &patch);
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.text.contains("does not rebuild artifact"), "{a:?}");
    let unknown_base = rustupdate_testkit::fs_image(IMAGE_LEN, 99);
    let a = upload_patch(&server, v2_id, &patch_of(&a2, &unknown_base));
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.text.contains("holds no release"), "{a:?}");
    // Larger than the artifact: refused from its declared length, before a byte of it is read
    // (sent by hand: a client still writing the body may see the connection closed instead).
    let status = declared_upload_status(&server, v2_id, a2.len() + 1);
    assert_eq!(status, 413);
    for id in [v2_id, v3_id] {
        let a = server.admin_get(&format!("/api/v1/artifacts/{id}/deltas"));
        assert_eq!(a.body, json!([]), "{a:?}");
    }
    assert_eq!(leftovers(), 0, "no temporary file stays");
    // The right one: stored, ready, offered to a device on 1.0.
    let a = upload_patch(&server, v2_id, &patch);
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body[0]["origin"], "uploaded", "{a:?}");
    assert_eq!(a.body[0]["state"], "ready");
    assert_eq!(a.body[0]["sha256"], sha256_hex(&patch));
    let again = upload_patch(&server, v2_id, &patch);
    assert_eq!(again.status, 409, "{again:?}");
    let device = server.device("on-1.0");
    report_base(&device, &v1);
    server.rollout(v2_id, "100", "50");
    let action = device.offered_action().expect("offered");
    let (_, offered) = deployment(&device, action);
    let offered = offered.expect("the uploaded patch is offered");
    assert_eq!(offered["hashes"]["sha256"], sha256_hex(&patch));
    let (status, bytes) = download(&device, &offered, None);
    assert_eq!((status, bytes), (200, patch));
}
