//! The daemon's decisions, without I/O: when to poll next, what to do with a deployment or a
//! cancel request the fleet server offers, which final result is still owed to the server and
//! what it says, when a reboot is allowed, and the slot versions the inventory reports.
//!
//! The HTTP side (hawkBit DDI requests, TLS, tokens) is the client's `ddi_transport`; the wire
//! types are `rustupdate-ddi`'s. Nothing here reads a clock or a random source: both are passed
//! in.

use crate::SlotId;
use crate::lifecycle::SituationKind;
use crate::report::Status;
use crate::state::{Outcome, OutcomeKind, State};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Poll timing: the server's interval (or the configured default) after a good cycle, an
/// exponential backoff after failed ones, both spread by a jitter so that devices restarted
/// together (a power failure in a building) do not poll in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    /// Used until the server states its own interval.
    pub default_interval: Duration,
    /// First delay after a failed cycle; it doubles with every further failure.
    pub backoff_base: Duration,
    /// Longest delay after failures.
    pub backoff_cap: Duration,
    /// Fraction of the delay by which it is spread either way (0.1 = ±10 %).
    pub jitter: f64,
}

/// Never poll more often than this, whatever the server says (no busy loop on `00:00:00`).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

impl PollPolicy {
    /// The delay before the next cycle. `errors` is the number of failed cycles in a row (0 after
    /// a good one); `random` is uniform in `[0, 1)`.
    pub fn next_delay(
        &self,
        server_interval: Option<Duration>,
        errors: u32,
        random: f64,
    ) -> Duration {
        let base = if errors == 0 {
            server_interval.unwrap_or(self.default_interval)
        } else {
            let doublings = (errors - 1).min(20);
            self.backoff_base
                .saturating_mul(1u32 << doublings)
                .min(self.backoff_cap)
        };
        let spread = 1.0 - self.jitter + 2.0 * self.jitter * random.clamp(0.0, 1.0);
        base.mul_f64(spread.max(0.0)).max(MIN_POLL_INTERVAL)
    }
}

/// What the daemon does with the deployment action the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStep {
    /// Nothing of this action is on the device yet: download and install it.
    Install,
    /// This action's install was interrupted (power cut, crash) before the slot was armed: do it
    /// again, resuming the download where the verified data in the slot ends.
    Resume,
    /// This action is installed and armed: reboot when the reboot policy allows.
    AwaitReboot,
    /// This action has a recorded result; its final feedback is (or was) sent from the state.
    Finished,
    /// Another update is in progress or a trial is undecided: wait (the boot-time
    /// `rustupdate commit` decides first).
    Busy,
}

/// Decides what to do with deployment `action`, from the device status.
pub fn deployment_step(status: &Status, action: u64) -> DeploymentStep {
    use SituationKind as S;
    let ours = status
        .pending
        .as_ref()
        .is_some_and(|p| p.action == Some(action));
    match status.situation {
        S::AwaitingReboot if ours => DeploymentStep::AwaitReboot,
        S::InstallInterrupted if ours => DeploymentStep::Resume,
        S::Trial
        | S::UnknownTrial
        | S::CommitInterrupted
        | S::AwaitingReboot
        | S::ForeignSwitch => DeploymentStep::Busy,
        // Finished updates (rolled back, fell back, interrupted) are recorded by the install.
        S::Idle | S::RolledBack | S::FellBack | S::InstallInterrupted => {
            if ours
                || status
                    .last_result
                    .as_ref()
                    .is_some_and(|o| o.action == Some(action))
            {
                DeploymentStep::Finished
            } else {
                DeploymentStep::Install
            }
        }
    }
}

/// What the daemon answers to a cancel request for `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelStep {
    /// Nothing of the action is armed: stop it (an interrupted install is recorded as cancelled)
    /// and confirm.
    Accept,
    /// The new slot is armed or on trial: too late; answer with the reason.
    Refuse(String),
}

pub fn cancel_step(status: &Status, action: u64) -> CancelStep {
    let Some(pending) = status.pending.as_ref().filter(|p| p.action == Some(action)) else {
        return CancelStep::Accept;
    };
    match status.situation {
        SituationKind::InstallInterrupted => CancelStep::Accept,
        _ => CancelStep::Refuse(format!(
            "too late to cancel: {} is installed in slot {} and armed ({})",
            pending.release.version, pending.release.slot, pending.stage
        )),
    }
}

