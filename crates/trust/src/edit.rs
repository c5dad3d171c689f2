//! Making and editing documents: the first one, and each next version, unsigned.
//!
//! An edit always yields a new version (one higher, or an explicit higher number) with no
//! signatures (the signed part changed, so every signature over it is void), and the result
//! passes every structural rule of [`Signed::check`] or the edit is refused with that rule.
//! Whether devices accept the result depends on who signs it next ([`crate::rules`]). Nothing
//! here signs, reads or writes files.

use crate::document::{DOCUMENT_TYPE, Document, ParseError, Role, Signed};
use rustupdate_verify::{KeyId, PublicKey};
use thiserror::Error;

/// The version of a new document.
pub const FIRST_VERSION: u64 = 1;

/// One change to a document's signed part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Adds keys to the root and the release role.
    AddKeys {
        root: Vec<PublicKey>,
        release: Vec<PublicKey>,
    },
    /// Removes keys (by id) from the root and the release role; each must be there.
    RemoveKeys {
        root: Vec<KeyId>,
        release: Vec<KeyId>,
    },
    /// Removes each key from any role it is in and lists it as revoked.
    Revoke(Vec<KeyId>),
    /// Sets the thresholds given.
    SetThreshold {
        root: Option<usize>,
        release: Option<usize>,
    },
}

