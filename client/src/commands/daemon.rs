//! `rustupdate daemon` and `rustupdate check-update`: the device's side of the fleet.
//!
//! One cycle: send the final result still owed to the server (it survives reboots in the update
//! state), poll, report the inventory when it changed (and then poll again), then answer a cancel
//! request or act on the offered deployment: install it through the same pipeline as `rustupdate
//! install` (streamed into the inactive slot, no local copy; from a delta patch when the server
//! offers one, with the full artifact as the fallback), or reboot into it when the reboot policy
//! allows. The
//! boot-time `rustupdate commit` decides commit or rollback; the next cycle reports what it
//! decided. The decisions are `rustupdate_core::fleet`'s; this file does the talking.
//!
//! Each cycle holds the client lock (`sys::lock`) from before it reads the state until it ends,
//! and no longer: between polls a person can run `rustupdate install` by hand, and a cycle that
//! finds the lock taken is skipped (the next poll comes at the usual time).

use crate::config::{Config, Server};
use crate::ddi_client::{DdiClient, Delivery, action_of};
use crate::delta_install::{self, DeltaOutcome, DeltaRequest};
use crate::device::{Device, keyring};
use crate::exit;
use crate::source::HttpReader;
use crate::sys::lock::Busy;
use crate::sys::scripts::capture;
use anyhow::{Context, Result, bail};
use rustupdate_core::fleet::{
    self, CancelStep, DeploymentStep, FinalReport, PollPolicy, RebootPolicy,
};
use rustupdate_core::state::{Checkpoint, OutcomeKind};
use rustupdate_ddi::{
    self as ddi, ActionFeedback, ConfigData, ConfigDataMode, Execution, Finished, attributes,
};
use rustupdate_verify::{ResumePoint, SignaturePolicy, VerifiedArtifact, read_verified_head};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Where the default controller id (the host name) is read.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";
/// First delay after a failed cycle (it doubles up to `max-backoff-secs`).
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Poll delays are spread by this fraction either way.
const JITTER: f64 = 0.1;
/// Inventory and consent programs get this long.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_SCRIPT_OUTPUT: usize = 16 * 1024;
/// During a download: progress feedback at most this often, and a look for a cancel request.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Cycles in a row whose download may break off (each after its own reconnects) before the
/// update is reported as failed.
const MAX_DOWNLOAD_ATTEMPTS: u32 = 10;

pub fn daemon(config: &Config) -> Result<u8> {
    let mut fleet = Fleet::new(config, "daemon")?;
    log::info!(
        "rustupdate daemon {} polling {} as {}",
        env!("CARGO_PKG_VERSION"),
        fleet.server.url,
        fleet.client.controller_id()
    );
    let mut errors = 0u32;
    let mut random = Random::seeded();
    loop {
        match fleet.cycle() {
            Ok(summary) => {
                errors = 0;
                log::debug!("{summary}");
            }
            // Not a failure of this device or the server: no backoff.
            Err(err) if err.downcast_ref::<Busy>().is_some() => {
                log::info!("{err:#}; this poll is skipped");
            }
            Err(err) => {
                errors = errors.saturating_add(1);
                log::error!("{err:#}");
            }
        }
        let delay = fleet
            .policy
            .next_delay(fleet.server_interval, errors, random.next());
        log::debug!("next poll in {:.1} s", delay.as_secs_f64());
        std::thread::sleep(delay);
    }
}

pub fn check_update(config: &Config) -> Result<u8> {
    let mut fleet = Fleet::new(config, "check-update")?;
    let summary = fleet.cycle()?;
    println!("{summary}");
    Ok(exit::OK)
}

struct Fleet {
    config: Config,
    /// The command a cycle holds the client lock for (`daemon`, `check-update`).
    command: &'static str,
    server: Server,
    client: DdiClient,
    policy: PollPolicy,
    reboot: RebootPolicy,
    /// The server's polling interval, once it said one.
    server_interval: Option<Duration>,
    /// The attributes the server last accepted (sent again only when they change).
    inventory_sent: Option<BTreeMap<String, String>>,
    /// Actions the server was already told are waiting (consent, reboot window).
    told_waiting: Option<(u64, String)>,
    /// The finished action whose result was repeated to the server in this run.
    repeated: Option<u64>,
    /// Cycles in a row whose download of this action broke off.
    broken_downloads: Option<(u64, u32)>,
    /// The action the server was told the device reboots into.
    told_rebooting: Option<u64>,
}

