//! Eclipse hawkBit's Direct Device Integration API, version 1 (DDI v1): the JSON bodies and the
//! URL paths, shared by the device daemon and `rustupdate-server` so the two ends cannot drift.
//!
//! - [`model`]: the serde types of every body an updater exchanges (root poll, deployment,
//!   feedback, config data, cancel), with hawkBit's field names (`_links`, `maintenanceWindow`, …).
//! - [`path`]: validated tenant and controller ids, and the path of every resource.
//! - [`sleep`]: hawkBit's `HH:MM:SS` polling interval.
//! - [`attributes`]: the inventory attribute names rustupdate devices report in `configData`.
//!
//! Pure: no HTTP, no I/O. Unknown fields in bodies are ignored (peers such as SWUpdate's suricatta
//! send fields of older DDI revisions); size limits are the transport's business (the server caps
//! request bodies at [`MAX_BODY_LEN`]). What DDI does not cover (deltas, rejection reasons) is an
//! extension documented in `docs/server.md`.

#![forbid(unsafe_code)]

pub mod attributes;
pub mod delta;
pub mod model;
pub mod path;
pub mod sleep;

pub use model::*;
pub use path::{ControllerId, Tenant};
pub use sleep::PollSleep;

/// Largest request body a DDI endpoint accepts (feedback with log lines, config data).
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Most `details` lines one feedback may carry; the server rejects more.
pub const MAX_DETAILS: usize = 100;
/// Longest single `details` line.
pub const MAX_DETAIL_LEN: usize = 2048;
/// Most attributes one `configData` may carry, and the longest key and value.
pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 512;
