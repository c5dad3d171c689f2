//! The two load shapes and the device cycle they both run.
//!
//! A *cycle* is what one device does per poll: `configData` on first contact, the poll, and when
//! the poll links a deploymentBase: fetch it, `proceeding` feedback, optional 1 KiB download,
//! `closed`/`success` feedback.
//!
//! - Interval mode: one task per device, polling on a fixed schedule (device i first at
//!   i·interval/N); each cycle opens one connection, keeps it alive for the cycle's requests and
//!   closes it, like a device whose poll interval exceeds the server's idle timeout. A cycle that
//!   overruns its slot skips the missed slots and counts them as late.
//! - Max mode: C workers, each with one keep-alive connection, running the cycles of devices
//!   w, w+C, w+2C, … back to back.
//!
//! Both stop starting cycles at the end of the window; cycles still running get one request
//! timeout to finish (unmeasured) and are then aborted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::cli::{Device, Mode, Settings};
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
    window: Window,
    stats: Mutex<Stats>,
}

impl Ctx {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        // A poisoned lock means a task panicked mid-update; the counters are still usable.
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
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
                ctx.stats().success(&ctx.window, kind, started);
                true
            }
            Ok(status) => {
                ctx.stats()
                    .failure(&ctx.window, kind, started, &format!("http-{status}"));
                false
            }
            Err(e) => {
                ctx.stats().failure(&ctx.window, kind, started, e.kind());
                false
            }
        }
    }
}

async fn cycle(ctx: &Ctx, client: &mut Client, device: &Device, state: &mut DeviceState) {
    let base = ctx.controller_path(device);
    if !state.registered {
        let target = format!("{base}/configData");
        let body = Some(ctx.bodies.config_data.as_slice());
        if !client
            .send(
                ctx,
                RequestKind::ConfigData,
                Method::Put,
                &target,
                device,
                body,
            )
            .await
        {
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
            ctx.stats().failure(
                &ctx.window,
                RequestKind::Poll,
                Instant::now(),
                "bad-poll-json",
            );
            return;
        }
    };

    let target = http::href_target(&href).to_owned();
    let Some(action) = ddi::action_id(&target).map(str::to_owned) else {
        ctx.stats().failure(
            &ctx.window,
            RequestKind::Poll,
            Instant::now(),
            "bad-deployment-href",
        );
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
                    &ctx.window,
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

/// Runs the load described by `settings` and returns the collected statistics.
pub async fn run(settings: Settings) -> anyhow::Result<Stats> {
    let t0 = Instant::now();
    let window = Window {
        start: t0 + settings.warmup,
        end: t0 + settings.warmup + settings.duration,
    };
    let grace = settings.timeout + Duration::from_secs(1);
    let ctx = Arc::new(Ctx {
        bodies: Bodies::new()?,
        window,
        stats: Mutex::new(Stats::default()),
        settings,
    });

    let mut tasks = JoinSet::new();
    let n = ctx.settings.devices.len();
    match ctx.settings.mode {
        Mode::Interval { every } => {
            for i in 0..n {
                let ctx = Arc::clone(&ctx);
                // Spread first contacts evenly over one interval.
                let offset = every.mul_f64(i as f64 / n as f64);
                tasks.spawn(async move { interval_device(&ctx, i, t0 + offset, every).await });
            }
        }
        Mode::Max { connections } => {
            for w in 0..connections {
                let ctx = Arc::clone(&ctx);
                tasks.spawn(async move { max_worker(&ctx, w, connections).await });
            }
        }
    }

    sleep_until(window.end).await;
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let stats = std::mem::take(&mut *ctx.stats());
    Ok(stats)
}

async fn interval_device(ctx: &Ctx, i: usize, first: Instant, every: Duration) {
    let device = &ctx.settings.devices[i];
    let mut state = DeviceState::default();
    let mut client = Client {
        conn: Conn::new(ctx.settings.addr),
        request: Vec::with_capacity(512),
    };
    let mut next = first;
    while next < ctx.window.end {
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
        let mut st = ctx.stats();
        if now >= ctx.window.start && now <= ctx.window.end {
            st.cycles += 1;
            st.late_cycles += late;
        }
        st.connects += std::mem::take(&mut client.conn.connects);
        st.reconnects += std::mem::take(&mut client.conn.reconnects);
    }
}

async fn max_worker(ctx: &Ctx, w: usize, workers: usize) {
    let devices: Vec<&Device> = ctx
        .settings
        .devices
        .iter()
        .skip(w)
        .step_by(workers)
        .collect();
    let mut states = vec![DeviceState::default(); devices.len()];
    let mut client = Client {
        conn: Conn::new(ctx.settings.addr),
        request: Vec::with_capacity(512),
    };
    'run: loop {
        for (device, state) in devices.iter().zip(states.iter_mut()) {
            if Instant::now() >= ctx.window.end {
                break 'run;
            }
            cycle(ctx, &mut client, device, state).await;
            let now = Instant::now();
            let mut st = ctx.stats();
            if now >= ctx.window.start && now <= ctx.window.end {
                st.cycles += 1;
            }
            st.connects += std::mem::take(&mut client.conn.connects);
            st.reconnects += std::mem::take(&mut client.conn.reconnects);
        }
    }
}
