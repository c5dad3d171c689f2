//! For the steps' in-process tests: a fake DDI server that records every request and answers
//! with canned hawkBit DDI JSON (read into `rustupdate_ddi`'s types, as from the wire), the
//! simulated device of `rustupdate_testkit` behind [`DaemonDevice`], and a daemon wired to both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use super::{Daemon, DaemonDevice};
use crate::config::Config;
use crate::ddi_transport::{ArtifactStream, DdiTransport, Delivery};
use crate::delta_install::{DeltaOutcome, DeltaRequest};
use crate::delta_source::OpenUrl;
use crate::source::HttpReader;
use anyhow::{Result, bail};
use rustupdate_core::SlotId;
use rustupdate_core::Updater;
use rustupdate_ddi::{self as ddi, Execution, Finished};
use rustupdate_testkit::sim::Sim;
use rustupdate_testkit::{ArtifactSpec, artifact, fs_image, key};
use rustupdate_verify::{Keyring, SignaturePolicy};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use tempfile::TempDir;

pub const BOARD: &str = "test-board";
const SERVER: &str = "http://fleet.test";
const CONTROLLER: &str = "http://fleet.test/DEFAULT/controller/v1/dev-1";
const CAPACITY: u64 = 1 << 20;

/// A request the daemon made, with what it sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Poll,
    Deployment(u64),
    CancelAction(u64),
    ConfigData(BTreeMap<String, String>),
    DeploymentFeedback(u64, ddi::ActionFeedback),
    CancelFeedback(u64, ddi::ActionFeedback),
    Artifact(String, u64),
}

/// The DDI server: canned JSON per resource, every request recorded.
#[derive(Debug, Default)]
pub struct FakeDdi {
    /// The root poll's answer.
    pub poll: RefCell<String>,
    pub deployments: RefCell<BTreeMap<u64, String>>,
    pub cancels: RefCell<BTreeMap<u64, String>>,
    /// Artifact bytes by download link.
    pub artifacts: RefCell<BTreeMap<String, Vec<u8>>>,
    pub requests: RefCell<Vec<Request>>,
}

impl FakeDdi {
    fn record(&self, request: Request) {
        self.requests.borrow_mut().push(request);
    }

    fn canned<T: serde::de::DeserializeOwned>(
        &self,
        table: &RefCell<BTreeMap<u64, String>>,
        action: u64,
    ) -> Result<T> {
        match table.borrow().get(&action) {
            Some(json) => Ok(serde_json::from_str(json)?),
            None => bail!("status 404: no action {action}"),
        }
    }
}

impl DdiTransport for FakeDdi {
    fn poll(&self) -> Result<ddi::ControllerBase> {
        self.record(Request::Poll);
        Ok(serde_json::from_str(&self.poll.borrow())?)
    }

    fn deployment(&self, action: u64) -> Result<ddi::DeploymentBase> {
        self.record(Request::Deployment(action));
        self.canned(&self.deployments, action)
    }

    fn cancel_action(&self, action: u64) -> Result<ddi::CancelActionBase> {
        self.record(Request::CancelAction(action));
        self.canned(&self.cancels, action)
    }

    fn put_config_data(&self, data: &ddi::ConfigData) -> Result<()> {
        self.record(Request::ConfigData(data.data.clone()));
        Ok(())
    }

    fn deployment_feedback(&self, action: u64, feedback: &ddi::ActionFeedback) -> Result<Delivery> {
        self.record(Request::DeploymentFeedback(action, feedback.clone()));
        Ok(Delivery::Accepted)
    }

    fn cancel_feedback(&self, action: u64, feedback: &ddi::ActionFeedback) -> Result<Delivery> {
        self.record(Request::CancelFeedback(action, feedback.clone()));
        Ok(Delivery::Accepted)
    }

    fn download(&self, href: &str) -> Result<HttpReader> {
        bail!("the fake server has no delta patches ({href})")
    }

    fn artifact(&self, href: &str) -> Result<Box<dyn ArtifactStream>> {
        self.artifact_from(href, 0)
    }

    fn artifact_from(&self, href: &str, offset: u64) -> Result<Box<dyn ArtifactStream>> {
        self.record(Request::Artifact(href.into(), offset));
        let Some(bytes) = self.artifacts.borrow().get(href).cloned() else {
            bail!("GET {href}: status 404");
        };
        let mut cursor = Cursor::new(bytes);
        cursor.set_position(offset);
        Ok(Box::new(Body(cursor)))
    }
}

struct Body(Cursor<Vec<u8>>);

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl ArtifactStream for Body {
    fn total(&self) -> Option<u64> {
        Some(self.0.get_ref().len() as u64)
    }
}

impl DaemonDevice for Sim {
    fn booted(&self) -> SlotId {
        self.booted
    }

    fn updater(&mut self) -> Result<Updater<'_>> {
        Ok(Sim::updater(self)?)
    }

    fn reboot(&mut self) -> Result<()> {
        rustupdate_core::seams::Reboot::reboot(&mut self.reboot)?;
        Ok(())
    }

    fn install_delta(
        &mut self,
        _: &Keyring,
        _: &SignaturePolicy,
        request: DeltaRequest,
        _: OpenUrl,
        _: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<DeltaOutcome> {
        bail!(
            "the simulated device takes no delta patch ({})",
            request.patch
        )
    }
}

