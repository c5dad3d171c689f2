//! The rollout state machine: the operator's commands ([`apply`]) and the automatic steps between
//! phases ([`decide`]).
//!
//! ```text
//!            start            pause
//!  created ───────► running ◄───────► paused        decide: running ─► running (next phase)
//!     │              │  │    resume     │                    running ─► finished (last phase done)
//!     └── cancel ────┴──┴──► canceled ◄─┘                    running ─► paused   (error threshold)
//! ```
//!
//! Pure: the server loads the state, the current phase (from 0) and the current phase's
//! [`PhaseCounts`], calls these functions and stores what they return, in one transaction. Nothing
//! here runs on a timer; the server calls [`decide`] whenever an action of the rollout changes (and
//! after `resume`). It does not create or cancel actions, and does not decide which device gets
//! which phase (see [`crate::plan`]).

use crate::action::ActionState;
use crate::names::named_enum;
use crate::spec::{ALL_PERCENT, RolloutSpec, Threshold};

named_enum! {
    /// Where a rollout is.
    pub enum RolloutState ("rollout state") {
        /// Defined, not started: no device has an action to fetch.
        Created => "created",
        /// Handing out the release to the current phase and the phases before it.
        Running => "running",
        /// Stopped by the operator or by the error threshold: hands out nothing new; devices that
        /// already fetched their action finish it.
        Paused => "paused",
        /// Every phase passed its success threshold. Final.
        Finished => "finished",
        /// Stopped for good by the operator. Final.
        Canceled => "canceled",
    }
}

impl RolloutState {
    /// Finished and canceled rollouts never change again.
    pub fn is_final(self) -> bool {
        matches!(self, RolloutState::Finished | RolloutState::Canceled)
    }
}

named_enum! {
    /// What an operator can ask of a rollout.
    pub enum Command ("command") {
        Start => "start",
        Pause => "pause",
        Resume => "resume",
        Cancel => "cancel",
    }
}

/// A command that does not apply to the rollout's state; the server answers 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {command} a rollout that is {state}")]
pub struct TransitionError {
    pub state: RolloutState,
    pub command: Command,
}

/// The state after an operator's command. Start only from created; pause only when running;
/// resume only when paused; cancel from any state that is not final. Nothing is idempotent:
/// pausing a paused rollout is an error, so that two operators learn of each other.
///
/// On `resume` the server must record the current phase's failures as
/// [`PhaseCounts::accepted_failures`] (see there), then call [`decide`].
pub fn apply(state: RolloutState, command: Command) -> Result<RolloutState, TransitionError> {
    use Command as C;
    use RolloutState as S;
    match (state, command) {
        (S::Created, C::Start) => Ok(S::Running),
        (S::Running, C::Pause) => Ok(S::Paused),
        (S::Paused, C::Resume) => Ok(S::Running),
        (S::Created | S::Running | S::Paused, C::Cancel) => Ok(S::Canceled),
        (S::Created | S::Running | S::Paused | S::Finished | S::Canceled, _) => {
            Err(TransitionError { state, command })
        }
    }
}

/// Whether the server may hand out actions a device has not fetched yet (the `deploymentBase`
/// link in the poll answer), to members of the current phase and the phases before it.
///
/// Only a running rollout does. A paused one hands out nothing new, so neither later phases nor
/// late joiners get ahead of the operator's decision; actions already fetched go on (stopping them
/// is what cancel is for). A finished rollout hands out nothing either: the devices it targeted
/// all have their actions, and a device that starts matching after the end is the next rollout's
/// business, not a silent extension of one that is reported as done.
pub fn is_handing_out(state: RolloutState) -> bool {
    state == RolloutState::Running
}

/// [`is_handing_out`] for one device: its phase has started and the rollout is running.
pub fn may_hand_out(state: RolloutState, current_phase: u32, device_phase: u32) -> bool {
    is_handing_out(state) && device_phase <= current_phase
}

/// The actions of ONE phase (the current one), counted by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// All actions in the phase, whatever their state (late joiners included).
    pub members: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Actions canceled one by one; they no longer count for or against the phase.
    pub canceled: u32,
    /// Failures the operator accepted by resuming: the phase's `failed` count when the rollout was
    /// last resumed in this phase, 0 when the phase started after the last resume. Without it a
    /// rollout paused for errors would pause again at once on resume, and a phase with a failure
    /// could never reach a 100% success threshold. Accepted failures count neither towards the
    /// error threshold nor in the success threshold's denominator.
    pub accepted_failures: u32,
}

