//! What the daemon does with the deployment the server offers: wait, repeat a finished result,
//! reboot into an installed one, or check the offer (maintenance window, skip, the artifact, the
//! consent script) and install it, resumed, from a delta patch or in full.

use super::install::Offer;
use super::{Daemon, DaemonDevice, MAX_SCRIPT_OUTPUT, SCRIPT_TIMEOUT};
use crate::ddi_transport::DdiTransport;
use crate::delta_install::DeltaRequest;
use crate::sys::scripts::capture;
use anyhow::{Context, Result, bail};
use rustupdate_core::daemon::{DeploymentStep, deployment_step};
use rustupdate_ddi::{self as ddi, Execution};

impl<T: DdiTransport> Daemon<T> {
    pub(super) fn deployment(
        &mut self,
        device: &mut dyn DaemonDevice,
        action: u64,
    ) -> Result<String> {
        let status = device.updater()?.status()?;
        match deployment_step(&status, action) {
            DeploymentStep::Busy => Ok(format!(
                "action {action} waits: the device is {} (rustupdate commit decides first)",
                serde_json::to_value(status.situation)?
                    .as_str()
                    .unwrap_or("busy")
            )),
            DeploymentStep::Finished => self.repeat_result(device, action),
            DeploymentStep::AwaitReboot => self.reboot_when_allowed(device, action),
            DeploymentStep::Install | DeploymentStep::Resume => self.install(device, action),
        }
    }

    fn install(&mut self, device: &mut dyn DaemonDevice, action: u64) -> Result<String> {
        let deployment = self.transport.deployment(action)?;
        let d = &deployment.deployment;
        if d.maintenance_window == Some(ddi::MaintenanceWindow::Unavailable) {
            return self.tell_waiting(action, "the server's maintenance window is closed".into());
        }
        if d.update == ddi::HandlingType::Skip || d.download == ddi::HandlingType::Skip {
            return Ok(format!("action {action}: the server says skip"));
        }
        let Some((chunk, artifact)) = pick_artifact(&deployment) else {
            let err = anyhow::anyhow!("the deployment offers no artifact");
            device
                .updater()?
                .record_rejection(Some(action), "unknown", err.as_ref())?;
            self.send_owed(device)?;
            bail!("action {action}: the deployment offers no artifact");
        };
        let version = chunk.version.clone();
        if let Some(why) = self.consent(action, &version) {
            return self.tell_waiting(action, why);
        }
        let link = artifact
            .links
            .best()
            .with_context(|| format!("artifact {} has no download link", artifact.filename))?;
        log::info!(
            "action {action}: downloading {} {version} ({} bytes) from {}",
            artifact.filename,
            artifact.size,
            link.href
        );
        self.progress(
            action,
            Execution::Proceeding,
            None,
            format!("downloading {}", artifact.filename),
        );
        let (ring, policy) = crate::trust_store::release_keys(&self.config)?;
        let offer = Offer {
            action,
            href: &link.href,
            filename: &artifact.filename,
            version: &version,
            ring: &ring,
            policy: &policy,
            parallel: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        };
        self.install_offer(device, &offer, pick_patch(&deployment))
    }

    /// Installs the checked offer: continued at the checkpoint of an interrupted install of it,
    /// rebuilt from `patch` (when the device takes deltas), else downloaded in full.
    fn install_offer(
        &mut self,
        device: &mut dyn DaemonDevice,
        offer: &Offer,
        patch: Option<&str>,
    ) -> Result<String> {
        let action = offer.action;
        // An install of this action that a power cut interrupted continues at its checkpoint.
        let status = device.updater()?.status()?;
        let checkpoint = status
            .pending
            .as_ref()
            .filter(|p| p.action == Some(action))
            .and_then(|p| p.checkpoint);
        if let Some(checkpoint) = checkpoint
            && let Some(done) = self.resume(device, offer, checkpoint)
        {
            return done;
        }
        if self.server.accept_deltas
            && checkpoint.is_none()
            && let Some(patch) = patch
        {
            let request = DeltaRequest {
                artifact: offer.href,
                patch,
                action: Some(action),
                parallel: offer.parallel,
            };
            if let Some(done) = self.install_delta(device, request, offer.ring, offer.policy)? {
                return Ok(done);
            }
        }
        self.install_full(device, offer)
    }

