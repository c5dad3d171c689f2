//! `rustupdate daemon` and `rustupdate check-update`: the device's side of the fleet.
//!
//! One cycle: send the final result still owed to the server (it survives reboots in the update
//! state), poll, report the inventory when it changed (and then poll again), then answer a cancel
//! request or act on the offered deployment: install it through the same pipeline as `rustupdate
//! install` (streamed into the inactive slot, no local copy; from a delta patch when the server
//! offers one, with the full artifact as the fallback), or reboot into it when the reboot policy
//! allows. The boot-time `rustupdate commit` decides commit or rollback; the next cycle reports
//! what it decided. The decisions are `rustupdate_core::daemon`'s; these files do the talking, one
//! step of the cycle each:
//!
//! - [`poll`]: the cycle itself, the poll and the inventory;
//! - [`deployment`]: what to do with an offered deployment, and where its bytes come from;
//! - [`install`]: writing it into the slot (fresh, resumed or from a delta patch);
//! - [`reboot`]: rebooting into it when the policy allows;
//! - [`cancel`]: the answer to a cancel request;
//! - [`trust`]: the trust document the server links, applied before any deployment;
//! - [`feedback`]: progress feedback and the final result.
//!
//! The steps reach the server through [`DdiTransport`] and the device through [`DaemonDevice`]
//! (the updater over the device's seams), so each is tested in-process against a recording fake
//! server and `rustupdate_testkit`'s simulated device.
//!
//! Each cycle holds the client lock (`sys::lock`) from before it reads the state until it ends,
//! and no longer: between polls a person can run `rustupdate install` by hand, and a cycle that
//! finds the lock taken is skipped (the next poll comes at the usual time).

mod cancel;
mod deployment;
mod feedback;
mod install;
mod poll;
mod reboot;
mod trust;

use crate::config::{Config, Server};
use crate::ddi_transport::{DdiTransport, HttpTransport};
use crate::delta_install::{self, DeltaOutcome, DeltaRequest};
use crate::delta_source::OpenUrl;
use crate::device::Device;
use crate::exit;
use crate::sys::lock::Busy;
use anyhow::{Context, Result};
use rustupdate_core::daemon::{PollPolicy, RebootPolicy};
use rustupdate_core::{SlotId, Updater};
use rustupdate_verify::{Keyring, SignaturePolicy};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Where the default controller id (the host name) is read.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";
/// First delay after a failed cycle (it doubles up to `max-backoff-secs`).
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Poll delays are spread by this fraction either way.
const JITTER: f64 = 0.1;
/// Inventory and consent programs get this long.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_SCRIPT_OUTPUT: usize = 16 * 1024;

pub fn daemon(config: &Config) -> Result<u8> {
    let mut daemon = Daemon::new(config, "daemon")?;
    log::info!(
        "rustupdate daemon {} polling {} as {}",
        env!("CARGO_PKG_VERSION"),
        daemon.server.url,
        daemon.transport.controller_id()
    );
    let mut errors = 0u32;
    let mut random = Random::seeded();
    loop {
        match daemon.cycle() {
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
        let delay = daemon
            .policy
            .next_delay(daemon.server_interval, errors, random.next());
        log::debug!("next poll in {:.1} s", delay.as_secs_f64());
        std::thread::sleep(delay);
    }
}

pub fn check_update(config: &Config) -> Result<u8> {
    let mut daemon = Daemon::new(config, "check-update")?;
    let summary = daemon.cycle()?;
    println!("{summary}");
    Ok(exit::OK)
}

/// The device as the daemon's steps use it: [`Device`] in the running daemon, the simulated
/// device of `rustupdate_testkit` in the tests.
trait DaemonDevice {
    fn booted(&self) -> SlotId;
    /// The updater over the device's seams.
    fn updater(&mut self) -> Result<Updater<'_>>;
    /// Requests the reboot into the installed slot.
    fn reboot(&mut self) -> Result<()>;
    /// A delta install of `request` ([`delta_install::install`]).
    fn install_delta(
        &mut self,
        ring: &Keyring,
        policy: &SignaturePolicy,
        request: DeltaRequest,
        open: OpenUrl,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<DeltaOutcome>;
}

impl DaemonDevice for Device {
    fn booted(&self) -> SlotId {
        self.booted
    }

    fn updater(&mut self) -> Result<Updater<'_>> {
        Device::updater(self)
    }

    fn reboot(&mut self) -> Result<()> {
        super::commit::reboot(self)
    }

    fn install_delta(
        &mut self,
        ring: &Keyring,
        policy: &SignaturePolicy,
        request: DeltaRequest,
        open: OpenUrl,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<DeltaOutcome> {
        delta_install::install(self, ring, policy, request, open, progress)
    }
}

/// The daemon between cycles: the server, the policies, and what it already told the server.
struct Daemon<T> {
    config: Config,
    /// The command a cycle holds the client lock for (`daemon`, `check-update`).
    command: &'static str,
    server: Server,
    transport: T,
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
    /// The version of the server's trust document this device refused (not fetched again).
    trust_refused: Option<u64>,
}

impl Daemon<HttpTransport> {
    fn new(config: &Config, command: &'static str) -> Result<Daemon<HttpTransport>> {
        let server = config
            .server
            .clone()
            .context("the configuration has no [server] section")
            .map_err(|err| err.context(exit::Usage))?;
        let transport = HttpTransport::new(&server, Path::new(HOSTNAME_FILE))?;
        Daemon::with_transport(config, command, server, transport)
    }

    /// One poll cycle, holding the client lock; returns a one-line summary of what happened.
    fn cycle(&mut self) -> Result<String> {
        let _lock = crate::sys::lock::take_lock(&self.config, self.command)?;
        let mut device = Device::open(&self.config)?;
        self.run_cycle(&mut device)
    }
}

impl<T: DdiTransport> Daemon<T> {
    fn with_transport(
        config: &Config,
        command: &'static str,
        server: Server,
        transport: T,
    ) -> Result<Daemon<T>> {
        Ok(Daemon {
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
            transport,
            server_interval: None,
            inventory_sent: None,
            told_waiting: None,
            repeated: None,
            broken_downloads: None,
            told_rebooting: None,
            trust_refused: None,
        })
    }
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

/// The fake server and simulated device of the steps' tests.
#[cfg(test)]
mod fake;
