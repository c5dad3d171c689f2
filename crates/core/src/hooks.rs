//! The hook vocabulary: the lifecycle events hooks run at, and the [`Context`] that hooks and
//! health checks are told about the transition. It does not run anything: the [`Hooks`] and
//! [`HealthChecks`] seams do (scripts in the client, recorders in `testkit`), and the
//! [`Updater`](crate::Updater) decides when. [`HookError`] is how either says no.
//!
//! [`Hooks`]: crate::seams::Hooks
//! [`HealthChecks`]: crate::seams::HealthChecks

use crate::SlotId;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

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

/// Why a hook or a health check did not pass: which one (`event` is the hook's event name, or
/// `health`; `script` names the check) and how. Its text is what the logs, the rollback reason
/// and the fleet server's feedback say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// It ran and said no. `status` is the exit status as the system describes it
    /// (`exit status: 1`, `signal: 9 (SIGKILL)`); `output` the tail of its output, maybe empty.
    #[error("{event} script {script} failed ({status}){}", colon_before(output))]
    Failed {
        event: String,
        script: String,
        status: String,
        output: String,
    },
    /// It did not finish within `after` and was killed.
    #[error("{event} script {script} timed out after {} s", after.as_secs())]
    TimedOut {
        event: String,
        script: String,
        after: Duration,
    },
    /// It could not be run, or waited for, at all. `script` is the check, or the directory of
    /// checks that could not be listed.
    #[error("{script}: {reason}")]
    CouldNotRun {
        event: String,
        script: String,
        reason: String,
    },
}

/// `": text"`, or nothing for no text.
fn colon_before(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
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

    #[test]
    fn hook_errors_read_as_before() {
        let failed = |output: &str| HookError::Failed {
            event: "health".into(),
            script: "20-units".into(),
            status: "exit status: 1".into(),
            output: output.into(),
        };
        assert_eq!(
            failed("").to_string(),
            "health script 20-units failed (exit status: 1)"
        );
        assert_eq!(
            failed("a.service failed").to_string(),
            "health script 20-units failed (exit status: 1): a.service failed"
        );
        let timed_out = HookError::TimedOut {
            event: "before-install".into(),
            script: "20-hang".into(),
            after: Duration::from_secs(2),
        };
        assert_eq!(
            timed_out.to_string(),
            "before-install script 20-hang timed out after 2 s"
        );
        let could_not = HookError::CouldNotRun {
            event: "health".into(),
            script: "10-x".into(),
            reason: "cannot start: Permission denied".into(),
        };
        assert_eq!(
            could_not.to_string(),
            "10-x: cannot start: Permission denied"
        );
    }
}