/// A daemon on the simulated device (slot A committed with the old image, booted) talking to
/// the fake server.
pub struct Rig {
    pub daemon: Daemon<FakeDdi>,
    pub sim: Sim,
    pub dir: TempDir,
}

impl Rig {
    /// `server` is added to the `[server]` section of the configuration.
    pub fn new(server: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/release.pem"),
            key(1).public_key().to_pem().unwrap(),
        )
        .unwrap();
        let config = Config::parse(&format!(
            r#"
device-type = "{BOARD}"
data-dir = "{root}/data"
[slots.a]
device = "/dev/null"
[slots.b]
device = "/dev/null"
[bootloader]
type = "grub"
grubenv = "{root}/grubenv"
[keys]
trusted-dir = "{root}/keys"
[server]
url = "{SERVER}"
allow-insecure-http = true
controller-id = "dev-1"
accept-deltas = false
{server}
"#
        ))
        .unwrap();
        let section = config.server.clone().unwrap();
        let fake = FakeDdi::default();
        *fake.poll.borrow_mut() = nothing();
        let daemon = Daemon::with_transport(&config, "daemon", section, fake).unwrap();
        let sim = Sim::new(BOARD, &old_image(), CAPACITY);
        Rig { daemon, sim, dir }
    }

    pub fn cycle(&mut self) -> Result<String> {
        self.daemon.run_cycle(&mut self.sim)
    }

    /// The requests since the last call.
    pub fn requests(&self) -> Vec<Request> {
        self.daemon.transport.requests.take()
    }

    pub fn set_poll(&self, json: String) {
        *self.daemon.transport.poll.borrow_mut() = json;
    }

    /// The server offers deployment `action` of `bytes` as `update.rua` (version 2.0).
    pub fn offer(&self, action: u64, bytes: Vec<u8>) {
        let href = format!("{SERVER}/artifacts/{action}/update.rua");
        let deployment = format!(
            r#"{{"id":"{action}","deployment":{{"download":"forced","update":"forced",
            "chunks":[{{"part":"os","version":"2.0","name":"rootfs","artifacts":[
            {{"filename":"update.rua","size":{},"hashes":{{"sha1":"","md5":"","sha256":""}},
            "_links":{{"download":{{"href":"{href}"}}}}}}]}}]}}}}"#,
            bytes.len()
        );
        let fake = &self.daemon.transport;
        fake.deployments.borrow_mut().insert(action, deployment);
        fake.artifacts.borrow_mut().insert(href, bytes);
        self.set_poll(offering("deploymentBase", action));
    }

    /// The server asks (as action `id`) to cancel action `stop`.
    pub fn cancel(&self, id: u64, stop: u64) {
        let json = format!(r#"{{"id":"{id}","cancelAction":{{"stopId":"{stop}"}}}}"#);
        self.daemon.transport.cancels.borrow_mut().insert(id, json);
        self.set_poll(offering("cancelAction", id));
    }
}

/// The root poll with nothing to do.
pub fn nothing() -> String {
    r#"{"config":{"polling":{"sleep":"00:05:00"}},"_links":{}}"#.into()
}

/// The root poll linking `resource` (`deploymentBase`, `cancelAction`) of `action`.
fn offering(resource: &str, action: u64) -> String {
    format!(
        r#"{{"config":{{"polling":{{"sleep":"00:05:00"}}}},
        "_links":{{"{resource}":{{"href":"{CONTROLLER}/{resource}/{action}?c=-2"}}}}}}"#
    )
}

pub fn old_image() -> Vec<u8> {
    fs_image(300_000, 1)
}

pub fn new_image() -> Vec<u8> {
    fs_image(300_000, 2)
}

/// Release 2.0 of [`new_image`] for `board`, signed with key `signer` (the device trusts 1).
pub fn release(board: &str, signer: u8) -> Vec<u8> {
    let spec = ArtifactSpec {
        version: "2.0",
        compatible: &[board],
        ..Default::default()
    };
    artifact(&spec, &new_image(), &[&key(signer)])
}

/// A feedback as `(action, execution, finished, progress, first detail)`, for comparisons.
pub type Said = (u64, Execution, Finished, Option<u64>, String);

/// The deployment feedback among `requests`.
pub fn feedback(requests: &[Request]) -> Vec<Said> {
    feedback_to(requests, false)
}

/// The cancel feedback among `requests`.
pub fn cancel_feedback(requests: &[Request]) -> Vec<Said> {
    feedback_to(requests, true)
}

/// The one feedback in `said`.
pub fn only(said: Vec<Said>) -> Said {
    assert_eq!(said.len(), 1, "{said:?}");
    said.into_iter().next().unwrap()
}

fn feedback_to(requests: &[Request], cancel: bool) -> Vec<Said> {
    requests
        .iter()
        .filter_map(|r| match (r, cancel) {
            (Request::DeploymentFeedback(action, f), false)
            | (Request::CancelFeedback(action, f), true) => Some(said(*action, f)),
            _ => None,
        })
        .collect()
}

fn said(action: u64, feedback: &ddi::ActionFeedback) -> Said {
    let status = &feedback.status;
    (
        action,
        status.execution,
        status.result.finished,
        status.result.progress.map(|p| p.cnt),
        status.details.first().cloned().unwrap_or_default(),
    )
}
