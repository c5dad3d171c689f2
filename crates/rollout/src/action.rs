//! One device's action in a rollout, driven by the DDI feedback the device sends.
//!
//! **An action succeeds only on `closed` + `success`.** A rustupdate device sends that only after
//! the new image booted, passed its health checks and was committed; every earlier step
//! (`download`, `downloaded`, `proceeding`, even an install that finished before the reboot) is
//! progress and never counts towards a phase's success threshold. A device that rolls back sends
//! `closed` + `failure`.
//!
//! Pure: the server loads the action's state, calls one of these functions with the parsed
//! feedback and stores the result; an error means the feedback changes nothing (the server
//! answers 409 or 400, see [`FeedbackError`]). This module does not store feedback history, does
//! not check that the device owns the action, and does not decide about the rollout
//! ([`crate::rollout::decide`] does, from the counts of these states).

use crate::names::named_enum;
use rustupdate_ddi::{Execution, Finished, Status};

/// Longest reason kept from a device's feedback, in bytes, "…" included.
pub const MAX_REASON_LEN: usize = 512;
/// The reason of a failure whose feedback had no details.
pub const NO_REASON: &str = "no reason given";
/// Joins the details lines of a feedback into one reason.
pub const DETAILS_SEPARATOR: &str = "; ";

named_enum! {
    /// Where one device's action is.
    pub enum ActionState ("action state") {
        /// Created, the device has not fetched it yet.
        Scheduled => "scheduled",
        /// The device fetched the deployment or reported progress.
        Running => "running",
        /// The device reported the artifact downloaded (waiting to install).
        Downloaded => "downloaded",
        /// The server asked the device to cancel; waiting for its answer.
        CancelRequested => "cancel-requested",
        /// The device booted, checked and committed the new image. Final.
        Succeeded => "succeeded",
        /// The device failed, rolled back or rejected the update. Final.
        Failed => "failed",
        /// Canceled before it changed the device. Final.
        Canceled => "canceled",
    }
}

impl ActionState {
    /// Succeeded, failed and canceled actions never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ActionState::Succeeded | ActionState::Failed | ActionState::Canceled
        )
    }

    /// Counts towards the phase's success threshold: only [`ActionState::Succeeded`].
    pub fn counts_as_success(self) -> bool {
        self == ActionState::Succeeded
    }

    /// Counts towards the error threshold: only [`ActionState::Failed`].
    pub fn counts_as_failure(self) -> bool {
        self == ActionState::Failed
    }
}

/// The state after a feedback, and why it failed (or why a cancel was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackOutcome {
    pub next: ActionState,
    /// For the operator: the device's details, at most [`MAX_REASON_LEN`] bytes. Set when the
    /// action failed or a cancel was refused, `None` otherwise.
    pub reason: Option<String>,
}

impl FeedbackOutcome {
    fn to(next: ActionState) -> FeedbackOutcome {
        FeedbackOutcome { next, reason: None }
    }

    fn because(next: ActionState, reason: String) -> FeedbackOutcome {
        FeedbackOutcome {
            next,
            reason: Some(reason),
        }
    }
}

/// Feedback that changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    /// The action already ended: replayed or out-of-order feedback. Server: 409.
    #[error("the action is already {state}, feedback after its end changes nothing")]
    AlreadyFinal { state: ActionState },
    /// `closed` with `finished: none`: hawkBit reads it as done, but an action succeeds here only
    /// on `closed` + `success`, and calling it failed would blame a device that may be fine.
    /// Server: 400.
    #[error(
        "feedback closed with finished none: say success (the new image is committed) or failure"
    )]
    Ambiguous,
    /// An execution that does not fit the state, such as `canceled` when no cancel was requested.
    /// Server: 409.
    #[error("feedback {} does not apply to an action that is {state}", execution.as_str())]
    Unexpected {
        state: ActionState,
        execution: Execution,
    },
    /// Cancel feedback for an action with no cancel pending. Server: 409.
    #[error("no cancel is pending for this action, it is {state}")]
    NoCancelPending { state: ActionState },
}

