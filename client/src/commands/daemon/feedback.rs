//! What the daemon tells the server: the final result of an action (owed until the server
//! accepts it, and repeated once when the server offers a finished action again), why an action
//! waits, and progress while it installs. Progress is best effort; the final result is kept in
//! the update state until it arrives.

use super::{Daemon, DaemonDevice};
use crate::ddi_transport::{DdiTransport, Delivery, action_of};
use anyhow::{Context, Result};
use rustupdate_core::daemon::{FinalReport, owed, result_of};
use rustupdate_ddi::{self as ddi, ActionFeedback, Execution, Finished};
use std::time::{Duration, Instant};

/// During a download: progress feedback at most this often, and a look for a cancel request.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl<T: DdiTransport> Daemon<T> {
    /// Sends the final result the state says is still owed, and records that it arrived.
    pub(super) fn send_owed(&mut self, device: &mut dyn DaemonDevice) -> Result<()> {
        let Some(report) = owed(device.updater()?.state()) else {
            return Ok(());
        };
        let feedback = final_feedback(&report);
        let delivery = if report.cancel {
            self.transport.cancel_feedback(report.action, &feedback)
        } else {
            self.transport.deployment_feedback(report.action, &feedback)
        }
        .with_context(|| format!("reporting the result of action {}", report.action))?;
        log::info!(
            "reported action {}: {} ({})",
            report.action,
            report.details[0],
            match delivery {
                Delivery::Accepted => "accepted".to_string(),
                Delivery::Settled(status) => format!("already settled, status {status}"),
            }
        );
        device.updater()?.mark_reported(report.action)?;
        Ok(())
    }

    /// The server offers an action whose result it was sent: send it once more (per daemon run),
    /// in case the answer got lost or the server reuses the id for a retry (gooseBit does).
    pub(super) fn repeat_result(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
    ) -> Result<String> {
        let done = format!("action {action} finished; result reported");
        if self.repeated == Some(action) {
            return Ok(done);
        }
        self.repeated = Some(action);
        if let Some(report) = result_of(device.updater()?.state(), action) {
            log::info!("the server offers finished action {action} again; repeating its result");
            let feedback = final_feedback(&report);
            if report.cancel {
                self.transport.cancel_feedback(action, &feedback)?;
            } else {
                self.transport.deployment_feedback(action, &feedback)?;
            }
        }
        Ok(done)
    }

    /// The progress callback of an install: a log line every 10 %, progress feedback and a look
    /// for a cancel request every [`PROGRESS_EVERY`].
    pub(super) fn reporter(&self, action: u64) -> impl FnMut(u64, u64) -> Result<(), String> + '_ {
        let transport = &self.transport;
        let mut last_sent = Instant::now();
        let mut last_percent = 0;
        move |done: u64, total: u64| -> Result<(), String> {
            let percent = done * 100 / total.max(1);
            if percent >= last_percent + 10 {
                last_percent = percent;
                log::info!("written {percent}% ({done} of {total} bytes)");
            }
            if last_sent.elapsed() < PROGRESS_EVERY {
                return Ok(());
            }
            last_sent = Instant::now();
            let feedback = with_progress(
                ActionFeedback::new(
                    Execution::Proceeding,
                    Finished::None,
                    vec![format!("written {percent}% ({done} of {total} bytes)")],
                ),
                percent,
            );
            if let Err(err) = transport.deployment_feedback(action, &feedback) {
                log::warn!("progress feedback: {err:#}");
            }
            // A cancel request stops the download before anything is armed.
            match transport.poll() {
                Ok(base)
                    if base
                        .links
                        .cancel_action
                        .as_ref()
                        .and_then(|l| action_of(l).ok())
                        == Some(action) =>
                {
                    Err(format!("cancelled by the server at {percent}%"))
                }
                _ => Ok(()),
            }
        }
    }

    /// Tells the server once why an action waits (consent, window, manual reboot).
    pub(super) fn tell_waiting(&mut self, action: u64, why: String) -> Result<String> {
        let key = (action, why.clone());
        if self.told_waiting.as_ref() != Some(&key) {
            log::info!("action {action}: {why}");
            self.progress(action, Execution::Scheduled, None, why.clone());
            self.told_waiting = Some(key);
        }
        Ok(format!("action {action}: {why}"))
    }

    /// Progress feedback: best effort (the final result is what must arrive, and it is kept in
    /// the state until it does).
    pub(super) fn progress(
        &self,
        action: u64,
        execution: Execution,
        percent: Option<u64>,
        detail: String,
    ) {
        let mut feedback = ActionFeedback::new(execution, Finished::None, vec![detail]);
        if let Some(percent) = percent {
            feedback = with_progress(feedback, percent);
        }
        if let Err(err) = self.transport.deployment_feedback(action, &feedback) {
            log::warn!("feedback on action {action}: {err:#}");
        }
    }
}

fn final_feedback(report: &FinalReport) -> ActionFeedback {
    let finished = if report.success || report.cancel {
        Finished::Success
    } else {
        Finished::Failure
    };
    let mut feedback = ActionFeedback::new(Execution::Closed, finished, report.details.clone());
    feedback.status.code = Some(report.code);
    feedback
}

fn with_progress(mut feedback: ActionFeedback, percent: u64) -> ActionFeedback {
    feedback.status.result.progress = Some(ddi::Progress {
        cnt: percent.min(100),
        of: 100,
    });
    feedback
}
