//! The two load shapes and the device cycle they both run.
//!
//! A *cycle* is what one device does per poll: `configData` on first contact (unless the devices
//! are registered already), the poll, and when the poll links a deploymentBase: fetch it,
//! `proceeding` feedback, optional 1 KiB download, `closed`/`success` feedback.
//!
//! - Interval mode: one task per device, polling on a fixed schedule (device i first at
//!   i·interval/N); each cycle opens one connection, keeps it alive for the cycle's requests and
//!   closes it, like a device whose poll interval exceeds the server's idle timeout. A cycle that
//!   overruns its slot skips the missed slots and counts them as late.
//! - Max mode: C workers, each with one keep-alive connection, running the cycles of devices
//!   w, w+C, w+2C, … back to back.
//! - Register mode: like max mode, but each device only sends its first-contact configData, once;
//!   the run ends when every device has (the whole run is measured).
//!
//! The measured window starts after a fixed warm-up or, by default, when every device has finished
//! its first cycle (the first full pass: every device has been seen once, caches and connection
//! pools are warm, a registration backlog is worked off). Both load modes stop starting cycles at
//! the end of the window; cycles still running get one request timeout to finish (unmeasured)
//! and are then aborted.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::cli::{Device, Mode, Settings, Warmup};
use crate::conn::Conn;
use crate::ddi::{self, Bodies, DeploymentAnswer, PollAnswer};
use crate::http::{self, Method};
use crate::stats::{RequestKind, Stats, Window};

const RANGE_HEADER: &str = "Range: bytes=0-1023";

/// What every task shares.
#[derive(Debug)]
struct Ctx {
    settings: Settings,
    bodies: Bodies,
    stats: Mutex<Stats>,
    /// Signalled when the first full pass is done.
    first_pass: Notify,
}

impl Ctx {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        // A poisoned lock means a task panicked mid-update; the counters are still usable.
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a finished cycle of a device (see `Stats::cycle_done`) and the connection counters.
    fn cycle_done(&self, client: &mut Client, state: &mut DeviceState, late: u64) {
        let first = !state.cycled;
        state.cycled = true;
        let mut st = self.stats();
        if st.cycle_done(Instant::now(), first, late) {
            self.first_pass.notify_one();
        }
        st.connects += std::mem::take(&mut client.conn.connects);
        st.reconnects += std::mem::take(&mut client.conn.reconnects);
    }

    fn ended(&self, t: Instant) -> bool {
        self.stats().ended(t)
    }

    fn controller_path(&self, device: &Device) -> String {
        format!(
            "{}/{}/controller/v1/{}",
            self.settings.base.prefix, self.settings.tenant, device.id
        )
    }
}

/// Per-device state carried across cycles.
#[derive(Debug, Default, Clone, Copy)]
struct DeviceState {
    registered: bool,
    /// Has finished a cycle (for the first full pass).
    cycled: bool,
}

/// Per-connection scratch buffers.
#[derive(Debug)]
struct Client {
    conn: Conn,
    request: Vec<u8>,
}

impl Client {
    /// One exchange, recorded. Returns true on success (2xx; 200/206 for downloads).
    async fn send(
        &mut self,
        ctx: &Ctx,
        kind: RequestKind,
        method: Method,
        target: &str,
        device: &Device,
        body: Option<&[u8]>,
    ) -> bool {
        let mut headers: [&str; 2] = ["", ""];
        let mut n = 0;
        if let Some(a) = &device.auth {
            headers[n] = a;
            n += 1;
        }
        if kind == RequestKind::Download {
            headers[n] = RANGE_HEADER;
            n += 1;
        }
        http::encode_request(
            &mut self.request,
            method,
            target,
            &ctx.settings.base.authority,
            &headers[..n],
            body,
        );
        let started = Instant::now();
        let result = self
            .conn
            .exchange(&self.request, ctx.settings.timeout)
            .await;
        match result {
            Ok(status) if (200..300).contains(&status) => {
                ctx.stats().success(kind, started);
                true
            }
            Ok(status) => {
                ctx.stats()
                    .failure(kind, started, &format!("http-{status}"));
                false
            }
            Err(e) => {
                ctx.stats().failure(kind, started, e.kind());
                false
            }
        }
    }
}

