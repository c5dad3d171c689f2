//! The cycle's first steps: the poll, and the inventory when it changed; then the trust document
//! the server links (if newer), then the cancel request or the deployment the server offers goes
//! to its step.

use super::{Daemon, DaemonDevice, MAX_SCRIPT_OUTPUT, SCRIPT_TIMEOUT};
use crate::ddi_transport::{DdiTransport, action_of};
use crate::sys::scripts::capture;
use anyhow::{Context, Result};
use rustupdate_core::daemon::slot_versions;
use rustupdate_ddi::{self as ddi, ConfigData, ConfigDataMode, attributes};
use std::collections::BTreeMap;
use std::path::Path;

impl<T: DdiTransport> Daemon<T> {
    /// One cycle on an opened device; returns a one-line summary of what happened.
    pub(super) fn run_cycle(&mut self, device: &mut dyn DaemonDevice) -> Result<String> {
        self.send_owed(device)?;
        let mut base = self.transport.poll().context("polling the server")?;
        self.server_interval = Some(base.config.polling.sleep.duration());
        if self.send_inventory(device)? && base.links.deployment_base.is_some() {
            // The server may offer the deployment differently to what the device now says it
            // runs (a delta patch from its base, held back while the patch is built): asked
            // again before acting.
            base = self.transport.poll().context("polling the server")?;
        }
        // Before the deployment: a release signed by a key the new document trusts installs now.
        self.follow_trust_link(&base);
        if let Some(link) = &base.links.cancel_action {
            let action = action_of(link)?;
            return self.answer_cancel(device, action);
        }
        if let Some(link) = &base.links.deployment_base {
            let action = action_of(link)?;
            return self.deployment(device, action);
        }
        Ok("no update offered".into())
    }

    /// Sends the inventory if it changed since the server last accepted it; whether it did.
    fn send_inventory(&mut self, device: &mut dyn DaemonDevice) -> Result<bool> {
        let booted = device.booted();
        let state = device.updater()?.state().clone();
        let versions = slot_versions(&state, booted);
        let mut data = BTreeMap::new();
        if let Some(script) = &self.server.inventory_script {
            data.extend(inventory_script(script));
        }
        for (key, value) in [
            (attributes::DEVICE_TYPE, self.config.device_type.clone()),
            (attributes::RUNNING_VERSION, versions.running.clone()),
            (attributes::SW_VERSION, versions.running),
            (attributes::RUNNING_SLOT, booted.to_string()),
            (attributes::SLOT_A_VERSION, versions.a),
            (attributes::SLOT_B_VERSION, versions.b),
            (attributes::CLIENT_VERSION, env!("CARGO_PKG_VERSION").into()),
        ] {
            data.insert(key.to_string(), value);
        }
        if self.server.accept_deltas {
            data.insert(
                attributes::ACCEPTS_DELTA.into(),
                attributes::DELTA_KNOWN_BASE.into(),
            );
            // Only the committed release of the running slot is a base a patch can name.
            if let Some(committed) = state.committed.as_ref().filter(|c| c.slot == booted) {
                data.insert(
                    attributes::RUNNING_IMAGE_SHA256.into(),
                    committed.sha256.clone(),
                );
            }
        }
        if self.inventory_sent.as_ref() == Some(&data) {
            return Ok(false);
        }
        self.transport
            .put_config_data(&ConfigData {
                mode: ConfigDataMode::Replace,
                data: data.clone(),
            })
            .context("sending the inventory")?;
        self.inventory_sent = Some(data);
        Ok(true)
    }
}

/// `key=value` lines of the inventory script, within DDI's limits; anything else is logged and
/// skipped (a broken script must not stop updates).
fn inventory_script(script: &Path) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let out = match capture(script, &[], SCRIPT_TIMEOUT, MAX_SCRIPT_OUTPUT) {
        Ok(out) if out.code == Some(0) => out.stdout,
        Ok(out) => {
            log::warn!(
                "inventory script {} failed (exit {:?})",
                script.display(),
                out.code
            );
            return data;
        }
        Err(err) => {
            log::warn!("inventory script: {err}");
            return data;
        }
    };
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            log::warn!("inventory script: line {line:?} is not key=value");
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let key_ok = !key.is_empty()
            && key.len() <= ddi::MAX_ATTRIBUTE_KEY_LEN
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !key_ok || value.len() > ddi::MAX_ATTRIBUTE_VALUE_LEN {
            log::warn!("inventory script: attribute {key:?} skipped (name or length)");
            continue;
        }
        // Leave room for the attributes the client reports itself.
        if data.len() + 8 >= ddi::MAX_ATTRIBUTES {
            log::warn!(
                "inventory script: more than {} attributes; the rest skipped",
                ddi::MAX_ATTRIBUTES - 8
            );
            break;
        }
        data.insert(key.to_owned(), value.to_owned());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::super::fake::{BOARD, Request, Rig};
    use rustupdate_ddi::attributes;
    use std::time::Duration;

    #[test]
    fn a_poll_with_nothing_to_do_sends_the_inventory_once() {
        let mut rig = Rig::new("");
        assert_eq!(rig.cycle().unwrap(), "no update offered");
        let requests = rig.requests();
        let [Request::Poll, Request::ConfigData(data)] = &requests[..] else {
            panic!("{requests:?}");
        };
        assert_eq!(data[attributes::DEVICE_TYPE], BOARD);
        assert_eq!(data[attributes::RUNNING_SLOT], "a");
        assert!(!data.contains_key(attributes::ACCEPTS_DELTA), "{data:?}");
        assert_eq!(rig.daemon.server_interval, Some(Duration::from_secs(300)));
        // Unchanged inventory: not sent again.
        assert_eq!(rig.cycle().unwrap(), "no update offered");
        assert_eq!(rig.requests(), [Request::Poll]);
        assert!(!rig.sim.reboot.requested);
        assert!(
            rig.sim
                .slots
                .bytes(rustupdate_core::SlotId::B)
                .iter()
                .all(|&b| b == 0xee)
        );
    }
}
