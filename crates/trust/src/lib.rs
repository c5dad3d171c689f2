//! Trust documents (docs/trust.md): which release keys may sign artifacts, how many must, which
//! keys are revoked, and which **root keys** may change that, all under a version number and
//! signed by a threshold of those root keys, which stay offline.
//!
//! - [`document`]: the document, its exact signed bytes, parsing with every structural check.
//! - [`edit`]: the first document and each edit of it (the next version, unsigned, or the rule
//!   it would break).
//! - [`report`]: what each signature on a document is (roles, verifies), for people.
//! - [`rules`]: whether a device accepts a document (first from its image, then each newer one:
//!   signed by its current roots, a higher version, a new root set also by the new roots) and
//!   what an artifact's signatures are worth under it (revoked keys named).
//!
//! Pure: bytes in, decisions out. The client keeps the current document on its data partition and
//! the host tool (`rustupdate-artifact trust …`) edits and signs documents.

#![forbid(unsafe_code)]

pub mod document;
pub mod edit;
pub mod report;
pub mod rules;

pub use document::{Document, ParseError, Role, Signature, Signed};
pub use edit::{Edit, EditError};
pub use report::SignatureCheck;
pub use rules::{TrustError, Trusted, release_check};