    /// Asks the consent script, if there is one: `Some(why)` when the install must wait.
    fn consent(&self, action: u64, version: &str) -> Option<String> {
        let script = self.server.consent_script.as_ref()?;
        let verdict = capture(
            script,
            &[&action.to_string(), version],
            SCRIPT_TIMEOUT,
            MAX_SCRIPT_OUTPUT,
        );
        match verdict {
            Ok(out) if out.code == Some(0) => None,
            Ok(out) => Some(format!(
                "deferred by the consent script (exit {:?})",
                out.code
            )),
            Err(err) => Some(format!("consent script: {err}")),
        }
    }
}

/// The artifact to install: the first one named `*.rua`, else the only one there is.
fn pick_artifact(deployment: &ddi::DeploymentBase) -> Option<(&ddi::Chunk, &ddi::Artifact)> {
    let all: Vec<(&ddi::Chunk, &ddi::Artifact)> = deployment
        .deployment
        .chunks
        .iter()
        .flat_map(|chunk| chunk.artifacts.iter().map(move |a| (chunk, a)))
        .collect();
    all.iter()
        .find(|(_, a)| a.filename.ends_with(".rua"))
        .copied()
        .or_else(|| (all.len() == 1).then(|| all[0]))
}

/// The link of a delta patch the deployment offers beside the artifact (our DDI extension,
/// `rustupdate_ddi::delta`).
fn pick_patch(deployment: &ddi::DeploymentBase) -> Option<&str> {
    deployment
        .deployment
        .chunks
        .iter()
        .flat_map(|chunk| chunk.artifacts.iter())
        .find(|a| a.filename.ends_with(ddi::delta::PATCH_SUFFIX))
        .and_then(|a| a.links.best())
        .map(|link| link.href.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BOARD, Request, Rig, feedback, new_image, release};
    use rustupdate_core::SlotId;
    use rustupdate_ddi::{Execution, Finished};

    #[test]
    fn an_offered_deployment_is_installed_and_the_server_told() {
        let mut rig = Rig::new("");
        rig.offer(7, release(BOARD, 1));
        assert_eq!(rig.cycle().unwrap(), "action 7 installed; rebooting");
        assert!(rig.sim.slots.holds(SlotId::B, &new_image()));
        assert!(rig.sim.reboot.requested);
        let requests = rig.requests();
        // The inventory changed, so the offer is fetched again before acting on it.
        assert!(matches!(
            &requests[..4],
            [
                Request::Poll,
                Request::ConfigData(_),
                Request::Poll,
                Request::Deployment(7)
            ]
        ));
        assert_eq!(
            feedback(&requests),
            [
                (
                    7,
                    Execution::Proceeding,
                    Finished::None,
                    None,
                    "downloading update.rua".into()
                ),
                (
                    7,
                    Execution::Downloaded,
                    Finished::None,
                    Some(100),
                    "installed 2.0 into slot b".into()
                ),
                (
                    7,
                    Execution::Proceeding,
                    Finished::None,
                    Some(100),
                    "rebooting into the new slot".into()
                ),
            ]
        );
    }

    #[test]
    fn a_skipped_deployment_downloads_nothing() {
        let mut rig = Rig::new("");
        rig.offer(7, release(BOARD, 1));
        let skip = rig.daemon.transport.deployments.borrow()[&7].replace("\"forced\"", "\"skip\"");
        rig.daemon
            .transport
            .deployments
            .borrow_mut()
            .insert(7, skip);
        assert_eq!(rig.cycle().unwrap(), "action 7: the server says skip");
        let requests = rig.requests();
        assert!(feedback(&requests).is_empty(), "{requests:?}");
        assert!(!requests.iter().any(|r| matches!(r, Request::Artifact(..))));
        assert!(!rig.sim.reboot.requested);
    }
}
