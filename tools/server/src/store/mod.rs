//! Storage: every table behind one [`Store`], on SQLite (embedded, the default) or PostgreSQL
//! (several server processes over one database), through one code path: sqlx's `Any` driver with
//! `$n` placeholders, which both backends accept.
//!
//! Concurrency rules, so that several processes stay correct without locks held across requests:
//! - rows that must exist once (a device, a rollout member, an action) are created with
//!   `INSERT … ON CONFLICT DO NOTHING` on a unique key, then read back;
//! - state changes are compare-and-set (`UPDATE … WHERE state = $old`); the caller that changed
//!   the row (one row affected) is the one that records the event.
//!
//! Decisions (which phase, which state next) are not made here: they come from
//! `rustupdate-rollout`. This module only reads and writes.

/// A query text assembled from constants (column lists, state sets), never from input: values
/// are always bound parameters.
macro_rules! sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

mod actions;
mod artifacts;
mod audit;
mod backup;
mod counts;
mod database;
mod delta_patches;
mod device_search;
mod devices;
mod history;
mod rollout_row;
mod rollouts;
mod running_rollouts;
mod schema;
mod sessions;
mod trust;
mod users;

pub use actions::{
    ActionRow, ActionWithRollout, FEEDBACK_BYTES_PER_ACTION, FEEDBACK_ENTRIES_PER_ACTION,
    FeedbackRow, NewFeedback,
};
pub use artifacts::{ArtifactRow, NewArtifact};
pub use audit::AuditRow;
pub use counts::FleetCounts;
pub use database::{Store, now_ms, redact};
pub use delta_patches::{DownloadKind, DownloadTotals, PatchFile, PatchRow};
pub use device_search::{COUNT_CAP, DeviceFilter};
pub use devices::DeviceRow;
pub use rollout_row::RolloutRow;
pub use rollouts::{EventRow, NewRollout, PhaseCountsRow};
pub use trust::TrustRow;