impl PhaseCounts {
    /// Counts the states of a phase's actions; `accepted_failures` is left at 0.
    pub fn tally(states: impl IntoIterator<Item = ActionState>) -> PhaseCounts {
        let mut counts = PhaseCounts::default();
        for state in states {
            counts.members = counts.members.saturating_add(1);
            match state {
                ActionState::Succeeded => counts.succeeded = counts.succeeded.saturating_add(1),
                ActionState::Failed => counts.failed = counts.failed.saturating_add(1),
                ActionState::Canceled => counts.canceled = counts.canceled.saturating_add(1),
                ActionState::Scheduled
                | ActionState::Running
                | ActionState::Downloaded
                | ActionState::CancelRequested => {}
            }
        }
        counts
    }

    /// Failures since the last resume.
    pub fn new_failures(&self) -> u32 {
        self.failed.saturating_sub(self.accepted_failures)
    }
}

/// What the server does after an action of a running rollout changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: wait for more feedback.
    Stay,
    /// The current phase passed its success threshold: make phase `to` (from 0) current, with
    /// `accepted_failures` back at 0, and call [`decide`] again (the next phase may be empty).
    Advance { to: u32 },
    /// The last phase passed: the rollout becomes [`RolloutState::Finished`].
    Finish,
    /// The error threshold was reached: the rollout becomes [`RolloutState::Paused`]; `reason` is
    /// for the operator (phases numbered from 1 there).
    Pause { reason: String },
}

/// The automatic step for a rollout in `state` whose phase `current_phase` (from 0) has `counts`.
///
/// Only a running rollout moves. The error threshold is checked first, so a phase that reached
/// both thresholds pauses: failures are never outvoted. Then the success threshold: at least
/// `spec.success_threshold`% of the phase's members that are neither canceled nor accepted
/// failures succeeded. A phase with no such members (an empty phase, such as phase 2 of
/// `1,10,50,100` with 3 devices) passes at once. A `current_phase` at or past the last phase is
/// treated as the last. Inconsistent counts (more outcomes than members) do not panic.
pub fn decide(
    spec: &RolloutSpec,
    state: RolloutState,
    current_phase: u32,
    counts: &PhaseCounts,
) -> Decision {
    if state != RolloutState::Running {
        return Decision::Stay;
    }
    let failed = counts.new_failures();
    if failed > 0 && spec.error_threshold.reached(failed, counts.members) {
        return Decision::Pause {
            reason: pause_reason(spec, current_phase, counts),
        };
    }
    let settled = counts.canceled.saturating_add(counts.accepted_failures);
    let expected = u64::from(counts.members.saturating_sub(settled));
    let succeeded = u64::from(counts.succeeded);
    if expected == 0
        || succeeded * u64::from(ALL_PERCENT) >= u64::from(spec.success_threshold) * expected
    {
        if spec.phases.is_last(current_phase) {
            Decision::Finish
        } else {
            Decision::Advance {
                to: current_phase + 1,
            }
        }
    } else {
        Decision::Stay
    }
}

