//! The fleet's operations: what a poll gets, what a feedback changes, how a rollout moves. Glue
//! between the store (what is) and `rustupdate-rollout` (what should happen next); the HTTP layers
//! (device API, management API, dashboard) call only this and the store's read queries.

use crate::error::{ApiError, ApiResult};
use crate::store::{ActionWithRollout, DeviceRow, NewFeedback, NewRollout, RolloutRow, Store};
use crate::target;
use anyhow::Context;
use rustupdate_ddi::Status;
use rustupdate_rollout::{
    ActionState, Command, Decision, FeedbackError, PhaseCounts, Phases, RolloutSpec, RolloutState,
    Threshold,
};
use std::collections::BTreeMap;

/// How often a feedback races another change of the same action before we give up (409).
const CAS_ATTEMPTS: usize = 5;

/// Which feedback resource a device posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Deployment,
    Cancel,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Deployment => "deployment",
            Channel::Cancel => "cancel",
        }
    }
}

fn parse_state(text: &str) -> anyhow::Result<ActionState> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("stored action state {text:?}: {e}"))
}

fn parse_rollout_state(text: &str) -> anyhow::Result<RolloutState> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("stored rollout state {text:?}: {e}"))
}

/// The rollout's parameters as the pure core sees them.
pub fn spec_of(rollout: &RolloutRow) -> anyhow::Result<RolloutSpec> {
    let phases = Phases::parse(&rollout.phases)
        .map_err(|e| anyhow::anyhow!("rollout {} phases: {e}", rollout.id))?;
    let error_threshold: Threshold = rollout
        .error_threshold
        .parse()
        .map_err(|e| anyhow::anyhow!("rollout {} error threshold: {e}", rollout.id))?;
    let mut spec = RolloutSpec::new(phases);
    spec.success_threshold =
        u8::try_from(rollout.success_threshold).context("success threshold out of range")?;
    spec.error_threshold = error_threshold;
    Ok(spec)
}

/// The device's current work: its open action, or a new one from a running rollout that targets
/// it and whose phase has reached it. Late joiners (devices that match after the start) join the
/// current phase.
pub async fn work_for(store: &Store, device: &DeviceRow) -> ApiResult<Option<ActionWithRollout>> {
    if let Some(open) = store.open_action(device.id).await? {
        return Ok(Some(open));
    }
    new_work_for(store, device).await
}

/// A new action for a device without an open one, from the first running rollout that targets
/// it and whose phase has reached it.
pub async fn new_work_for(
    store: &Store,
    device: &DeviceRow,
) -> ApiResult<Option<ActionWithRollout>> {
    if device.device_type.is_none() {
        return Ok(None);
    }
    let running = store.running_rollouts().await?;
    if running.is_empty() {
        return Ok(None);
    }
    let mut device = device.clone();
    if device.tags.is_empty() {
        device.tags = store.tags(device.id).await?;
    }
    for rollout in running.iter() {
        if !target::matches(rollout, &device) {
            continue;
        }
        let phase = match store.member_phase(rollout.id, device.id).await? {
            Some(phase) => phase,
            None => {
                let phase = rustupdate_rollout::late_joiner_phase(rollout.current_phase as u32);
                store
                    .add_members(rollout.id, &[(device.id, i64::from(phase))], true)
                    .await?;
                match store.member_phase(rollout.id, device.id).await? {
                    Some(phase) => phase,
                    None => continue,
                }
            }
        };
        // The cached phase may be behind an advance made by another server instance: asked
        // again before the device is told to wait (the same statement as before the cache).
        if phase > rollout.current_phase && !phase_reached(store, rollout.id, phase).await? {
            continue;
        }
        if store.ensure_action(rollout.id, device.id, phase).await? {
            tracing::info!(
                event = %"action-created",
                rollout = rollout.id,
                device = %device.controller_id,
                phase,
            );
        }
        if let Some(open) = store.open_action(device.id).await? {
            return Ok(Some(open));
        }
    }
    Ok(None)
}

async fn phase_reached(store: &Store, rollout_id: i64, phase: i64) -> ApiResult<bool> {
    Ok(store
        .rollout(rollout_id)
        .await?
        .is_some_and(|r| r.state == RolloutState::Running.as_str() && phase <= r.current_phase))
}

/// Records that the device fetched its deployment (scheduled -> running).
pub async fn deployment_fetched(store: &Store, action: &ActionWithRollout) -> ApiResult<()> {
    let state = parse_state(&action.action.state)?;
    let next = rustupdate_rollout::on_deployment_fetched(state);
    if next != state {
        store
            .transition_action(action.action.id, state.as_str(), next.as_str(), None, None)
            .await?;
    }
    Ok(())
}

