//! The trust document devices fetch (docs/trust.md, "Delivery"): set by an admin through the
//! management API, checked with the device's rules without any private key, linked from the
//! poll answer and served to authenticated devices.

use crate::harness::{Answer, Backend, Server, TENANT, agent, answer};
use crate::on_both_backends;
use rustupdate_testkit::key;
use rustupdate_trust::document::{DOCUMENT_TYPE, MAX_DOCUMENT_BYTES};
use rustupdate_trust::{Document, Role, Signed};

on_both_backends!(
    an_admin_sets_newer_documents_and_devices_are_linked_to_them,
    older_under_signed_altered_and_oversized_documents_are_refused,
    only_admins_set_it_and_only_devices_fetch_it,
);

const ROOTS: [u8; 2] = [31, 32];

/// A document of `version` naming `release` (seeds) as release keys, roots 31 and 32 (2 of 2),
/// signed by the root keys `by`.
fn document(version: u64, release: &[u8], revoked: &[u8], by: &[u8]) -> Vec<u8> {
    let public = |seeds: &[u8]| -> Vec<_> { seeds.iter().map(|s| key(*s).public_key()).collect() };
    let mut doc = Document::unsigned(Signed {
        kind: DOCUMENT_TYPE.into(),
        version,
        root: Role::of(2, &public(&ROOTS)),
        release: Role::of(1, &public(release)),
        revoked: public(revoked).iter().map(|k| k.id().to_string()).collect(),
    });
    let message = doc.signed.signing_message();
    for seed in by {
        let root = key(*seed);
        doc.add_signature(root.public_key().id(), &root.sign(&message));
    }
    doc.to_bytes()
}

/// `bytes` with its version raised after signing.
fn altered(bytes: &[u8]) -> Vec<u8> {
    let mut doc = Document::parse(bytes).unwrap();
    doc.signed.version += 1;
    doc.to_bytes()
}

fn put(server: &Server, auth: &str, body: &[u8]) -> Answer {
    answer(
        agent()
            .put(&server.url("/api/v1/trust"))
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .send(body),
    )
}

fn admin_put(server: &Server, body: &[u8]) -> Answer {
    put(server, &format!("Bearer {}", server.admin), body)
}

fn an_admin_sets_newer_documents_and_devices_are_linked_to_them(backend: Backend) {
    let server = Server::start(backend);
    let dev = server.device("dev-1");
    let poll = dev.poll();
    assert_eq!(poll.status, 200);
    assert!(
        poll.body["_links"].get("trustDocument").is_none(),
        "{poll:?}"
    );
    assert_eq!(server.admin_get("/api/v1/trust").status, 404);

    let v1 = document(1, &[7], &[], &ROOTS);
    let a = admin_put(&server, &v1);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["version"], 1);
    assert_eq!(
        a.body["release_keys"][0],
        key(7).public_key().id().to_string()
    );
    let href = dev.poll().body["_links"]["trustDocument"]["href"]
        .as_str()
        .expect("a trustDocument link")
        .to_owned();
    assert_eq!(href, dev.path("/trust/1"));
    let served = dev.get(&href);
    assert_eq!(served.status, 200);
    assert_eq!(served.text.as_bytes(), &v1[..], "served as uploaded");

    // Version 2 revokes key 7 and trusts key 8: the link moves on, the old URL is gone.
    let v2 = document(2, &[8], &[7], &ROOTS);
    let a = admin_put(&server, &v2);
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["revoked"][0], key(7).public_key().id().to_string());
    let href = dev.poll().body["_links"]["trustDocument"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(href, dev.path("/trust/2"));
    assert_eq!(dev.get(&href).text.as_bytes(), &v2[..]);
    assert_eq!(dev.get(&dev.path("/trust/1")).status, 404);
    assert_eq!(dev.get(&dev.path("/trust/x")).status, 404);
    let shown = server.admin_get("/api/v1/trust");
    assert_eq!(shown.text.as_bytes(), &v2[..]);
    let audit = server.admin_get("/api/v1/audit");
    assert!(audit.text.contains("trust-update"), "{audit:?}");
    assert!(audit.text.contains("version 2 (was 1)"), "{audit:?}");
}

fn older_under_signed_altered_and_oversized_documents_are_refused(backend: Backend) {
    let server = Server::start(backend);
    // The first document must be signed by a threshold of its own root keys.
    let a = admin_put(&server, &document(1, &[7], &[], &ROOTS[..1]));
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.text.contains("its own root keys"), "{a:?}");
    assert!(a.text.contains("signed by 1 of"), "{a:?}");
    assert_eq!(
        admin_put(&server, &document(3, &[7], &[], &ROOTS)).status,
        200
    );

    let refusals: [(Vec<u8>, u16, &str); 5] = [
        (document(3, &[8], &[], &ROOTS), 409, "not newer"),
        (document(2, &[8], &[], &ROOTS), 409, "not newer"),
        (document(4, &[8], &[], &ROOTS[..1]), 400, "root"),
        (altered(&document(4, &[8], &[], &ROOTS)), 400, "altered"),
        (b"{\"signed\": 1}".to_vec(), 400, "not a trust document"),
    ];
    for (body, status, reason) in &refusals {
        let a = admin_put(&server, body);
        assert_eq!(a.status, *status, "{reason}: {a:?}");
        assert!(a.text.contains(reason), "{reason}: {a:?}");
    }
    let mut huge = document(4, &[8], &[], &ROOTS);
    huge.resize(MAX_DOCUMENT_BYTES + 1, b' ');
    let a = admin_put(&server, &huge);
    assert_eq!(a.status, 413, "{a:?}");
    // Nothing of it was stored.
    let summary = server.admin_get("/api/v1/trust/summary");
    assert_eq!(summary.body["version"], 3, "{summary:?}");
}

fn only_admins_set_it_and_only_devices_fetch_it(backend: Backend) {
    let server = Server::start(backend);
    let doc = document(1, &[7], &[], &ROOTS);
    assert_eq!(put(&server, "Bearer wrong", &doc).status, 401);
    server.add_user("otto", "operator");
    let (ok, out, err) = server.host_command(
        &[
            "token", "create", "--user", "otto", "--label", "t", "--role", "operator",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    let a = put(&server, &format!("Bearer {}", out.trim()), &doc);
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(admin_put(&server, &doc).status, 200);

    let dev = server.device("dev-1");
    let url = dev.path("/trust/1");
    assert_eq!(dev.get(&url).status, 200);
    let unauthenticated = answer(agent().get(&url).call());
    assert_eq!(unauthenticated.status, 401);
    let other = server.device("dev-2");
    let a = answer(
        agent()
            .get(&url)
            .header("Authorization", &other.auth)
            .call(),
    );
    assert_eq!(a.status, 401, "another device's token: {a:?}");
    assert_eq!(
        answer(
            agent()
                .get(&server.url(&format!("/{TENANT}/controller/v1/dev-1/trust/1")))
                .header("Authorization", &format!("Bearer {}", server.admin))
                .call()
        )
        .status,
        401
    );
}