impl Fleet {
    fn new(config: &Config, command: &'static str) -> Result<Fleet> {
        let server = config
            .server
            .clone()
            .context("the configuration has no [server] section")
            .map_err(|err| err.context(exit::Usage))?;
        let client = DdiClient::new(&server, Path::new(HOSTNAME_FILE))?;
        Ok(Fleet {
            policy: PollPolicy {
                default_interval: Duration::from_secs(server.poll_interval_secs),
                backoff_base: BACKOFF_BASE,
                backoff_cap: Duration::from_secs(server.max_backoff_secs),
                jitter: JITTER,
            },
            reboot: server.reboot_policy()?,
            config: config.clone(),
            command,
            server,
            client,
            server_interval: None,
            inventory_sent: None,
            told_waiting: None,
            repeated: None,
            broken_downloads: None,
            told_rebooting: None,
        })
    }

    /// One poll cycle, holding the client lock; returns a one-line summary of what happened.
    fn cycle(&mut self) -> Result<String> {
        let _lock = super::take_lock(&self.config, self.command)?;
        let mut device = Device::open(&self.config)?;
        self.send_owed(&mut device)?;
        let mut base = self.client.poll().context("polling the server")?;
        self.server_interval = Some(base.config.polling.sleep.duration());
        if self.send_inventory(&mut device)? && base.links.deployment_base.is_some() {
            // The server may offer the deployment differently to what the device now says it
            // runs (a delta patch from its base, held back while the patch is built): asked
            // again before acting.
            base = self.client.poll().context("polling the server")?;
        }
        if let Some(link) = &base.links.cancel_action {
            let action = action_of(link)?;
            return self.answer_cancel(&mut device, action);
        }
        if let Some(link) = &base.links.deployment_base {
            let action = action_of(link)?;
            return self.deployment(&mut device, action);
        }
        Ok("no update offered".into())
    }

    /// Sends the final result the state says is still owed, and records that it arrived.
    fn send_owed(&mut self, device: &mut Device) -> Result<()> {
        let Some(report) = fleet::owed(device.updater()?.state()) else {
            return Ok(());
        };
        let feedback = final_feedback(&report);
        let delivery = if report.cancel {
            self.client.cancel_feedback(report.action, &feedback)
        } else {
            self.client.deployment_feedback(report.action, &feedback)
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

    /// Sends the inventory if it changed since the server last accepted it; whether it did.
    fn send_inventory(&mut self, device: &mut Device) -> Result<bool> {
        let booted = device.booted;
        let state = device.updater()?.state().clone();
        let versions = fleet::slot_versions(&state, booted);
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
        self.client
            .put_config_data(&ConfigData {
                mode: ConfigDataMode::Replace,
                data: data.clone(),
            })
            .context("sending the inventory")?;
        self.inventory_sent = Some(data);
        Ok(true)
    }

    fn answer_cancel(&mut self, device: &mut Device, action: u64) -> Result<String> {
        let request = self.client.cancel_action(action)?;
        let stop: u64 = request.cancel_action.stop_id.parse().with_context(|| {
            format!(
                "cancel request with stopId {:?}",
                request.cancel_action.stop_id
            )
        })?;
        let status = device.updater()?.status()?;
        match fleet::cancel_step(&status, stop) {
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
                    self.client.cancel_feedback(action, &feedback)?;
                }
                log::info!("action {stop} cancelled by the server");
                Ok(format!("action {stop} cancelled"))
            }
            CancelStep::Refuse(reason) => {
                log::warn!("refusing to cancel action {stop}: {reason}");
                let feedback =
                    ActionFeedback::new(Execution::Rejected, Finished::None, vec![reason]);
                self.client.cancel_feedback(action, &feedback)?;
                Ok(format!("cancel of action {stop} refused"))
            }
        }
    }

