//! The rollout logic of `rustupdate-server`: how a release reaches a fleet in phases.
//!
//! - [`spec`]: validated parameters — cumulative phases (`1,10,50,100`), the success threshold
//!   that ends a phase, the error threshold that pauses the rollout.
//! - [`plan`]: which device is in which phase, in a deterministic order per rollout.
//! - [`rollout`]: the rollout state machine — operator commands and the automatic
//!   advance / finish / pause decision from one phase's counts.
//! - [`action`]: one device's action, driven by its DDI feedback; success only on `closed` +
//!   `success`, which a rustupdate device sends after the new image is committed.
//!
//! Pure: no I/O, no clock, no randomness, no async. The server loads state from its database,
//! calls these functions inside a transaction and stores what they return; HTTP status codes,
//! persistence, target filters and scheduling are its business. Every state and command has one
//! kebab-case name for text, JSON and the API (`as_str`, `Display`, `FromStr`, serde).

#![forbid(unsafe_code)]

mod names;

pub mod action;
pub mod plan;
pub mod rollout;
pub mod spec;

pub use action::{
    ActionState, CancelError, FeedbackError, FeedbackOutcome, on_cancel_feedback,
    on_cancel_requested, on_deployment_fetched, on_feedback,
};
pub use names::{MAX_ECHO_LEN, ParseNameError};
pub use plan::{assign, late_joiner_phase, phase_sizes};
pub use rollout::{
    Command, Decision, PhaseCounts, RolloutState, TransitionError, apply, decide, is_handing_out,
    may_hand_out,
};
pub use spec::{MAX_PHASES, Phases, RolloutSpec, SpecError, Threshold};
