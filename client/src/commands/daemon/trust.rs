//! The trust document the fleet server links in its poll answer (`_links.trustDocument`,
//! docs/trust.md "Delivery"): fetched when its version is newer than the device's and applied
//! with the device's own rules ([`TrustStore::update`]) before the cycle handles a deployment, so
//! a release signed by a newly trusted key installs in the same cycle. A refused document is
//! logged and not fetched again until the link names another version; a failed fetch is tried
//! again at the next poll. A device with fixed keys (`keys.trusted-dir`) ignores the link.

use super::Daemon;
use crate::ddi_transport::DdiTransport;
use crate::trust_store::TrustStore;
use anyhow::{Context, Result, bail};
use rustupdate_ddi::{self as ddi, path};
use rustupdate_trust::document::MAX_DOCUMENT_BYTES;
use std::io::Read;

impl<T: DdiTransport> Daemon<T> {
    /// Follows the poll answer's trust link if it offers a newer document. Never fails the
    /// cycle: the document in force stays whatever happens here.
    pub(super) fn follow_trust_link(&mut self, base: &ddi::ControllerBase) {
        let Some(link) = &base.links.trust_document else {
            return;
        };
        let Some(store) = TrustStore::from_config(&self.config) else {
            log::debug!("the server offers a trust document; this device has fixed keys");
            return;
        };
        let Some(offered) = path::trust_document_version(&link.href) else {
            log::warn!("trust document link {:?} names no version", link.href);
            return;
        };
        if self.trust_refused == Some(offered) {
            return;
        }
        let current = match store.current() {
            Ok(current) => current.version(),
            Err(err) => {
                log::warn!("the device's trust document: {err:#}");
                return;
            }
        };
        if offered <= current {
            return;
        }
        let bytes = match self.fetch_trust(&link.href) {
            Ok(bytes) => bytes,
            Err(err) => {
                log::warn!("trust document version {offered}: {err:#}; tried again next poll");
                return;
            }
        };
        match store.update(&bytes) {
            Ok(trusted) => log::info!(
                "trust document version {} from the server replaces version {current}",
                trusted.version()
            ),
            Err(err) => {
                log::warn!("trust document version {offered} from the server: {err:#}");
                self.trust_refused = Some(offered);
            }
        }
    }