/// The final result of a fleet action, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalReport {
    pub action: u64,
    /// `closed` + `success` on the deployment: the new slot booted, passed its checks and is
    /// committed.
    pub success: bool,
    /// Sent to the action's cancel resource (a cancel the device honoured) rather than to its
    /// deployment.
    pub cancel: bool,
    pub details: Vec<String>,
    /// The outcome as a number, for servers that show codes: see [`outcome_code`].
    pub code: i32,
}

/// `code` of a final report: 0 committed, 1 failed, 3 rolled back, 4 rejected, 5 fell back,
/// 6 cancelled (the first ones are the client's exit codes for the same events).
pub fn outcome_code(kind: OutcomeKind) -> i32 {
    match kind {
        OutcomeKind::Committed => 0,
        OutcomeKind::Failed => 1,
        OutcomeKind::RolledBack => 3,
        OutcomeKind::Rejected => 4,
        OutcomeKind::FellBack => 5,
        OutcomeKind::Canceled => 6,
    }
}

/// The final result still owed to the server: the last outcome belongs to a fleet action the
/// server has not acknowledged yet. It stays owed across reboots and power cuts until the server
/// accepts it ([`crate::Updater::mark_reported`]), so it is sent exactly once as far as the server
/// can tell (a repeat after a lost acknowledgement is answered "already recorded").
pub fn owed(state: &State) -> Option<FinalReport> {
    let action = state.last_result.as_ref()?.action?;
    if state.reported_action == Some(action) {
        return None;
    }
    result_of(state, action)
}

/// The final result of `action` if it is the last one recorded, acknowledged or not: what the
/// daemon sends again when a server offers a finished action anew (its acknowledgement got lost,
/// or, as gooseBit does, it reuses the id for a retry).
pub fn result_of(state: &State, action: u64) -> Option<FinalReport> {
    let outcome = state.last_result.as_ref()?;
    (outcome.action == Some(action)).then(|| final_report(action, outcome))
}

fn final_report(action: u64, outcome: &Outcome) -> FinalReport {
    FinalReport {
        action,
        success: outcome.result == OutcomeKind::Committed,
        cancel: outcome.result == OutcomeKind::Canceled,
        details: vec![
            format!("{}: {}", outcome.result, outcome.detail),
            format!(
                "version {}, transaction {}",
                outcome.version, outcome.transaction
            ),
        ],
        code: outcome_code(outcome.result),
    }
}

/// When the daemon may reboot into an installed update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootPolicy {
    /// As soon as the install is armed.
    Immediate,
    /// Never by itself: a person or another service reboots (the server is told it waits).
    Manual,
    /// Only inside a daily window (UTC).
    Window(MaintenanceWindow),
}

impl RebootPolicy {
    /// Whether a reboot is allowed at `minute_of_day` (UTC, 0..1440).
    pub fn allows(self, minute_of_day: u32) -> bool {
        match self {
            RebootPolicy::Immediate => true,
            RebootPolicy::Manual => false,
            RebootPolicy::Window(window) => window.contains(minute_of_day),
        }
    }
}

/// A daily window `HH:MM-HH:MM` (UTC; it may wrap past midnight, `22:00-02:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    start: u32,
    end: u32,
}

const MINUTES_PER_DAY: u32 = 24 * 60;