/// Applies a device's feedback to its action (compare-and-set, retried on a race), stores the
/// feedback with it, and moves the rollout if the action ended.
pub async fn feedback(
    store: &Store,
    device: &DeviceRow,
    action_id: i64,
    channel: Channel,
    status: &Status,
) -> ApiResult<ActionState> {
    validate_details(&status.details)?;
    for _ in 0..CAS_ATTEMPTS {
        let Some(action) = store.device_action(device.id, action_id).await? else {
            return Err(ApiError::NotFound(format!(
                "no action {action_id} for this device"
            )));
        };
        let state = parse_state(&action.action.state)?;
        let outcome = match channel {
            Channel::Deployment => rustupdate_rollout::on_feedback(state, status),
            Channel::Cancel => rustupdate_rollout::on_cancel_feedback(state, status),
        }
        .map_err(|e| feedback_error(action_id, e))?;
        let record = NewFeedback {
            channel: channel.as_str(),
            execution: status.execution.as_str(),
            finished: status.result.finished.as_str(),
            progress: status
                .result
                .progress
                .map(|p| (clamp_i64(p.cnt), clamp_i64(p.of))),
            code: status.code.map(i64::from),
            details: &status.details,
        };
        let changed = store
            .transition_action(
                action_id,
                state.as_str(),
                outcome.next.as_str(),
                outcome.reason.as_deref(),
                Some(&record),
            )
            .await?;
        if !changed {
            continue;
        }
        if let Some(why) = rustupdate_ddi::delta::fallback_reason(&status.details) {
            store.note_delta_fallback(action_id, why).await?;
        }
        tracing::info!(
            event = %"feedback",
            device = %device.controller_id,
            action = action_id,
            channel = channel.as_str(),
            execution = %record.execution,
            finished = %record.finished,
            state = %outcome.next,
        );
        if outcome.next.is_final() {
            advance(store, action.action.rollout_id).await?;
        }
        return Ok(outcome.next);
    }
    Err(ApiError::Conflict(format!(
        "action {action_id} changed concurrently; send the feedback again"
    )))
}

fn feedback_error(action_id: i64, err: FeedbackError) -> ApiError {
    match err {
        FeedbackError::Ambiguous => ApiError::BadRequest(format!("action {action_id}: {err}")),
        _ => ApiError::Conflict(format!("action {action_id}: {err}")),
    }
}

