//! The answer to a cancel request: accepted while nothing of the action is armed (an interrupted
//! install is recorded as cancelled), refused with the reason once the new slot is armed.

use super::{Daemon, DaemonDevice};
use crate::ddi_transport::DdiTransport;
use anyhow::{Context, Result};
use rustupdate_core::daemon::{CancelStep, cancel_step};
use rustupdate_core::state::OutcomeKind;
use rustupdate_ddi::{ActionFeedback, Execution, Finished};

impl<T: DdiTransport> Daemon<T> {
    pub(super) fn answer_cancel(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
    ) -> Result<String> {
        let request = self.transport.cancel_action(action)?;
        let stop: u64 = request.cancel_action.stop_id.parse().with_context(|| {
            format!(
                "cancel request with stopId {:?}",
                request.cancel_action.stop_id
            )
        })?;
        let status = device.updater()?.status()?;
        match cancel_step(&status, stop) {
            CancelStep::Accept => {
                let detail = "cancelled by the server after an interrupted install".to_string();
                let abandoned =
                    device
                        .updater()?
                        .abandon_interrupted(stop, OutcomeKind::Canceled, detail)?;
                if abandoned.is_some() {
                    self.send_owed(device)?;
                } else {
                    let feedback = ActionFeedback::new(
                        Execution::Closed,
                        Finished::Success,
                        vec![format!("cancelled: nothing of action {stop} was armed")],
                    );
                    self.transport.cancel_feedback(action, &feedback)?;
                }
                log::info!("action {stop} cancelled by the server");
                Ok(format!("action {stop} cancelled"))
            }
            CancelStep::Refuse(reason) => {
                log::warn!("refusing to cancel action {stop}: {reason}");
                let feedback =
                    ActionFeedback::new(Execution::Rejected, Finished::None, vec![reason]);
                self.transport.cancel_feedback(action, &feedback)?;
                Ok(format!("cancel of action {stop} refused"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BOARD, Request, Rig, cancel_feedback, only, release};
    use rustupdate_core::SlotId;
    use rustupdate_ddi::{Execution, Finished};

    #[test]
    fn a_cancel_before_anything_is_armed_is_confirmed() {
        let mut rig = Rig::new("");
        rig.cancel(9, 7);
        assert_eq!(rig.cycle().unwrap(), "action 7 cancelled");
        let requests = rig.requests();
        assert!(requests.contains(&Request::CancelAction(9)));
        assert!(!requests.iter().any(|r| matches!(r, Request::Deployment(_))));
        assert_eq!(
            cancel_feedback(&requests),
            [(
                9,
                Execution::Closed,
                Finished::Success,
                None,
                "cancelled: nothing of action 7 was armed".into()
            )]
        );
        assert!(rig.sim.slots.bytes(SlotId::B).iter().all(|&b| b == 0xee));
    }

    #[test]
    fn a_cancel_once_the_slot_is_armed_is_refused() {
        let mut rig = Rig::new("");
        rig.offer(7, release(BOARD, 1));
        rig.cycle().unwrap();
        rig.requests();
        rig.cancel(9, 7);
        assert_eq!(rig.cycle().unwrap(), "cancel of action 7 refused");
        let (action, execution, finished, _, why) = only(cancel_feedback(&rig.requests()));
        assert_eq!(
            (action, execution, finished),
            (9, Execution::Rejected, Finished::None)
        );
        assert!(
            why.starts_with("too late to cancel: 2.0 is installed in slot b"),
            "{why}"
        );
    }
}