impl MaintenanceWindow {
    pub fn contains(self, minute_of_day: u32) -> bool {
        let m = minute_of_day % MINUTES_PER_DAY;
        if self.start <= self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("maintenance window {0:?} is not HH:MM-HH:MM (24-hour, UTC, start and end differ)")]
pub struct WindowError(String);

impl FromStr for MaintenanceWindow {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<MaintenanceWindow, WindowError> {
        let err = || WindowError(text.to_owned());
        let minute = |part: &str| -> Option<u32> {
            let (h, m) = part.split_once(':')?;
            if h.len() != 2
                || m.len() != 2
                || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = text.split_once('-').ok_or_else(err)?;
        let (start, end) = (minute(start).ok_or_else(err)?, minute(end).ok_or_else(err)?);
        if start == end {
            return Err(err());
        }
        Ok(MaintenanceWindow { start, end })
    }
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// What the inventory says about the slots: the version running now and the version each slot
/// holds, as far as the state knows (empty when unknown, e.g. a factory image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotVersions {
    pub running: String,
    pub a: String,
    pub b: String,
}

pub fn slot_versions(state: &State, booted: SlotId) -> SlotVersions {
    let mut a = String::new();
    let mut b = String::new();
    let mut set = |slot: SlotId, version: &str| match slot {
        SlotId::A => a = version.to_owned(),
        SlotId::B => b = version.to_owned(),
    };
    // Oldest knowledge first, so that newer facts overwrite it.
    if let Some(outcome) = &state.last_result
        && matches!(
            outcome.result,
            OutcomeKind::RolledBack | OutcomeKind::FellBack
        )
    {
        set(booted.other(), &outcome.version);
    }
    if let Some(committed) = &state.committed {
        set(committed.slot, &committed.version);
    }
    if let Some(pending) = &state.pending {
        set(pending.release.slot, &pending.release.version);
    }
    let running = match booted {
        SlotId::A => a.clone(),
        SlotId::B => b.clone(),
    };
    SlotVersions { running, a, b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Pending, Release, Stage};

    const POLICY: PollPolicy = PollPolicy {
        default_interval: Duration::from_secs(300),
        backoff_base: Duration::from_secs(2),
        backoff_cap: Duration::from_secs(60),
        jitter: 0.1,
    };

    #[test]
    fn polls_at_the_servers_interval_with_jitter() {
        let secs = |server: Option<u64>, errors, random| {
            POLICY
                .next_delay(server.map(Duration::from_secs), errors, random)
                .as_secs_f64()
        };
        assert_eq!(secs(None, 0, 0.5), 300.0);
        assert_eq!(secs(Some(60), 0, 0.5), 60.0);
        assert_eq!(secs(Some(60), 0, 0.0), 54.0);
        assert!((secs(Some(60), 0, 0.999_999) - 66.0).abs() < 0.001);
        // A server saying 00:00:00 does not make a busy loop.
        assert_eq!(secs(Some(0), 0, 0.5), 1.0);
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        let delays: Vec<f64> = (1..=8)
            .map(|errors| {
                POLICY
                    .next_delay(Some(Duration::from_secs(5)), errors, 0.5)
                    .as_secs_f64()
            })
            .collect();
        assert_eq!(delays, [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
        // Even the worst jitter keeps every step longer than the one before (until the cap).
        for errors in 1..5 {
            let low_next = POLICY.next_delay(None, errors + 1, 0.0);
            let high_this = POLICY.next_delay(None, errors, 0.999);
            assert!(low_next > high_this, "{errors}");
        }
        assert!(POLICY.next_delay(None, u32::MAX, 0.5) <= Duration::from_secs(60));
    }

    fn status(situation: SituationKind, state: &State) -> Status {
        Status {
            device_type: "board".into(),
            booted_slot: SlotId::A,
            bootloader: crate::report::BootEnvStatus {
                slot: SlotId::A,
                upgrade_available: false,
                bootcount: 0,
                bootlimit: 3,
            },
            situation,
            committed: state.committed.clone(),
            security_version: 0,
            pending: state.pending.clone(),
            last_result: state.last_result.clone(),
            recovered_from: None,
        }
    }

    fn release(slot: SlotId, version: &str) -> Release {
        Release {
            slot,
            name: "img".into(),
            version: version.into(),
            security_version: None,
            sha256: "00".repeat(32),
        }
    }

    fn pending(action: Option<u64>, stage: Stage) -> Pending {
        Pending {
            transaction: "1-abc".into(),
            release: release(SlotId::B, "2.0"),
            stage,
            action,
            checkpoint: None,
        }
    }

    fn outcome(action: Option<u64>, result: OutcomeKind) -> Outcome {
        Outcome {
            transaction: "1-abc".into(),
            version: "2.0".into(),
            result,
            detail: "details".into(),
            action,
        }
    }

    #[test]
    fn deployment_steps() {
        use SituationKind as S;
        let idle = State::default();
        assert_eq!(
            deployment_step(&status(S::Idle, &idle), 7),
            DeploymentStep::Install
        );
        let armed = State {
            pending: Some(pending(Some(7), Stage::Activated)),
            ..State::default()
        };
        assert_eq!(
            deployment_step(&status(S::AwaitingReboot, &armed), 7),
            DeploymentStep::AwaitReboot
        );
        assert_eq!(
            deployment_step(&status(S::AwaitingReboot, &armed), 8),
            DeploymentStep::Busy
        );
        assert_eq!(
            deployment_step(&status(S::Trial, &armed), 7),
            DeploymentStep::Busy
        );
        let cut = State {
            pending: Some(pending(Some(7), Stage::Writing)),
            ..State::default()
        };
        assert_eq!(
            deployment_step(&status(S::InstallInterrupted, &cut), 7),
            DeploymentStep::Resume
        );
        // Somebody else's interrupted install is settled by the new install.
        assert_eq!(
            deployment_step(&status(S::InstallInterrupted, &cut), 8),
            DeploymentStep::Install
        );
        let done = State {
            last_result: Some(outcome(Some(7), OutcomeKind::FellBack)),
            ..State::default()
        };
        assert_eq!(
            deployment_step(&status(S::Idle, &done), 7),
            DeploymentStep::Finished
        );
        assert_eq!(
            deployment_step(&status(S::Idle, &done), 9),
            DeploymentStep::Install
        );
        let rolled = State {
            pending: Some(pending(Some(7), Stage::RollingBack { reason: "x".into() })),
            ..State::default()
        };
        assert_eq!(
            deployment_step(&status(S::RolledBack, &rolled), 7),
            DeploymentStep::Finished
        );
    }

    #[test]
    fn cancel_is_refused_once_armed() {
        use SituationKind as S;
        assert_eq!(
            cancel_step(&status(S::Idle, &State::default()), 7),
            CancelStep::Accept
        );
        let cut = State {
            pending: Some(pending(Some(7), Stage::Writing)),
            ..State::default()
        };
        assert_eq!(
            cancel_step(&status(S::InstallInterrupted, &cut), 7),
            CancelStep::Accept
        );
        let armed = State {
            pending: Some(pending(Some(7), Stage::Activated)),
            ..State::default()
        };
        match cancel_step(&status(S::AwaitingReboot, &armed), 7) {
            CancelStep::Refuse(reason) => assert!(
                reason.contains("2.0") && reason.contains("slot b"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cancel_step(&status(S::AwaitingReboot, &armed), 8),
            CancelStep::Accept
        );
    }

    #[test]
    fn final_result_is_owed_until_acknowledged() {
        let mut state = State::default();
        assert_eq!(owed(&state), None);
        state.last_result = Some(outcome(None, OutcomeKind::Committed));
        assert_eq!(owed(&state), None, "installs by hand owe nothing");
        state.last_result = Some(outcome(Some(7), OutcomeKind::Committed));
        let report = owed(&state).unwrap();
        assert!(report.success && !report.cancel);
        assert_eq!((report.action, report.code), (7, 0));
        assert_eq!(report.details[0], "committed: details");
        state.reported_action = Some(7);
        assert_eq!(owed(&state), None);
        assert!(
            result_of(&state, 7).unwrap().success,
            "still known for a repeat"
        );
        assert_eq!(result_of(&state, 6), None);
        state.last_result = Some(outcome(Some(8), OutcomeKind::FellBack));
        let report = owed(&state).unwrap();
        assert!(!report.success);
        assert_eq!(report.code, 5);
        assert!(report.details[0].starts_with("fell-back: "));
        state.last_result = Some(outcome(Some(9), OutcomeKind::Canceled));
        assert!(owed(&state).unwrap().cancel);
        for kind in OutcomeKind::ALL {
            let code = outcome_code(kind);
            assert_eq!(code == 0, kind == OutcomeKind::Committed, "{kind}");
        }
    }

    #[test]
    fn maintenance_windows() {
        let w: MaintenanceWindow = "02:00-04:30".parse().unwrap();
        assert_eq!(w.to_string(), "02:00-04:30");
        assert!(!w.contains(119) && w.contains(120) && w.contains(269) && !w.contains(270));
        let wrap: MaintenanceWindow = "22:00-02:00".parse().unwrap();
        assert!(wrap.contains(23 * 60) && wrap.contains(60) && !wrap.contains(12 * 60));
        for bad in [
            "",
            "2:00-04:00",
            "02:00",
            "24:00-01:00",
            "02:60-03:00",
            "03:00-03:00",
            "a1:00-02:00",
        ] {
            assert!(bad.parse::<MaintenanceWindow>().is_err(), "{bad}");
        }
        assert!(RebootPolicy::Immediate.allows(0));
        assert!(!RebootPolicy::Manual.allows(0));
        assert!(RebootPolicy::Window(w).allows(180));
    }

    #[test]
    fn slot_versions_follow_the_state() {
        let mut state = State::default();
        assert_eq!(slot_versions(&state, SlotId::A).running, "");
        state.committed = Some(release(SlotId::A, "1.0"));
        state.pending = Some(pending(Some(7), Stage::Activated));
        let v = slot_versions(&state, SlotId::A);
        assert_eq!(
            (v.running.as_str(), v.a.as_str(), v.b.as_str()),
            ("1.0", "1.0", "2.0")
        );
        // On trial in slot b, b runs 2.0.
        assert_eq!(slot_versions(&state, SlotId::B).running, "2.0");
        state.pending = None;
        state.last_result = Some(outcome(Some(7), OutcomeKind::FellBack));
        let v = slot_versions(&state, SlotId::A);
        assert_eq!((v.a.as_str(), v.b.as_str()), ("1.0", "2.0"));
    }
}
