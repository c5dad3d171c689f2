//! The reboot into an installed update, when the reboot policy allows; otherwise the server is
//! told once why the action waits. The boot-time `rustupdate commit` then decides commit or
//! rollback, and the next cycle confirms that result to the server (`feedback`'s owed result).

use super::{Daemon, DaemonDevice};
use crate::ddi_transport::DdiTransport;
use anyhow::Result;
use rustupdate_core::daemon::RebootPolicy;
use rustupdate_ddi::Execution;
use std::time::SystemTime;

impl<T: DdiTransport> Daemon<T> {
    pub(super) fn reboot_when_allowed(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
    ) -> Result<String> {
        let minute = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| (d.as_secs() / 60 % (24 * 60)) as u32);
        if !self.reboot.allows(minute) {
            let why = match self.reboot {
                RebootPolicy::Window(window) => {
                    format!("installed; reboots in the maintenance window {window} UTC")
                }
                _ => "installed; waiting for a manual reboot".into(),
            };
            return self.tell_waiting(action, why);
        }
        // Told once: a reboot request that returns without a reboot is repeated at every poll.
        if self.told_rebooting != Some(action) {
            self.progress(
                action,
                Execution::Proceeding,
                Some(100),
                "rebooting into the new slot".into(),
            );
            self.told_rebooting = Some(action);
        }
        log::info!("action {action}: rebooting into the new slot");
        device.reboot()?;
        Ok(format!("action {action} installed; rebooting"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BOARD, Request, Rig, feedback, nothing, only, release};
    use rustupdate_core::SlotId;
    use rustupdate_core::report::BootReport;
    use rustupdate_ddi::{Execution, Finished, attributes};

    /// Installs action 7 and boots the device into it (the daemon asked for the reboot).
    fn installed_and_rebooted(rig: &mut Rig) {
        rig.offer(7, release(BOARD, 1));
        rig.cycle().unwrap();
        assert!(rig.sim.reboot.requested);
        rig.requests();
        assert_eq!(rig.sim.boot(), SlotId::B);
        rig.set_poll(nothing());
    }

    #[test]
    fn the_commit_after_the_reboot_is_confirmed_once() {
        let mut rig = Rig::new("");
        installed_and_rebooted(&mut rig);
        let report = rig.sim.updater().unwrap().boot_check().unwrap();
        assert!(matches!(report, BootReport::Committed { .. }), "{report:?}");
        assert_eq!(rig.cycle().unwrap(), "no update offered");
        let requests = rig.requests();
        let Request::DeploymentFeedback(7, first) = &requests[0] else {
            panic!("the result is not sent first: {requests:?}");
        };
        assert_eq!(first.status.execution, Execution::Closed);
        assert_eq!(first.status.result.finished, Finished::Success);
        assert_eq!(first.status.code, Some(0));
        assert!(
            first.status.details[0].starts_with("committed"),
            "{first:?}"
        );
        let Some(Request::ConfigData(data)) = requests.last() else {
            panic!("{requests:?}");
        };
        assert_eq!(data[attributes::RUNNING_SLOT], "b");
        assert_eq!(data[attributes::RUNNING_VERSION], "2.0");
        rig.cycle().unwrap();
        assert_eq!(rig.requests(), [Request::Poll]);
    }

    #[test]
    fn a_rollback_after_the_reboot_is_reported_as_a_failure() {
        let mut rig = Rig::new("");
        installed_and_rebooted(&mut rig);
        rig.sim.health.verdict = Some("the app did not start".into());
        rig.sim.updater().unwrap().boot_check().unwrap();
        assert_eq!(rig.sim.boot(), SlotId::A);
        // The boot-time `rustupdate commit` on the old slot records the rollback.
        rig.sim.updater().unwrap().boot_check().unwrap();
        rig.cycle().unwrap();
        let (action, execution, finished, _, detail) = only(feedback(&rig.requests()));
        assert_eq!(
            (action, execution, finished),
            (7, Execution::Closed, Finished::Failure)
        );
        assert!(detail.contains("the app did not start"), "{detail}");
    }

    #[test]
    fn a_manual_reboot_policy_waits_and_says_so_once() {
        let mut rig = Rig::new("reboot = \"manual\"");
        rig.offer(7, release(BOARD, 1));
        let waiting = "action 7: installed; waiting for a manual reboot";
        assert_eq!(rig.cycle().unwrap(), waiting);
        assert!(!rig.sim.reboot.requested);
        let said = feedback(&rig.requests());
        assert_eq!(
            said.last().unwrap(),
            &(
                7,
                Execution::Scheduled,
                Finished::None,
                None,
                "installed; waiting for a manual reboot".into()
            )
        );
        // Offered again while it waits: nothing new to say, and still no reboot.
        assert_eq!(rig.cycle().unwrap(), waiting);
        assert!(feedback(&rig.requests()).is_empty());
        assert!(!rig.sim.reboot.requested);
    }
}