/// A cancel request for an action that already ended. Server: 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot cancel an action that is already {state}")]
pub struct CancelError {
    pub state: ActionState,
}

/// The device fetched `deploymentBase/{action}`: a scheduled action is now running; any other
/// state stays (fetching again is allowed, and a pending cancel is not undone by a fetch).
pub fn on_deployment_fetched(state: ActionState) -> ActionState {
    match state {
        ActionState::Scheduled => ActionState::Running,
        other => other,
    }
}

/// Feedback on `deploymentBase/{action}/feedback`.
///
/// - final state: [`FeedbackError::AlreadyFinal`];
/// - `closed` + `success`: succeeded — the only way to success;
/// - `closed` + `failure`: failed, the details as reason;
/// - `closed` + `none`: [`FeedbackError::Ambiguous`];
/// - `rejected` (any `finished`): failed, reason "rejected: …";
/// - `canceled`: canceled if a cancel was requested, else [`FeedbackError::Unexpected`];
/// - `downloaded`: downloaded; `download`, `proceeding`, `scheduled`, `resumed`: running. With a
///   cancel pending these leave the action in [`ActionState::CancelRequested`]. As in hawkBit,
///   `finished` is ignored for executions other than `closed`.
///
/// A final outcome wins over a pending cancel: a device that finished before it saw the cancel
/// reports what happened.
pub fn on_feedback(state: ActionState, status: &Status) -> Result<FeedbackOutcome, FeedbackError> {
    if state.is_final() {
        return Err(FeedbackError::AlreadyFinal { state });
    }
    let cancel_pending = state == ActionState::CancelRequested;
    match status.execution {
        Execution::Closed => match status.result.finished {
            Finished::Success => Ok(FeedbackOutcome::to(ActionState::Succeeded)),
            Finished::Failure => Ok(FeedbackOutcome::because(
                ActionState::Failed,
                reason("", &status.details),
            )),
            Finished::None => Err(FeedbackError::Ambiguous),
        },
        Execution::Rejected => Ok(FeedbackOutcome::because(
            ActionState::Failed,
            reason("rejected: ", &status.details),
        )),
        Execution::Canceled if cancel_pending => Ok(FeedbackOutcome::to(ActionState::Canceled)),
        Execution::Canceled => Err(FeedbackError::Unexpected {
            state,
            execution: status.execution,
        }),
        _ if cancel_pending => Ok(FeedbackOutcome::to(ActionState::CancelRequested)),
        Execution::Downloaded => Ok(FeedbackOutcome::to(ActionState::Downloaded)),
        Execution::Proceeding | Execution::Download | Execution::Scheduled | Execution::Resumed => {
            Ok(FeedbackOutcome::to(ActionState::Running))
        }
    }
}

/// The operator (or a rollout cancel) asks to stop the action.
///
/// A scheduled action is canceled at once: the device has not fetched it, so there is nothing to
/// undo and no device to wait for (the server must then refuse `deploymentBase` for it). A running
/// or downloaded action waits for the device's answer; asking again changes nothing. An action
/// that ended cannot be canceled.
pub fn on_cancel_requested(state: ActionState) -> Result<ActionState, CancelError> {
    match state {
        ActionState::Scheduled => Ok(ActionState::Canceled),
        ActionState::Running | ActionState::Downloaded | ActionState::CancelRequested => {
            Ok(ActionState::CancelRequested)
        }
        ActionState::Succeeded | ActionState::Failed | ActionState::Canceled => {
            Err(CancelError { state })
        }
    }
}