fn validate_details(details: &[String]) -> ApiResult<()> {
    if details.len() > rustupdate_ddi::MAX_DETAILS {
        return Err(ApiError::BadRequest(format!(
            "feedback has {} details lines, at most {} are accepted",
            details.len(),
            rustupdate_ddi::MAX_DETAILS
        )));
    }
    if let Some(line) = details
        .iter()
        .find(|l| l.len() > rustupdate_ddi::MAX_DETAIL_LEN)
    {
        return Err(ApiError::BadRequest(format!(
            "a details line has {} bytes, at most {} are accepted",
            line.len(),
            rustupdate_ddi::MAX_DETAIL_LEN
        )));
    }
    Ok(())
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Moves a running rollout as far as its counts allow: advance (possibly through empty phases),
/// finish or pause. Each step is a compare-and-set, so concurrent callers (several server
/// processes, the periodic sweep) advance each phase once.
pub async fn advance(store: &Store, rollout_id: i64) -> anyhow::Result<()> {
    // Bounded: each step moves the phase forward or stops.
    for _ in 0..=rustupdate_rollout::MAX_PHASES {
        let Some(rollout) = store.rollout(rollout_id).await? else {
            return Ok(());
        };
        let state = parse_rollout_state(&rollout.state)?;
        if state != RolloutState::Running {
            return Ok(());
        }
        let spec = spec_of(&rollout)?;
        let counts = store
            .phase_counts(rollout.id, spec.phases.count() as usize)
            .await?;
        let phase = rollout.current_phase;
        let row = counts.get(phase as usize).copied().unwrap_or_default();
        let counts = PhaseCounts {
            members: row.members as u32,
            succeeded: row.succeeded as u32,
            failed: row.failed as u32,
            canceled: row.canceled as u32,
            accepted_failures: rollout.accepted_failures as u32,
        };
        let running = RolloutState::Running.as_str();
        match rustupdate_rollout::decide(&spec, state, phase as u32, &counts) {
            Decision::Stay => return Ok(()),
            Decision::Advance { to } => {
                let detail = format!(
                    "phase {} of {} passed ({} of {} succeeded)",
                    phase + 1,
                    spec.phases.count(),
                    counts.succeeded,
                    counts.members
                );
                if store
                    .transition_rollout(
                        rollout.id,
                        (running, phase),
                        (running, i64::from(to)),
                        None,
                        0,
                        "phase-started",
                        &detail,
                    )
                    .await?
                {
                    tracing::info!(event = %"phase-started", rollout = rollout.id, phase = to + 1);
                }
            }
            Decision::Finish => {
                store
                    .transition_rollout(
                        rollout.id,
                        (running, phase),
                        (RolloutState::Finished.as_str(), phase),
                        None,
                        rollout.accepted_failures,
                        "finished",
                        "last phase passed",
                    )
                    .await?;
                return Ok(());
            }
            Decision::Pause { reason } => {
                if store
                    .transition_rollout(
                        rollout.id,
                        (running, phase),
                        (RolloutState::Paused.as_str(), phase),
                        Some(&reason),
                        rollout.accepted_failures,
                        "paused",
                        &reason,
                    )
                    .await?
                {
                    tracing::warn!(event = %"rollout-paused", rollout = rollout.id, ?reason);
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

/// What an operator asks of a rollout.
pub async fn command(store: &Store, rollout_id: i64, command: Command) -> ApiResult<RolloutRow> {
    let Some(rollout) = store.rollout(rollout_id).await? else {
        return Err(ApiError::NotFound(format!("no rollout {rollout_id}")));
    };
    let state = parse_rollout_state(&rollout.state)?;
    let next =
        rustupdate_rollout::apply(state, command).map_err(|e| ApiError::Conflict(e.to_string()))?;
    match command {
        Command::Start => start(store, &rollout).await?,
        Command::Pause | Command::Resume | Command::Cancel => {
            // Resuming accepts the failures the phase has now (else it would pause again at once).
            let accepted = if command == Command::Resume {
                let spec = spec_of(&rollout)?;
                let counts = store
                    .phase_counts(rollout.id, spec.phases.count() as usize)
                    .await?;
                counts
                    .get(rollout.current_phase as usize)
                    .map_or(0, |c| c.failed)
            } else {
                rollout.accepted_failures
            };
            let changed = store
                .transition_rollout(
                    rollout.id,
                    (state.as_str(), rollout.current_phase),
                    (next.as_str(), rollout.current_phase),
                    None,
                    accepted,
                    next.as_str(),
                    "by the operator",
                )
                .await?;
            if !changed {
                return Err(ApiError::Conflict(format!(
                    "rollout {rollout_id} changed concurrently; try again"
                )));
            }
        }
    }
    if command == Command::Cancel {
        for action in store.open_actions_of_rollout(rollout.id).await? {
            let state = parse_state(&action.state)?;
            if let Ok(next) = rustupdate_rollout::on_cancel_requested(state)
                && next != state
            {
                store
                    .transition_action(action.id, state.as_str(), next.as_str(), None, None)
                    .await?;
            }
        }
    }
    advance(store, rollout_id).await?;
    store
        .rollout(rollout_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rollout {rollout_id}")))
}

/// Start: the devices that match now are split into phases; later ones join as they appear.
async fn start(store: &Store, rollout: &RolloutRow) -> ApiResult<()> {
    let spec = spec_of(rollout)?;
    let devices: Vec<DeviceRow> = store
        .devices()
        .await?
        .into_iter()
        .filter(|d| target::matches(rollout, d))
        .collect();
    let ids: Vec<String> = devices.iter().map(|d| d.controller_id.clone()).collect();
    let by_controller: BTreeMap<&str, i64> = devices
        .iter()
        .map(|d| (d.controller_id.as_str(), d.id))
        .collect();
    let members: Vec<(i64, i64)> = rustupdate_rollout::assign(rollout.id, &ids, &spec.phases)
        .into_iter()
        .filter_map(|(cid, phase)| {
            by_controller
                .get(cid.as_str())
                .map(|id| (*id, i64::from(phase)))
        })
        .collect();
    // Members first, then the state: a poll that sees `running` finds its phase already set.
    store.add_members(rollout.id, &members, false).await?;
    let changed = store
        .transition_rollout(
            rollout.id,
            (RolloutState::Created.as_str(), 0),
            (RolloutState::Running.as_str(), 0),
            None,
            0,
            "phase-started",
            &format!("started with {} devices", members.len()),
        )
        .await?;
    if !changed {
        return Err(ApiError::Conflict(format!(
            "rollout {} was started concurrently",
            rollout.id
        )));
    }
    tracing::info!(
        event = %"rollout-started",
        rollout = rollout.id,
        devices = members.len(),
    );
    Ok(())
}

/// Creates a rollout after checking that the artifact exists and suits the device type.
pub async fn create_rollout(store: &Store, new: NewRollout) -> ApiResult<RolloutRow> {
    let Some(artifact) = store.artifact(new.artifact_id).await? else {
        return Err(ApiError::NotFound(format!(
            "no artifact {}",
            new.artifact_id
        )));
    };
    if !artifact.device_types.contains(&new.device_type) {
        return Err(ApiError::BadRequest(format!(
            "artifact {} ({} {}) is not compatible with device type {:?} (compatible: {})",
            artifact.id,
            artifact.name,
            artifact.version,
            new.device_type,
            artifact.device_types.join(", ")
        )));
    }
    Ok(store.add_rollout(&new).await?)
}
