//! What each signature on a document is, for people: which role its key has (in this document
//! and in the one it replaces) and whether it verifies.
//!
//! This decides nothing: whether a document is trusted is [`crate::rules`] alone. A signature by
//! a key neither document names cannot be checked and is reported as such.

use crate::document::{Document, Role, Signed};
use rustupdate_verify::PublicKey;

/// One signature as found on a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// As written in the document.
    pub key_id: String,
    /// `root`, `release`, `previous root`, `revoked`: every one that applies, none for a key
    /// neither document names.
    pub roles: Vec<&'static str>,
    /// Whether it verifies over [`Signed::signing_message`]; `None` when the key is unknown.
    pub verifies: Option<bool>,
}

impl Document {
    /// Every signature with the roles of its key and whether it verifies; `previous` is the
    /// document this one replaces, if known.
    pub fn signature_checks(&self, previous: Option<&Signed>) -> Vec<SignatureCheck> {
        let message = self.signed.signing_message();
        let mut roles: Vec<(&'static str, Vec<PublicKey>)> = vec![
            ("root", keys(&self.signed.root)),
            ("release", keys(&self.signed.release)),
        ];
        if let Some(previous) = previous {
            roles.push(("previous root", keys(&previous.root)));
        }
        let revoked = self.signed.revoked_ids().unwrap_or_default();
        self.signatures
            .iter()
            .map(|signature| {
                let Ok((id, sig)) = signature.parse() else {
                    return SignatureCheck {
                        key_id: signature.key_id.clone(),
                        roles: Vec::new(),
                        verifies: Some(false),
                    };
                };
                let mut names = Vec::new();
                let mut key = None;
                for (name, keys) in &roles {
                    if let Some(found) = keys.iter().find(|k| k.id() == id) {
                        names.push(*name);
                        key = Some(found);
                    }
                }
                if revoked.contains(&id) {
                    names.push("revoked");
                }
                SignatureCheck {
                    key_id: signature.key_id.clone(),
                    roles: names,
                    verifies: key.map(|k| k.verify(&message, &sig)),
                }
            })
            .collect()
    }
}

/// A role's keys; a key that does not parse is left out (a parsed document has none).
fn keys(role: &Role) -> Vec<PublicKey> {
    role.each_key().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::DOCUMENT_TYPE;
    use rustupdate_testkit::key;

    #[test]
    fn each_signature_gets_its_roles_and_whether_it_verifies() {
        let signed = |version, root: u8| Signed {
            kind: DOCUMENT_TYPE.into(),
            version,
            root: Role::of(1, &[key(root).public_key()]),
            release: Role::of(1, &[key(11).public_key()]),
            revoked: Vec::new(),
        };
        let old = signed(1, 1);
        let mut doc = Document::unsigned(signed(2, 2));
        let message = doc.signed.signing_message();
        for seed in [1, 2, 11, 99] {
            doc.add_signature(key(seed).public_key().id(), &key(seed).sign(&message));
        }
        doc.add_signature(key(3).public_key().id(), &key(2).sign(&message));
        let checks = doc.signature_checks(Some(&old));
        let summary: Vec<_> = checks
            .iter()
            .map(|c| (c.roles.clone(), c.verifies))
            .collect();
        assert_eq!(
            summary,
            vec![
                (vec!["previous root"], Some(true)),
                (vec!["root"], Some(true)),
                (vec!["release"], Some(true)),
                (vec![], None),
                (vec![], None),
            ]
        );
        let forged = doc.signature_checks(None);
        assert_eq!(forged[0].verifies, None);
        doc.signatures[1].sig = doc.signatures[0].sig.clone();
        assert_eq!(doc.signature_checks(None)[1].verifies, Some(false));
    }
}