/// Why an edit is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EditError {
    #[error("the edited document would break a rule: {0}")]
    Rule(#[from] ParseError),
    #[error("the {role} role has no key {id}")]
    NotInRole { role: &'static str, id: KeyId },
    #[error("key {0} is already revoked")]
    AlreadyRevoked(KeyId),
    #[error("version {requested} is not higher than the document's version {current}")]
    VersionNotHigher { current: u64, requested: u64 },
    #[error("version {0} cannot be raised")]
    VersionOverflow(u64),
}

impl Signed {
    /// The first document: version 1, nothing revoked; refused if it breaks a rule.
    pub fn first(root: Role, release: Role) -> Result<Signed, ParseError> {
        let signed = Signed {
            kind: DOCUMENT_TYPE.to_string(),
            version: FIRST_VERSION,
            root,
            release,
            revoked: Vec::new(),
        };
        signed.check()?;
        Ok(signed)
    }

    /// Whether `id` is one of the root keys (the keys that may sign this document's successor,
    /// and, with the previous document's roots, this one).
    pub fn has_root_key(&self, id: KeyId) -> bool {
        key_ids(&self.root).contains(&Some(id))
    }
}

impl Document {
    /// The next version with `edit` applied, unsigned: one version higher, or `version` when
    /// given (which must be higher than the current one).
    pub fn edited(&self, edit: &Edit, version: Option<u64>) -> Result<Document, EditError> {
        let current = self.signed.version;
        let version = match version {
            Some(requested) if requested <= current => {
                return Err(EditError::VersionNotHigher { current, requested });
            }
            Some(requested) => requested,
            None => current
                .checked_add(1)
                .ok_or(EditError::VersionOverflow(current))?,
        };
        let mut signed = Signed {
            version,
            ..self.signed.clone()
        };
        match edit {
            Edit::AddKeys { root, release } => {
                signed
                    .root
                    .keys
                    .extend(root.iter().map(|k| hex::encode(k.raw())));
                signed
                    .release
                    .keys
                    .extend(release.iter().map(|k| hex::encode(k.raw())));
            }
            Edit::RemoveKeys { root, release } => {
                for id in root {
                    remove_key(&mut signed.root, "root", *id)?;
                }
                for id in release {
                    remove_key(&mut signed.release, "release", *id)?;
                }
            }
            Edit::Revoke(ids) => {
                for id in ids {
                    if signed.revoked_ids()?.contains(id) {
                        return Err(EditError::AlreadyRevoked(*id));
                    }
                    for role in [&mut signed.root, &mut signed.release] {
                        let position = key_ids(role).iter().position(|k| *k == Some(*id));
                        if let Some(index) = position {
                            role.keys.remove(index);
                        }
                    }
                    signed.revoked.push(id.to_string());
                }
            }
            Edit::SetThreshold { root, release } => {
                if let Some(threshold) = root {
                    signed.root.threshold = *threshold;
                }
                if let Some(threshold) = release {
                    signed.release.threshold = *threshold;
                }
            }
        }
        signed.check()?;
        Ok(Document::unsigned(signed))
    }
}

/// The ids of a role's keys, in order (`None` for a key that does not parse).
fn key_ids(role: &Role) -> Vec<Option<KeyId>> {
    role.each_key().map(|k| k.map(|k| k.id())).collect()
}

fn remove_key(role: &mut Role, name: &'static str, id: KeyId) -> Result<(), EditError> {
    let index = key_ids(role)
        .iter()
        .position(|k| *k == Some(id))
        .ok_or(EditError::NotInRole { role: name, id })?;
    role.keys.remove(index);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a test failure

    use super::*;
    use rustupdate_testkit::key;

    fn first() -> Document {
        let root = Role::of(1, &[key(1).public_key(), key(2).public_key()]);
        let release = Role::of(1, &[key(11).public_key()]);
        let mut doc = Document::unsigned(Signed::first(root, release).unwrap());
        let message = doc.signed.signing_message();
        doc.add_signature(key(1).public_key().id(), &key(1).sign(&message));
        doc
    }

    #[test]
    fn an_edit_raises_the_version_and_drops_the_signatures() {
        let doc = first();
        let added = doc
            .edited(
                &Edit::AddKeys {
                    root: vec![],
                    release: vec![key(12).public_key()],
                },
                None,
            )
            .unwrap();
        assert_eq!(added.signed.version, 2);
        assert!(added.signatures.is_empty());
        assert_eq!(added.signed.release.keys.len(), 2);
        let revoked = added
            .edited(&Edit::Revoke(vec![key(11).public_key().id()]), Some(7))
            .unwrap();
        assert_eq!(revoked.signed.version, 7);
        assert_eq!(revoked.signed.release.keys.len(), 1);
        assert_eq!(
            revoked.signed.revoked,
            vec![key(11).public_key().id().to_string()]
        );
        assert_eq!(
            revoked.edited(&Edit::Revoke(vec![key(11).public_key().id()]), None),
            Err(EditError::AlreadyRevoked(key(11).public_key().id()))
        );
        assert_eq!(
            revoked.edited(
                &Edit::SetThreshold {
                    root: Some(2),
                    release: None
                },
                Some(7)
            ),
            Err(EditError::VersionNotHigher {
                current: 7,
                requested: 7
            })
        );
        assert!(revoked.signed.has_root_key(key(2).public_key().id()));
        assert!(!revoked.signed.has_root_key(key(12).public_key().id()));
    }

    #[test]
    fn an_edit_that_breaks_a_rule_is_refused_with_the_rule() {
        let doc = first();
        let too_high = doc.edited(
            &Edit::SetThreshold {
                root: Some(3),
                release: None,
            },
            None,
        );
        assert!(matches!(
            too_high,
            Err(EditError::Rule(ParseError::BadThreshold {
                role: "root",
                threshold: 3,
                keys: 2
            }))
        ));
        let last = doc
            .edited(&Edit::Revoke(vec![key(11).public_key().id()]), None)
            .unwrap_err();
        assert!(last.to_string().contains("release threshold 1"), "{last}");
        let twice = doc.edited(
            &Edit::AddKeys {
                root: vec![key(1).public_key()],
                release: vec![],
            },
            None,
        );
        assert!(matches!(
            twice,
            Err(EditError::Rule(ParseError::DuplicateKey {
                role: "root",
                ..
            }))
        ));
        let absent = doc.edited(
            &Edit::RemoveKeys {
                root: vec![],
                release: vec![key(12).public_key().id()],
            },
            None,
        );
        assert!(matches!(
            absent,
            Err(EditError::NotInRole {
                role: "release",
                ..
            })
        ));
    }
}