/// First contact: `PUT …/configData`. Returns true on success.
async fn register(ctx: &Ctx, client: &mut Client, device: &Device) -> bool {
    let target = format!("{}/configData", ctx.controller_path(device));
    let body = Some(ctx.bodies.config_data.as_slice());
    client
        .send(
            ctx,
            RequestKind::ConfigData,
            Method::Put,
            &target,
            device,
            body,
        )
        .await
}

async fn cycle(ctx: &Ctx, client: &mut Client, device: &Device, state: &mut DeviceState) {
    let base = ctx.controller_path(device);
    if !state.registered {
        if !register(ctx, client, device).await {
            return;
        }
        state.registered = true;
    }

    if !client
        .send(ctx, RequestKind::Poll, Method::Get, &base, device, None)
        .await
    {
        return;
    }
    let href = match serde_json::from_slice::<PollAnswer>(client.conn.body()) {
        Ok(a) => match a.links.deployment_base {
            Some(link) => link.href,
            None => return,
        },
        Err(_) => {
            ctx.stats()
                .failure(RequestKind::Poll, Instant::now(), "bad-poll-json");
            return;
        }
    };

    let target = http::href_target(&href).to_owned();
    let Some(action) = ddi::action_id(&target).map(str::to_owned) else {
        ctx.stats()
            .failure(RequestKind::Poll, Instant::now(), "bad-deployment-href");
        return;
    };
    if !client
        .send(
            ctx,
            RequestKind::DeploymentBase,
            Method::Get,
            &target,
            device,
            None,
        )
        .await
    {
        return;
    }
    ctx.stats().deployments_started += 1;
    let download = if ctx.settings.download {
        match serde_json::from_slice::<DeploymentAnswer>(client.conn.body()) {
            Ok(a) => a.first_download().map(|h| http::href_target(h).to_owned()),
            Err(_) => {
                ctx.stats().failure(
                    RequestKind::DeploymentBase,
                    Instant::now(),
                    "bad-deployment-json",
                );
                return;
            }
        }
    } else {
        None
    };

    let feedback = format!("{base}/deploymentBase/{action}/feedback");
    let proceeding = Some(ctx.bodies.proceeding.as_slice());
    if !client
        .send(
            ctx,
            RequestKind::Feedback,
            Method::Post,
            &feedback,
            device,
            proceeding,
        )
        .await
    {
        return;
    }
    if let Some(link) = download
        && !client
            .send(ctx, RequestKind::Download, Method::Get, &link, device, None)
            .await
    {
        return;
    }
    let success = Some(ctx.bodies.success.as_slice());
    if client
        .send(
            ctx,
            RequestKind::Feedback,
            Method::Post,
            &feedback,
            device,
            success,
        )
        .await
    {
        ctx.stats().deployments_completed += 1;
    }
}

/// The outcome of a run: the statistics and how the warm-up went.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    /// From the start of the run to the start of the measured window.
    pub warmup: Duration,
    /// False when a first-pass warm-up hit its limit.
    pub warmup_complete: bool,
    /// From the start of the run until every device had finished one cycle.
    pub first_pass: Option<Duration>,
    /// The measured window's length.
    pub duration: Duration,
}

