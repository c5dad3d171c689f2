//! The hook vocabulary: the lifecycle events hooks run at, and the [`Context`] that hooks and
//! health checks are told about the transition. It does not run anything: the [`Hooks`] and
//! [`HealthChecks`] seams do (scripts in the client, recorders in `testkit`), and the
//! [`Updater`](crate::Updater) decides when.
//!
//! [`Hooks`]: crate::seams::Hooks
//! [`HealthChecks`]: crate::seams::HealthChecks

use crate::SlotId;
use serde::Serialize;
use std::fmt;

/// What health checks and hooks get to know about the transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Context {
    pub transaction: String,
    pub booted_slot: SlotId,
    pub target_slot: SlotId,
    pub version: String,
    pub previous_version: Option<String>,
}

/// A lifecycle transition a hook runs at; [`name`](HookEvent::name) is the hook's first argument
/// and `RUSTUPDATE_EVENT` (docs/client.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEvent {
    BeforeInstall,
    AfterInstall,
    BeforeReboot,
    BeforeCommit,
    AfterCommit,
    OnRollback,
    OnFailure,
}

impl HookEvent {
    pub const ALL: [HookEvent; 7] = [
        HookEvent::BeforeInstall,
        HookEvent::AfterInstall,
        HookEvent::BeforeReboot,
        HookEvent::BeforeCommit,
        HookEvent::AfterCommit,
        HookEvent::OnRollback,
        HookEvent::OnFailure,
    ];

    /// The one name of the event, in text, JSON and the hook's arguments.
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::BeforeInstall => "before-install",
            HookEvent::AfterInstall => "after-install",
            HookEvent::BeforeReboot => "before-reboot",
            HookEvent::BeforeCommit => "before-commit",
            HookEvent::AfterCommit => "after-commit",
            HookEvent::OnRollback => "on-rollback",
            HookEvent::OnFailure => "on-failure",
        }
    }

    /// A failing hook stops these transitions; for the others its failure is only logged.
    pub fn can_refuse(self) -> bool {
        matches!(self, HookEvent::BeforeInstall | HookEvent::BeforeCommit)
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_names_agree() {
        for event in HookEvent::ALL {
            assert_eq!(
                serde_json::to_value(event).unwrap(),
                serde_json::json!(event.name())
            );
            assert_eq!(event.to_string(), event.name());
        }
    }
}
