//! `fleet-load`: a load generator for hawkBit DDI servers on this machine (rustupdate-server,
//! gooseBit, …). See `docs/fleet-load.md` for how to run it and what it measures.
//!
//! It simulates devices with a hand-written HTTP/1.1 client on plain tokio TCP (less client CPU
//! than a general-purpose client on a machine shared with the server). It does not do TLS,
//! real downloads beyond a 1 KiB range, or any traffic to other machines: non-loopback targets
//! are refused.

mod cli;
mod conn;
mod ddi;
mod hist;
mod http;
mod run;
mod stats;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Args, Mode, Settings, Warmup};
use crate::stats::{LoadShape, Report, RunInfo, WarmupKind};

/// Linux reports process times in USER_HZ ticks, fixed at 100 by the kernel ABI.
const USER_HZ: f64 = 100.0;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_args(Args::parse())?;
    let runtime = if settings.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(settings.threads);
        b
    }
    .enable_all()
    .build()
    .context("starting the tokio runtime")?;

    let (url, tenant, devices) = (
        settings.url.clone(),
        settings.tenant.clone(),
        settings.devices.len(),
    );
    let load = match settings.mode {
        Mode::Interval { every } => LoadShape::Interval {
            poll_interval_s: every.as_secs_f64(),
        },
        Mode::Max { connections } => LoadShape::Max { connections },
        Mode::Register { connections } => LoadShape::Register { connections },
    };
    let warmup_kind = match settings.warmup {
        Warmup::Fixed(_) => WarmupKind::Fixed,
        Warmup::FirstPass { .. } => WarmupKind::FirstPass,
    };
    let (registered, timeout) = (settings.registered, settings.timeout);
    let (json, out) = (settings.json, settings.out.clone());

    let cpu_before = own_cpu_time();
    let outcome = runtime.block_on(run::run(settings))?;
    let client_cpu = own_cpu_time().saturating_sub(cpu_before);
    let info = RunInfo {
        url,
        tenant,
        devices,
        load,
        registered,
        warmup_kind,
        warmup: outcome.warmup,
        warmup_complete: outcome.warmup_complete,
        first_pass: outcome.first_pass,
        duration: outcome.duration,
        timeout,
        client_cpu,
    };
    let report = Report::new(info, &outcome.stats);

    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = out {
        std::fs::write(&path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{text}");
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// This process's user + system CPU time from `/proc/self/stat` (zero where unavailable).
fn own_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| proc_stat_cpu_ticks(&s))
        .map(|t| Duration::from_secs_f64(t as f64 / USER_HZ))
        .unwrap_or_default()
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line; the command name in parentheses
/// may contain spaces, so fields are counted after the last ')'.
fn proc_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let line = "123 (a b) S 1 123 123 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 5 0 0";
        assert_eq!(proc_stat_cpu_ticks(line), Some(281));
        assert_eq!(proc_stat_cpu_ticks("garbage"), None);
    }
}