/// Feedback on `cancelAction/{action}/feedback`, valid only while a cancel is pending.
///
/// - `closed` + `success` or `canceled`: canceled;
/// - `closed` + `failure` or `rejected`: the device refused, it is past the point of no return
///   (writing or booting the new image): back to running, reason "cancel refused: …"; its
///   deployment feedback decides the outcome;
/// - `closed` + `none`: [`FeedbackError::Ambiguous`];
/// - anything else (`proceeding`, …): the cancel is still pending.
pub fn on_cancel_feedback(
    state: ActionState,
    status: &Status,
) -> Result<FeedbackOutcome, FeedbackError> {
    if state.is_final() {
        return Err(FeedbackError::AlreadyFinal { state });
    }
    if state != ActionState::CancelRequested {
        return Err(FeedbackError::NoCancelPending { state });
    }
    let refused = || {
        FeedbackOutcome::because(
            ActionState::Running,
            reason("cancel refused: ", &status.details),
        )
    };
    match (status.execution, status.result.finished) {
        (Execution::Closed, Finished::Success) | (Execution::Canceled, _) => {
            Ok(FeedbackOutcome::to(ActionState::Canceled))
        }
        (Execution::Closed, Finished::Failure) | (Execution::Rejected, _) => Ok(refused()),
        (Execution::Closed, Finished::None) => Err(FeedbackError::Ambiguous),
        (
            Execution::Proceeding
            | Execution::Scheduled
            | Execution::Resumed
            | Execution::Downloaded
            | Execution::Download,
            _,
        ) => Ok(FeedbackOutcome::to(ActionState::CancelRequested)),
    }
}

/// `prefix` and the non-blank details joined by [`DETAILS_SEPARATOR`] (or [`NO_REASON`]), cut to
/// [`MAX_REASON_LEN`] bytes.
fn reason(prefix: &str, details: &[String]) -> String {
    let lines: Vec<&str> = details
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .collect();
    let mut text = prefix.to_owned();
    if lines.is_empty() {
        text.push_str(NO_REASON);
    } else {
        text.push_str(&lines.join(DETAILS_SEPARATOR));
    }
    bounded(text)
}