    fn deployment(&mut self, device: &mut Device, action: u64) -> Result<String> {
        let status = device.updater()?.status()?;
        match fleet::deployment_step(&status, action) {
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

    /// The server offers an action whose result it was sent: send it once more (per daemon run),
    /// in case the answer got lost or the server reuses the id for a retry (gooseBit does).
    fn repeat_result(&mut self, device: &mut Device, action: u64) -> Result<String> {
        let done = format!("action {action} finished; result reported");
        if self.repeated == Some(action) {
            return Ok(done);
        }
        self.repeated = Some(action);
        if let Some(report) = fleet::result_of(device.updater()?.state(), action) {
            log::info!("the server offers finished action {action} again; repeating its result");
            let feedback = final_feedback(&report);
            if report.cancel {
                self.client.cancel_feedback(action, &feedback)?;
            } else {
                self.client.deployment_feedback(action, &feedback)?;
            }
        }
        Ok(done)
    }

    fn install(&mut self, device: &mut Device, action: u64) -> Result<String> {
        let deployment = self.client.deployment(action)?;
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
        if let Some(script) = &self.server.consent_script {
            let verdict = capture(
                script,
                &[&action.to_string(), &version],
                SCRIPT_TIMEOUT,
                MAX_SCRIPT_OUTPUT,
            );
            match verdict {
                Ok(out) if out.code == Some(0) => {}
                Ok(out) => {
                    let why = format!("deferred by the consent script (exit {:?})", out.code);
                    return self.tell_waiting(action, why);
                }
                Err(err) => return self.tell_waiting(action, format!("consent script: {err}")),
            }
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
        let ring = keyring(&self.config)?;
        let policy = SignaturePolicy::threshold(self.config.keys.threshold)?;
        let parallel = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        // An install of this action that a power cut interrupted continues at its checkpoint.
        let status = device.updater()?.status()?;
        let checkpoint = status
            .pending
            .as_ref()
            .filter(|p| p.action == Some(action))
            .and_then(|p| p.checkpoint);
        if let Some(checkpoint) = checkpoint {
            match self.open_resumed(&link.href, &ring, &policy, checkpoint) {
                Ok(resumed) => {
                    let resumed = resumed.with_parallel_image_hash(parallel);
                    match self.write(device, action, Source::Resumed(resumed)) {
                        Err(err) if cannot_resume(&err) => {
                            log::warn!("{err:#}; downloading from the start");
                        }
                        other => {
                            return other.map_err(|err| {
                                err.context(format!(
                                    "action {action}: installing {}",
                                    artifact.filename
                                ))
                            });
                        }
                    }
                }
                Err(err) => {
                    log::warn!("cannot resume the download ({err:#}); downloading from the start");
                }
            }
        }
        if self.server.accept_deltas
            && checkpoint.is_none()
            && let Some(patch) = pick_patch(&deployment)
        {
            let request = DeltaRequest {
                artifact: &link.href,
                patch,
                action: Some(action),
                parallel,
            };
            if let Some(done) = self.install_delta(device, request, &ring, &policy)? {
                return Ok(done);
            }
        }
        let reader = self.client.download(&link.href)?;
        let verified =
            VerifiedArtifact::open(BufReader::with_capacity(1 << 20, reader), &ring, &policy)
                .and_then(|artifact| match artifact.source().get_ref().total() {
                    Some(len) => artifact.check_source_len(len).map(|()| artifact),
                    None => Ok(artifact),
                });
        let verified = match verified {
            Ok(verified) => verified,
            Err(err) if err.is_io() => {
                // Nothing written; the next cycle tries again.
                return Err(anyhow::Error::new(err).context(format!("downloading {}", link.href)));
            }
            Err(err) => {
                device
                    .updater()?
                    .record_rejection(Some(action), &version, &err)?;
                self.send_owed(device)?;
                bail!("action {action}: artifact rejected: {err}");
            }
        };
        let verified = verified.with_parallel_image_hash(parallel);
        self.write(device, action, Source::Fresh(verified))
            .map_err(|err| {
                err.context(format!("action {action}: installing {}", artifact.filename))
            })
    }

    /// Opens the artifact to continue at `checkpoint`: the head read (and its signatures checked)
    /// anew, the body from the checkpoint's segment with a `Range` request. Fails (and the caller
    /// downloads from the start) when the server cannot serve the range.
    fn open_resumed(
        &self,
        href: &str,
        ring: &rustupdate_verify::Keyring,
        policy: &SignaturePolicy,
        checkpoint: Checkpoint,
    ) -> Result<VerifiedArtifact<BufReader<HttpReader>>> {
        let mut head_reader = BufReader::with_capacity(64 << 10, self.client.download(href)?);
        let (head, signers) = read_verified_head(&mut head_reader, ring, policy)?;
        drop(head_reader);
        let point = ResumePoint {
            segment: usize::try_from(checkpoint.segment).context("checkpoint segment")?,
            image_offset: checkpoint.image_offset,
        };
        let offset = head
            .segment_offset(0, point.segment)
            .with_context(|| format!("the artifact has no segment {}", point.segment))?;
        let mut body = self.client.download(href)?.starting_at(offset);
        body.connect_now()
            .context("requesting the rest of the artifact")?;
        log::info!(
            "resuming the download at byte {offset} (segment {}, image byte {})",
            point.segment,
            point.image_offset
        );
        let total = body.total();
        let artifact = VerifiedArtifact::resume(
            head,
            signers,
            BufReader::with_capacity(1 << 20, body),
            point,
        )?;
        if let Some(len) = total {
            artifact.check_source_len(len)?;
        }
        Ok(artifact)
    }

    /// Rebuilds the release from a delta patch the deployment offers. `Some(summary)` when that
    /// installed it (or the install failed as a full one would have); `None` when the device
    /// must download the full artifact instead: the reason goes to the server, which counts it.
    fn install_delta(
        &mut self,
        device: &mut Device,
        request: DeltaRequest,
        ring: &rustupdate_verify::Keyring,
        policy: &SignaturePolicy,
    ) -> Result<Option<String>> {
        let action = request.action.unwrap_or_default();
        log::info!(
            "action {action}: the server offers a delta patch, {}",
            request.patch
        );
        let client = &self.client;
        let open = |url: &str| client.download(url);
        let mut on_progress = self.reporter(action);
        let outcome =
            delta_install::install(device, ring, policy, request, &open, &mut on_progress);
        drop(on_progress);
        match outcome? {
            DeltaOutcome::Installed {
                report,
                patch_bytes,
                head_bytes,
                artifact_bytes,
            } => {
                let note = format!(
                    "installed {} into slot {} from a delta patch: downloaded {} bytes (patch \
                     {patch_bytes}, artifact head {head_bytes}) instead of the artifact's \
                     {artifact_bytes}",
                    report.version,
                    report.slot,
                    patch_bytes + head_bytes
                );
                self.installed(device, action, note).map(Some)
            }
            DeltaOutcome::FellBack(why) => {
                log::warn!("action {action}: {why}; downloading the full artifact");
                let feedback = ActionFeedback::new(
                    Execution::Proceeding,
                    Finished::None,
                    vec![ddi::delta::fallback_line(&why)],
                );
                if let Err(err) = self.client.deployment_feedback(action, &feedback) {
                    log::warn!("fallback feedback: {err:#}");
                }
                Ok(None)
            }
            DeltaOutcome::Failed(err) => self.install_failed(device, action, err).map(Some),
        }
    }

    /// The progress callback of an install: a log line every 10 %, progress feedback and a look
    /// for a cancel request every [`PROGRESS_EVERY`].
    fn reporter(&self, action: u64) -> impl FnMut(u64, u64) -> Result<(), String> + '_ {
        let client = &self.client;
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
            if let Err(err) = client.deployment_feedback(action, &feedback) {
                log::warn!("progress feedback: {err:#}");
            }
            // A cancel request stops the download before anything is armed.
            match client.poll() {
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

    /// Streams the artifact into the inactive slot (from the start or from a checkpoint), with
    /// progress feedback and a look for a cancel request every [`PROGRESS_EVERY`]; then reboots
    /// per policy. Any failure after the install began is in the state and reported at once.
    fn write(&mut self, device: &mut Device, action: u64, source: Source) -> Result<String> {
        let mut on_progress = self.reporter(action);
        let mut updater = device.updater()?;
        let result = match source {
            Source::Fresh(artifact) => updater.install(artifact, Some(action), &mut on_progress),
            Source::Resumed(artifact) => updater.resume(artifact, action, &mut on_progress),
        };
        drop(updater);
        drop(on_progress);
        match result {
            Ok(report) => {
                let note = format!("installed {} into slot {}", report.version, report.slot);
                self.installed(device, action, note)
            }
            Err(err) => self.install_failed(device, action, err),
        }
    }

    /// After a successful install: tell the server, then reboot per policy.
    fn installed(&mut self, device: &mut Device, action: u64, note: String) -> Result<String> {
        self.broken_downloads = None;
        log::info!("action {action}: {note}");
        self.progress(action, Execution::Downloaded, Some(100), note);
        self.reboot_when_allowed(device, action)
    }

    /// After a failed install: a broken-off download continues at the next cycles (up to a
    /// limit); anything else is in the state and reported at once.
    fn install_failed(
        &mut self,
        device: &mut Device,
        action: u64,
        err: rustupdate_core::Error,
    ) -> Result<String> {
        if matches!(&err, rustupdate_core::Error::Artifact(e) if e.is_io()) {
            // The link broke off; the install stays interrupted (the core keeps it) and the
            // next cycles continue it from its checkpoint, up to a limit.
            let attempts = match self.broken_downloads {
                Some((a, n)) if a == action => n + 1,
                _ => 1,
            };
            self.broken_downloads = Some((action, attempts));
            if attempts < MAX_DOWNLOAD_ATTEMPTS {
                return Err(anyhow::Error::new(err).context(format!(
                    "action {action}: download attempt {attempts} of {MAX_DOWNLOAD_ATTEMPTS} \
                     broke off; it continues at the next cycle"
                )));
            }
            let detail = format!(
                "download failed {attempts} times: {}",
                rustupdate_core::chain(&err)
            );
            device
                .updater()?
                .abandon_interrupted(action, OutcomeKind::Failed, detail)?;
        }
        // The outcome (with the action) is in the state when the install got that far.
        self.send_owed(device)?;
        Err(anyhow::Error::new(err))
    }

    fn reboot_when_allowed(&mut self, device: &mut Device, action: u64) -> Result<String> {
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
        super::commit::reboot(device)?;
        Ok(format!("action {action} installed; rebooting"))
    }

    /// Tells the server once why an action waits (consent, window, manual reboot).
    fn tell_waiting(&mut self, action: u64, why: String) -> Result<String> {
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
    fn progress(&self, action: u64, execution: Execution, percent: Option<u64>, detail: String) {
        let mut feedback = ActionFeedback::new(execution, Finished::None, vec![detail]);
        if let Some(percent) = percent {
            feedback = with_progress(feedback, percent);
        }
        if let Err(err) = self.client.deployment_feedback(action, &feedback) {
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

/// Where the bytes of an install come from.
enum Source {
    Fresh(VerifiedArtifact<BufReader<HttpReader>>),
    /// Continuing an interrupted install at its checkpoint.
    Resumed(VerifiedArtifact<BufReader<HttpReader>>),
}

/// The updater found the interrupted install cannot continue (nothing was written).
fn cannot_resume(err: &anyhow::Error) -> bool {
    err.downcast_ref::<rustupdate_core::Error>()
        .is_some_and(|e| matches!(e, rustupdate_core::Error::CannotResume { .. }))
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

/// Jitter source: xorshift64 seeded from the clock and the process id. Not for secrets; it only
/// keeps devices that start together from polling in step.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Random((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    /// Uniform in `[0, 1)`.
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}