/// "phase 1 of 4: 1 of 1 devices failed (error threshold 1)".
fn pause_reason(spec: &RolloutSpec, current_phase: u32, counts: &PhaseCounts) -> String {
    let threshold = match spec.error_threshold {
        Threshold::Count(_) => format!("error threshold {}", spec.error_threshold),
        Threshold::Percent(_) => format!("error threshold {} of the phase", spec.error_threshold),
    };
    let failed = if counts.accepted_failures == 0 {
        format!("{} of {} devices failed", counts.failed, counts.members)
    } else {
        format!(
            "{} more of {} devices failed after {} accepted on resume",
            counts.new_failures(),
            counts.members,
            counts.accepted_failures
        )
    };
    format!(
        "phase {} of {}: {failed} ({threshold})",
        u64::from(current_phase) + 1,
        spec.phases.count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Phases;

    fn spec(phases: &str, success: u8, error: &str) -> RolloutSpec {
        RolloutSpec {
            phases: Phases::parse(phases).unwrap(),
            success_threshold: success,
            error_threshold: error.parse().unwrap(),
        }
    }

    fn counts(members: u32, succeeded: u32, failed: u32, canceled: u32) -> PhaseCounts {
        PhaseCounts {
            members,
            succeeded,
            failed,
            canceled,
            accepted_failures: 0,
        }
    }

    const RUNNING: RolloutState = RolloutState::Running;

    #[test]
    fn commands_follow_the_diagram() {
        use Command as C;
        use RolloutState as S;
        let allowed = [
            (S::Created, C::Start, S::Running),
            (S::Running, C::Pause, S::Paused),
            (S::Paused, C::Resume, S::Running),
            (S::Created, C::Cancel, S::Canceled),
            (S::Running, C::Cancel, S::Canceled),
            (S::Paused, C::Cancel, S::Canceled),
        ];
        for &state in RolloutState::ALL {
            for &command in Command::ALL {
                let expected = allowed
                    .iter()
                    .find(|(s, c, _)| *s == state && *c == command)
                    .map(|(_, _, next)| *next)
                    .ok_or(TransitionError { state, command });
                assert_eq!(apply(state, command), expected, "{command} when {state}");
            }
        }
    }

    #[test]
    fn transition_errors_name_state_and_command() {
        let err = apply(RolloutState::Running, Command::Resume).unwrap_err();
        assert_eq!(err.to_string(), "cannot resume a rollout that is running");
        let err = apply(RolloutState::Finished, Command::Cancel).unwrap_err();
        assert_eq!(err.to_string(), "cannot cancel a rollout that is finished");
    }

    #[test]
    fn final_states_take_no_command() {
        for &state in RolloutState::ALL {
            let takes_one = Command::ALL.iter().any(|&c| apply(state, c).is_ok());
            assert_eq!(state.is_final(), !takes_one, "{state}");
        }
    }

    #[test]
    fn only_a_running_rollout_hands_out() {
        for &state in RolloutState::ALL {
            assert_eq!(is_handing_out(state), state == RUNNING, "{state}");
        }
        assert!(may_hand_out(RUNNING, 1, 0));
        assert!(may_hand_out(RUNNING, 1, 1));
        assert!(!may_hand_out(RUNNING, 1, 2));
        assert!(!may_hand_out(RolloutState::Paused, 1, 0));
        assert!(!may_hand_out(RolloutState::Finished, 3, 0));
    }

    #[test]
    fn advances_when_enough_succeeded() {
        let s = spec("1,10,50,100", 100, "1");
        assert_eq!(decide(&s, RUNNING, 0, &counts(10, 9, 0, 0)), Decision::Stay);
        assert_eq!(
            decide(&s, RUNNING, 0, &counts(10, 10, 0, 0)),
            Decision::Advance { to: 1 }
        );
        let s = spec("1,10,50,100", 80, "50%");
        assert_eq!(decide(&s, RUNNING, 1, &counts(10, 7, 2, 0)), Decision::Stay);
        assert_eq!(
            decide(&s, RUNNING, 1, &counts(10, 8, 2, 0)),
            Decision::Advance { to: 2 }
        );
        // 80% of 9 is 7.2: 7 is not enough, 8 is.
        assert_eq!(decide(&s, RUNNING, 1, &counts(9, 7, 0, 0)), Decision::Stay);
        assert_eq!(
            decide(&s, RUNNING, 1, &counts(9, 8, 0, 0)),
            Decision::Advance { to: 2 }
        );
    }

    #[test]
    fn finishes_after_the_last_phase() {
        let s = spec("1,10,50,100", 100, "1");
        assert_eq!(
            decide(&s, RUNNING, 3, &counts(5, 5, 0, 0)),
            Decision::Finish
        );
        assert_eq!(decide(&s, RUNNING, 3, &counts(5, 4, 0, 0)), Decision::Stay);
        let single = spec("100", 100, "1");
        assert_eq!(
            decide(&single, RUNNING, 0, &counts(1, 1, 0, 0)),
            Decision::Finish
        );
        // Past the last phase is the last phase.
        assert_eq!(
            decide(&s, RUNNING, 9, &counts(0, 0, 0, 0)),
            Decision::Finish
        );
        assert_eq!(
            decide(&s, RUNNING, u32::MAX, &counts(0, 0, 0, 0)),
            Decision::Finish
        );
    }

    #[test]
    fn pauses_on_a_count_of_failures() {
        let s = spec("1,10,50,100", 100, "1");
        assert_eq!(
            decide(&s, RUNNING, 0, &counts(1, 0, 1, 0)),
            Decision::Pause {
                reason: "phase 1 of 4: 1 of 1 devices failed (error threshold 1)".to_owned()
            }
        );
        let s = spec("1,10,50,100", 100, "3");
        assert_eq!(
            decide(&s, RUNNING, 1, &counts(90, 10, 2, 0)),
            Decision::Stay
        );
        assert!(matches!(
            decide(&s, RUNNING, 1, &counts(90, 10, 3, 0)),
            Decision::Pause { .. }
        ));
    }

    #[test]
    fn pauses_on_a_percentage_of_failures() {
        let s = spec("1,10,50,100", 50, "20%");
        assert_eq!(decide(&s, RUNNING, 2, &counts(10, 3, 1, 0)), Decision::Stay);
        assert_eq!(
            decide(&s, RUNNING, 2, &counts(10, 3, 2, 0)),
            Decision::Pause {
                reason: "phase 3 of 4: 2 of 10 devices failed (error threshold 20% of the phase)"
                    .to_owned()
            }
        );
    }

    #[test]
    fn errors_win_over_success() {
        // 9 of 10 succeeded passes 80%, but the one failure reaches the threshold.
        let s = spec("1,10,50,100", 80, "1");
        assert!(matches!(
            decide(&s, RUNNING, 0, &counts(10, 9, 1, 0)),
            Decision::Pause { .. }
        ));
        // Also at the last phase: a failure is not hidden behind "finished".
        assert!(matches!(
            decide(&s, RUNNING, 3, &counts(10, 9, 1, 0)),
            Decision::Pause { .. }
        ));
    }

    #[test]
    fn empty_phases_pass_at_once() {
        let s = spec("1,10,50,100", 100, "1");
        assert_eq!(
            decide(&s, RUNNING, 1, &PhaseCounts::default()),
            Decision::Advance { to: 2 }
        );
        assert_eq!(
            decide(&s, RUNNING, 3, &PhaseCounts::default()),
            Decision::Finish
        );
    }

    #[test]
    fn canceled_actions_do_not_hold_a_phase_back() {
        let s = spec("1,10,50,100", 100, "1");
        assert_eq!(
            decide(&s, RUNNING, 1, &counts(10, 9, 0, 1)),
            Decision::Advance { to: 2 }
        );
        assert_eq!(decide(&s, RUNNING, 1, &counts(10, 8, 0, 1)), Decision::Stay);
    }

    #[test]
    fn nothing_moves_unless_running() {
        let s = spec("1,10,50,100", 100, "1");
        for state in [
            RolloutState::Created,
            RolloutState::Paused,
            RolloutState::Finished,
            RolloutState::Canceled,
        ] {
            assert_eq!(
                decide(&s, state, 0, &counts(1, 1, 0, 0)),
                Decision::Stay,
                "{state}"
            );
            assert_eq!(
                decide(&s, state, 0, &counts(1, 0, 1, 0)),
                Decision::Stay,
                "{state}"
            );
            assert_eq!(
                decide(&s, state, 1, &PhaseCounts::default()),
                Decision::Stay
            );
        }
    }

    #[test]
    fn resume_accepts_the_failures_so_far() {
        let s = spec("1,10,50,100", 100, "1");
        let mut c = counts(10, 0, 1, 0);
        assert!(matches!(decide(&s, RUNNING, 1, &c), Decision::Pause { .. }));
        // The operator resumes: the server records the failure as accepted.
        c.accepted_failures = c.failed;
        assert_eq!(decide(&s, RUNNING, 1, &c), Decision::Stay);
        // The other nine succeed: the phase passes although one failed.
        c.succeeded = 9;
        assert_eq!(decide(&s, RUNNING, 1, &c), Decision::Advance { to: 2 });
        // A new failure after the resume pauses again.
        c.succeeded = 5;
        c.failed = 2;
        assert_eq!(
            decide(&s, RUNNING, 1, &c),
            Decision::Pause {
                reason: "phase 2 of 4: 1 more of 10 devices failed after 1 accepted on resume \
                         (error threshold 1)"
                    .to_owned()
            }
        );
    }

    #[test]
    fn inconsistent_counts_do_not_panic() {
        let s = spec("1,100", 100, "50%");
        let c = PhaseCounts {
            members: 1,
            succeeded: u32::MAX,
            failed: 0,
            canceled: u32::MAX,
            accepted_failures: u32::MAX,
        };
        assert_eq!(decide(&s, RUNNING, 0, &c), Decision::Advance { to: 1 });
    }

    #[test]
    fn tally_counts_outcomes() {
        use ActionState as A;
        let c = PhaseCounts::tally([
            A::Scheduled,
            A::Running,
            A::Downloaded,
            A::CancelRequested,
            A::Succeeded,
            A::Succeeded,
            A::Failed,
            A::Canceled,
        ]);
        assert_eq!(c, counts(8, 2, 1, 1));
    }

    #[test]
    fn names_agree_in_text_and_json() {
        for &state in RolloutState::ALL {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
            assert_eq!(state.as_str().parse::<RolloutState>().unwrap(), state);
            assert_eq!(
                serde_json::from_str::<RolloutState>(&format!("\"{state}\"")).unwrap(),
                state
            );
        }
        for &command in Command::ALL {
            assert_eq!(
                serde_json::to_string(&command).unwrap(),
                format!("\"{command}\"")
            );
            assert_eq!(command.as_str().parse::<Command>().unwrap(), command);
        }
        let err = "Running".parse::<RolloutState>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown rollout state \"Running\", expected one of: created, running, paused, \
             finished, canceled"
        );
    }
}