/// `text` if it fits [`MAX_REASON_LEN`] bytes, else its start cut at a character boundary and "…".
fn bounded(mut text: String) -> String {
    const ELLIPSIS: char = '…';
    if text.len() <= MAX_REASON_LEN {
        return text;
    }
    let mut end = MAX_REASON_LEN - ELLIPSIS.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(ELLIPSIS);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustupdate_ddi::ActionFeedback;

    const ALL_EXECUTIONS: [Execution; 8] = [
        Execution::Closed,
        Execution::Proceeding,
        Execution::Canceled,
        Execution::Scheduled,
        Execution::Rejected,
        Execution::Resumed,
        Execution::Downloaded,
        Execution::Download,
    ];
    const ALL_FINISHED: [Finished; 3] = [Finished::Success, Finished::Failure, Finished::None];

    fn status(execution: Execution, finished: Finished, details: &[&str]) -> Status {
        ActionFeedback::new(
            execution,
            finished,
            details.iter().map(|d| (*d).to_owned()).collect(),
        )
        .status
    }

    fn every_status() -> impl Iterator<Item = Status> {
        ALL_EXECUTIONS.into_iter().flat_map(|e| {
            ALL_FINISHED
                .into_iter()
                .map(move |f| status(e, f, &["line"]))
        })
    }

    fn next(state: ActionState, s: &Status) -> ActionState {
        on_feedback(state, s).unwrap().next
    }

    use ActionState as A;
    use Execution as E;
    use Finished as F;

    #[test]
    fn success_only_on_closed_success() {
        for s in every_status() {
            for &state in A::ALL.iter().filter(|s| !s.is_final()) {
                let succeeded = matches!(on_feedback(state, &s), Ok(o) if o.next == A::Succeeded);
                let expected = s.execution == E::Closed && s.result.finished == F::Success;
                assert_eq!(succeeded, expected, "{state} + {s:?}");
            }
        }
    }

    #[test]
    fn progress_never_counts() {
        let mut state = A::Scheduled;
        for (execution, expected) in [
            (E::Download, A::Running),
            (E::Downloaded, A::Downloaded),
            (E::Proceeding, A::Running),
            (E::Resumed, A::Running),
            (E::Scheduled, A::Running),
        ] {
            // Even with finished success: only `closed` ends an action.
            state = next(state, &status(execution, F::Success, &[]));
            assert_eq!(state, expected, "{execution:?}");
            assert!(!state.counts_as_success() && !state.counts_as_failure());
        }
        assert_eq!(
            next(A::Scheduled, &status(E::Downloaded, F::None, &[])),
            A::Downloaded
        );
        let done = next(state, &status(E::Closed, F::Success, &["committed"]));
        assert_eq!(done, A::Succeeded);
        assert!(done.counts_as_success());
    }

    #[test]
    fn closed_failure_fails_with_the_details() {
        let outcome = on_feedback(
            A::Running,
            &status(
                E::Closed,
                F::Failure,
                &["health check failed", "", " rolled back "],
            ),
        )
        .unwrap();
        assert_eq!(outcome.next, A::Failed);
        assert!(outcome.next.counts_as_failure());
        assert_eq!(
            outcome.reason.as_deref(),
            Some("health check failed; rolled back")
        );
        let outcome = on_feedback(A::Running, &status(E::Closed, F::Failure, &[])).unwrap();
        assert_eq!(outcome.reason.as_deref(), Some(NO_REASON));
        let outcome = on_feedback(A::Running, &status(E::Closed, F::Success, &["ok"])).unwrap();
        assert_eq!(outcome.reason, None);
    }

    #[test]
    fn closed_none_is_ambiguous() {
        assert_eq!(
            on_feedback(A::Running, &status(E::Closed, F::None, &[])),
            Err(FeedbackError::Ambiguous)
        );
    }

    #[test]
    fn rejected_fails_with_a_prefix() {
        for finished in ALL_FINISHED {
            let outcome = on_feedback(
                A::Scheduled,
                &status(E::Rejected, finished, &["wrong hardware"]),
            )
            .unwrap();
            assert_eq!(outcome.next, A::Failed);
            assert_eq!(outcome.reason.as_deref(), Some("rejected: wrong hardware"));
        }
        let outcome = on_feedback(A::Running, &status(E::Rejected, F::None, &[])).unwrap();
        assert_eq!(outcome.reason.as_deref(), Some("rejected: no reason given"));
    }

    #[test]
    fn feedback_after_the_end_changes_nothing() {
        for &state in A::ALL.iter().filter(|s| s.is_final()) {
            for s in every_status() {
                assert_eq!(
                    on_feedback(state, &s),
                    Err(FeedbackError::AlreadyFinal { state })
                );
                assert_eq!(
                    on_cancel_feedback(state, &s),
                    Err(FeedbackError::AlreadyFinal { state })
                );
            }
            assert_eq!(on_deployment_fetched(state), state);
        }
        // A replayed success after a failure, and the other way round.
        let failed = next(A::Running, &status(E::Closed, F::Failure, &[]));
        assert!(on_feedback(failed, &status(E::Closed, F::Success, &[])).is_err());
        let succeeded = next(A::Running, &status(E::Closed, F::Success, &[]));
        assert!(on_feedback(succeeded, &status(E::Closed, F::Failure, &[])).is_err());
    }

    #[test]
    fn canceled_without_a_request_is_unexpected() {
        let err = on_feedback(A::Running, &status(E::Canceled, F::Success, &[])).unwrap_err();
        assert_eq!(
            err,
            FeedbackError::Unexpected {
                state: A::Running,
                execution: E::Canceled
            }
        );
        assert_eq!(
            err.to_string(),
            "feedback canceled does not apply to an action that is running"
        );
    }

    #[test]
    fn fetching_starts_a_scheduled_action_only() {
        assert_eq!(on_deployment_fetched(A::Scheduled), A::Running);
        assert_eq!(on_deployment_fetched(A::Running), A::Running);
        assert_eq!(on_deployment_fetched(A::Downloaded), A::Downloaded);
        assert_eq!(
            on_deployment_fetched(A::CancelRequested),
            A::CancelRequested
        );
    }

    #[test]
    fn cancel_requests() {
        assert_eq!(on_cancel_requested(A::Scheduled), Ok(A::Canceled));
        assert_eq!(on_cancel_requested(A::Running), Ok(A::CancelRequested));
        assert_eq!(on_cancel_requested(A::Downloaded), Ok(A::CancelRequested));
        assert_eq!(
            on_cancel_requested(A::CancelRequested),
            Ok(A::CancelRequested)
        );
        for state in [A::Succeeded, A::Failed, A::Canceled] {
            assert_eq!(on_cancel_requested(state), Err(CancelError { state }));
        }
    }

    #[test]
    fn cancel_accepted() {
        for s in [
            status(E::Closed, F::Success, &[]),
            status(E::Canceled, F::None, &[]),
            status(E::Canceled, F::Success, &[]),
        ] {
            let outcome = on_cancel_feedback(A::CancelRequested, &s).unwrap();
            assert_eq!(outcome, FeedbackOutcome::to(A::Canceled), "{s:?}");
        }
        // The device may also answer on the deployment's feedback.
        assert_eq!(
            next(A::CancelRequested, &status(E::Canceled, F::Success, &[])),
            A::Canceled
        );
    }

    #[test]
    fn cancel_refused_goes_back_to_running() {
        let outcome = on_cancel_feedback(
            A::CancelRequested,
            &status(E::Rejected, F::None, &["already booted the new slot"]),
        )
        .unwrap();
        assert_eq!(outcome.next, A::Running);
        assert_eq!(
            outcome.reason.as_deref(),
            Some("cancel refused: already booted the new slot")
        );
        let outcome =
            on_cancel_feedback(A::CancelRequested, &status(E::Closed, F::Failure, &[])).unwrap();
        assert_eq!(outcome.next, A::Running);
        assert_eq!(
            outcome.reason.as_deref(),
            Some("cancel refused: no reason given")
        );
        // Its deployment then ends normally.
        assert_eq!(
            next(outcome.next, &status(E::Closed, F::Success, &[])),
            A::Succeeded
        );
    }

    #[test]
    fn cancel_pending_while_the_device_works() {
        for execution in [
            E::Proceeding,
            E::Download,
            E::Downloaded,
            E::Scheduled,
            E::Resumed,
        ] {
            let s = status(execution, F::None, &[]);
            assert_eq!(
                on_cancel_feedback(A::CancelRequested, &s).unwrap().next,
                A::CancelRequested
            );
            // Progress on the deployment does not drop the pending cancel either.
            assert_eq!(next(A::CancelRequested, &s), A::CancelRequested);
        }
        assert_eq!(
            on_cancel_feedback(A::CancelRequested, &status(E::Closed, F::None, &[])),
            Err(FeedbackError::Ambiguous)
        );
    }

    #[test]
    fn a_device_that_finished_first_wins_over_the_cancel() {
        assert_eq!(
            next(A::CancelRequested, &status(E::Closed, F::Success, &[])),
            A::Succeeded
        );
        assert_eq!(
            next(A::CancelRequested, &status(E::Closed, F::Failure, &[])),
            A::Failed
        );
    }

    #[test]
    fn cancel_feedback_needs_a_pending_cancel() {
        for state in [A::Scheduled, A::Running, A::Downloaded] {
            assert_eq!(
                on_cancel_feedback(state, &status(E::Closed, F::Success, &[])),
                Err(FeedbackError::NoCancelPending { state })
            );
        }
    }

    #[test]
    fn reasons_are_bounded_at_a_char_boundary() {
        let long = "é".repeat(400); // 800 bytes
        let outcome = on_feedback(A::Running, &status(E::Closed, F::Failure, &[&long])).unwrap();
        let reason = outcome.reason.unwrap();
        assert!(reason.len() <= MAX_REASON_LEN, "{}", reason.len());
        assert!(reason.ends_with('…'));
        assert!(reason.len() > MAX_REASON_LEN - 4);
        let exact = "x".repeat(MAX_REASON_LEN);
        assert_eq!(bounded(exact.clone()), exact);
        let over = bounded("x".repeat(MAX_REASON_LEN + 1));
        assert_eq!(over.len(), MAX_REASON_LEN);
        assert!(over.ends_with('…'));
    }

    #[test]
    fn names_agree_in_text_and_json() {
        for &state in A::ALL {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
            assert_eq!(state.as_str().parse::<A>().unwrap(), state);
        }
        assert_eq!(A::CancelRequested.to_string(), "cancel-requested");
        assert!("cancel_requested".parse::<A>().is_err());
    }
}