/// Runs the load described by `settings` and returns the collected statistics.
pub async fn run(settings: Settings) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let grace = settings.timeout + Duration::from_secs(1);
    let n = settings.devices.len();
    let registered = settings.registered;
    let ctx = Arc::new(Ctx {
        bodies: Bodies::new()?,
        stats: Mutex::new(Stats::new(n)),
        first_pass: Notify::new(),
        settings,
    });
    let mark = ctx.settings.mark.clone();
    if let Some(path) = &mark {
        // A stale mark must not make a watcher start at once.
        remove_mark(path)?;
    }

    if let Warmup::Fixed(w) = ctx.settings.warmup {
        // Known before the first request (a multi-threaded runtime starts tasks at once).
        let start = t0 + w;
        ctx.stats().window = Some(Window {
            start,
            end: start + ctx.settings.duration,
        });
    }
    let mut tasks = JoinSet::new();
    let mode = ctx.settings.mode;
    match mode {
        Mode::Interval { every } => {
            for i in 0..n {
                let ctx = Arc::clone(&ctx);
                // Spread first contacts evenly over one interval.
                let offset = every.mul_f64(i as f64 / n as f64);
                let state = DeviceState {
                    registered,
                    cycled: false,
                };
                tasks.spawn(
                    async move { interval_device(&ctx, i, t0 + offset, every, state).await },
                );
            }
        }
        Mode::Max { connections } => {
            for w in 0..connections {
                let ctx = Arc::clone(&ctx);
                tasks.spawn(async move { max_worker(&ctx, w, connections, registered).await });
            }
        }
        Mode::Register { connections } => {
            for w in 0..connections {
                let ctx = Arc::clone(&ctx);
                tasks.spawn(async move { register_worker(&ctx, w, connections).await });
            }
        }
    }

    // The measured window: from the end of the warm-up for the duration. Registration is
    // measured from the start until every device is done (at most the duration).
    let (start, warmup_complete) = match ctx.settings.warmup {
        Warmup::Fixed(w) => (t0 + w, true),
        Warmup::FirstPass { limit } => {
            let done = tokio::time::timeout(limit, ctx.first_pass.notified()).await;
            (Instant::now(), done.is_ok())
        }
    };
    let mut end = start + ctx.settings.duration;
    ctx.stats().window = Some(Window { start, end });
    sleep_until(start).await;
    if let Some(path) = &mark {
        write_mark(path, "start")?;
    }
    if let Mode::Register { .. } = mode {
        if tokio::time::timeout_at(end, ctx.first_pass.notified())
            .await
            .is_ok()
        {
            end = Instant::now();
            ctx.stats().window = Some(Window { start, end });
        }
    } else {
        sleep_until(end).await;
    }
    if let Some(path) = &mark {
        write_mark(path, "end")?;
    }

    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let stats = std::mem::take(&mut *ctx.stats());
    let first_pass = stats.first_pass_done.map(|t| t - t0);
    Ok(Outcome {
        stats,
        warmup: start - t0,
        warmup_complete,
        first_pass,
        duration: end - start,
    })
}

fn remove_mark(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Appends a line to the mark file (`start`, then `end`).
fn write_mark(path: &Path, what: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{what}").with_context(|| format!("writing {}", path.display()))
}

async fn interval_device(
    ctx: &Ctx,
    i: usize,
    first: Instant,
    every: Duration,
    mut state: DeviceState,
) {
    let device = &ctx.settings.devices[i];
    let mut client = Client {
        conn: Conn::new(ctx.settings.addr),
        request: Vec::with_capacity(512),
    };
    let mut next = first;
    while !ctx.ended(next) {
        sleep_until(next).await;
        cycle(ctx, &mut client, device, &mut state).await;
        client.conn.close();
        let now = Instant::now();
        let mut late = 0;
        next += every;
        while next <= now {
            next += every;
            late += 1;
        }
        ctx.cycle_done(&mut client, &mut state, late);
    }
}

/// The devices worker `w` of `workers` runs: w, w+workers, …
fn share(ctx: &Ctx, w: usize, workers: usize) -> Vec<&Device> {
    ctx.settings
        .devices
        .iter()
        .skip(w)
        .step_by(workers)
        .collect()
}

async fn max_worker(ctx: &Ctx, w: usize, workers: usize, registered: bool) {
    let devices = share(ctx, w, workers);
    let state = DeviceState {
        registered,
        cycled: false,
    };
    let mut states = vec![state; devices.len()];
    let mut client = Client {
        conn: Conn::new(ctx.settings.addr),
        request: Vec::with_capacity(512),
    };
    'run: loop {
        for (device, state) in devices.iter().zip(states.iter_mut()) {
            if ctx.ended(Instant::now()) {
                break 'run;
            }
            cycle(ctx, &mut client, device, state).await;
            ctx.cycle_done(&mut client, state, 0);
        }
    }
}

async fn register_worker(ctx: &Ctx, w: usize, workers: usize) {
    let mut client = Client {
        conn: Conn::new(ctx.settings.addr),
        request: Vec::with_capacity(512),
    };
    for device in share(ctx, w, workers) {
        if ctx.ended(Instant::now()) {
            break;
        }
        register(ctx, &mut client, device).await;
        ctx.cycle_done(&mut client, &mut DeviceState::default(), 0);
    }
}