    /// The document's bytes, at most [`MAX_DOCUMENT_BYTES`].
    fn fetch_trust(&self, href: &str) -> Result<Vec<u8>> {
        let body = self
            .transport
            .artifact(href)
            .context("fetching the trust document")?;
        let mut bytes = Vec::new();
        body.take(MAX_DOCUMENT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {href}"))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            bail!("{href} is larger than the {MAX_DOCUMENT_BYTES} bytes a trust document may have");
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

    use super::super::fake::{BOARD, Request, Rig, feedback, nothing, release};
    use rustupdate_ddi::Finished;
    use rustupdate_testkit::key;
    use rustupdate_trust::document::DOCUMENT_TYPE;
    use rustupdate_trust::{Document, Role, Signed};

    const ROOTS: [u8; 2] = [31, 32];
    const LINK: &str = "http://fleet.test/DEFAULT/controller/v1/dev-1/trust";

    /// Roots 31 and 32 (2 of 2), release keys `release`, signed by the roots `by`.
    fn document(version: u64, release: &[u8], revoked: &[u8], by: &[u8]) -> Vec<u8> {
        let public = |s: &[u8]| -> Vec<_> { s.iter().map(|s| key(*s).public_key()).collect() };
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

    /// The rig with a trust document instead of fixed keys: version 1 trusts release key 1.
    fn trust_rig() -> Rig {
        let mut rig = Rig::new("");
        let dir = rig.dir.path().to_owned();
        let roots = dir.join("root-keys");
        std::fs::create_dir(&roots).unwrap();
        for seed in ROOTS {
            let pem = key(seed).public_key().to_pem().unwrap();
            std::fs::write(roots.join(format!("root-{seed}.pem")), pem).unwrap();
        }
        std::fs::write(dir.join("trust.json"), document(1, &[1], &[], &ROOTS)).unwrap();
        let keys = &mut rig.daemon.config.keys;
        keys.trusted_dir = None;
        keys.trust_document = Some(dir.join("trust.json"));
        keys.root_dir = Some(roots);
        keys.root_threshold = 2;
        rig
    }

    /// The server links trust document `version` (serving `bytes`) in its current poll answer.
    fn link(rig: &Rig, version: u64, bytes: Vec<u8>) -> String {
        let href = format!("{LINK}/{version}");
        let mut poll: serde_json::Value =
            serde_json::from_str(&rig.daemon.transport.poll.borrow()).unwrap();
        poll["_links"]["trustDocument"] = serde_json::json!({ "href": href });
        rig.set_poll(poll.to_string());
        let fake = &rig.daemon.transport;
        fake.artifacts.borrow_mut().insert(href.clone(), bytes);
        href
    }

    fn fetched(requests: &[Request], href: &str) -> usize {
        requests
            .iter()
            .filter(|r| matches!(r, Request::Artifact(h, 0) if h == href))
            .count()
    }

    fn version(rig: &Rig) -> u64 {
        let store = crate::trust_store::TrustStore::from_config(&rig.daemon.config).unwrap();
        store.current().unwrap().version()
    }

    #[test]
    fn a_newer_document_applies_before_the_deployment_of_the_same_poll() {
        let mut rig = trust_rig();
        // Version 2 revokes key 1 and trusts key 2; the release offered with it is signed by 2.
        rig.offer(7, release(BOARD, 2));
        let href = link(&rig, 2, document(2, &[2], &[1], &ROOTS));
        assert_eq!(rig.cycle().unwrap(), "action 7 installed; rebooting");
        assert_eq!(version(&rig), 2);
        assert_eq!(fetched(&rig.requests(), &href), 1);
        // Linked again: not fetched again.
        rig.set_poll(nothing());
        link(&rig, 2, document(2, &[2], &[1], &ROOTS));
        rig.cycle().unwrap();
        assert_eq!(fetched(&rig.requests(), &href), 0);
    }

    #[test]
    fn a_revoking_document_rejects_the_old_keys_release_in_the_same_poll() {
        let mut rig = trust_rig();
        rig.offer(7, release(BOARD, 1));
        link(&rig, 2, document(2, &[2], &[1], &ROOTS));
        let err = rig.cycle().unwrap_err();
        assert!(format!("{err:#}").contains("revoked"), "{err:#}");
        let said = feedback(&rig.requests());
        let last = said.last().expect("a final result");
        assert_eq!(last.2, Finished::Failure, "{said:?}");
        assert!(last.4.contains("revoked"), "{said:?}");
        assert!(!rig.sim.reboot.requested);
    }

    #[test]
    fn a_refused_document_is_not_fetched_again_until_the_version_changes() {
        let mut rig = trust_rig();
        let under_signed = link(&rig, 2, document(2, &[2], &[1], &ROOTS[..1]));
        assert_eq!(rig.cycle().unwrap(), "no update offered");
        assert_eq!(version(&rig), 1);
        assert_eq!(fetched(&rig.requests(), &under_signed), 1);
        rig.cycle().unwrap();
        assert_eq!(fetched(&rig.requests(), &under_signed), 0);
        rig.set_poll(nothing());
        let signed = link(&rig, 3, document(3, &[2], &[1], &ROOTS));
        rig.cycle().unwrap();
        assert_eq!(fetched(&rig.requests(), &signed), 1);
        assert_eq!(version(&rig), 3);
    }

    #[test]
    fn a_device_with_fixed_keys_ignores_the_link() {
        let mut rig = Rig::new("");
        let href = link(&rig, 2, document(2, &[2], &[1], &ROOTS));
        assert_eq!(rig.cycle().unwrap(), "no update offered");
        assert_eq!(fetched(&rig.requests(), &href), 0);
    }
}
