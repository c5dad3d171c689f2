//! Counters and histograms collected during a run, and the report made from them (JSON and text).
//!
//! Only exchanges that start and end inside the measured window (after the warm-up, before the
//! end) count towards rates, latencies and errors; deployments are counted over the whole run.
//! The window is unknown (`None`) while a first-pass warm-up runs: nothing counts then. The
//! first full pass (every device has finished one cycle) is tracked here too.
//! Latencies are those of successful (2xx; 200/206 for downloads) responses only; every failure is
//! counted under `errors` by kind instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::hist::Histogram;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    ConfigData,
    Poll,
    DeploymentBase,
    Feedback,
    Download,
}

impl RequestKind {
    pub const ALL: [RequestKind; 5] = [
        RequestKind::ConfigData,
        RequestKind::Poll,
        RequestKind::DeploymentBase,
        RequestKind::Feedback,
        RequestKind::Download,
    ];

    /// The name used in the text table and as the JSON key (one naming for both).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::ConfigData => "config-data",
            RequestKind::Poll => "poll",
            RequestKind::DeploymentBase => "deployment-base",
            RequestKind::Feedback => "feedback",
            RequestKind::Download => "download",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The measured window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    fn contains(&self, started: Instant, ended: Instant) -> bool {
        started >= self.start && ended <= self.end
    }
}

#[derive(Debug, Default)]
struct KindStats {
    latency: Histogram,
    errors: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// The measured window; `None` while a first-pass warm-up runs.
    pub window: Option<Window>,
    /// Devices that have not finished a cycle yet.
    pass_remaining: usize,
    /// When every device had finished one cycle (the first full pass).
    pub first_pass_done: Option<Instant>,
    kinds: [KindStats; 5],
    all: Histogram,
    errors: BTreeMap<String, u64>,
    pub cycles: u64,
    pub late_cycles: u64,
    pub deployments_started: u64,
    pub deployments_completed: u64,
    pub connects: u64,
    pub reconnects: u64,
}

impl Stats {
    /// Statistics for a run over `devices` devices, the window not yet known.
    pub fn new(devices: usize) -> Self {
        Self {
            pass_remaining: devices,
            ..Self::default()
        }
    }

    fn counts(&self, started: Instant, ended: Instant) -> bool {
        self.window.is_some_and(|w| w.contains(started, ended))
    }

    /// True once the window is known and `t` is past its end.
    pub fn ended(&self, t: Instant) -> bool {
        self.window.is_some_and(|w| t >= w.end)
    }

    /// A device finished a cycle at `now`; `first`: its first one, `late`: the schedule slots it
    /// skipped. Returns true when this completes the first full pass.
    pub fn cycle_done(&mut self, now: Instant, first: bool, late: u64) -> bool {
        if self.counts(now, now) {
            self.cycles += 1;
            self.late_cycles += late;
        }
        if !first || self.pass_remaining == 0 {
            return false;
        }
        self.pass_remaining -= 1;
        if self.pass_remaining == 0 {
            self.first_pass_done = Some(now);
            return true;
        }
        false
    }

    /// A successful exchange of `kind` that started at `started` and ended now.
    pub fn success(&mut self, kind: RequestKind, started: Instant) {
        let now = Instant::now();
        if self.counts(started, now) {
            let micros = u64::try_from((now - started).as_micros()).unwrap_or(u64::MAX);
            self.kinds[kind.index()].latency.record(micros);
            self.all.record(micros);
        }
    }

    /// A failed exchange; `label` is the error kind (`timeout`, `http-503`, …).
    pub fn failure(&mut self, kind: RequestKind, started: Instant, label: &str) {
        if self.counts(started, Instant::now()) {
            self.kinds[kind.index()].errors += 1;
            match self.errors.get_mut(label) {
                Some(n) => *n += 1,
                None => {
                    self.errors.insert(label.to_owned(), 1);
                }
            }
        }
    }
}

/// Latency summary of one request kind, in milliseconds.
#[derive(Debug, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub per_s: f64,
    pub errors: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Latency {
    fn from(h: &Histogram, errors: u64, secs: f64) -> Self {
        Self {
            count: h.count(),
            per_s: round3(h.count() as f64 / secs),
            errors,
            p50: ms(h.quantile(0.50)),
            p90: ms(h.quantile(0.90)),
            p99: ms(h.quantile(0.99)),
            max: ms(h.max()),
            mean: ms(h.mean()),
        }
    }
}

/// How the load was shaped.
#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum LoadShape {
    /// Every device polls once per interval, start times spread evenly.
    Interval { poll_interval_s: f64 },
    /// `connections` workers poll back to back on keep-alive connections.
    Max { connections: usize },
    /// `connections` workers send every device's first-contact configData once.
    Register { connections: usize },
}

/// How the warm-up ended.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WarmupKind {
    /// After a fixed time.
    Fixed,
    /// When every device had finished one cycle (or at the limit: `warmup_complete` false).
    FirstPass,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub url: String,
    pub tenant: String,
    pub devices: usize,
    pub load: LoadShape,
    /// Devices registered before the run (no first-contact configData).
    pub registered: bool,
    pub warmup: WarmupKind,
    /// Seconds from the start of the run to the start of the measured window.
    pub warmup_s: f64,
    /// False when a first-pass warm-up hit its limit: the window started before every device
    /// had finished a cycle (the server did not keep up).
    pub warmup_complete: bool,
    /// Seconds from the start of the run until every device had finished one cycle (null: not
    /// within the run).
    pub first_pass_s: Option<f64>,
    pub duration_s: f64,
    pub timeout_s: f64,
    /// Successful requests per second over the measured window, all kinds together.
    pub requests_per_s: f64,
    /// Successful polls per second.
    pub polls_per_s: f64,
    /// `all` and one entry per request kind.
    pub latency_ms: BTreeMap<&'static str, Latency>,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    pub cycles: u64,
    pub late_cycles: u64,
    pub deployments_started: u64,
    pub deployments_completed: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub client_cpu_s: f64,
}

/// What a report says about the run besides the statistics.
#[derive(Debug)]
pub struct RunInfo {
    pub url: String,
    pub tenant: String,
    pub devices: usize,
    pub load: LoadShape,
    pub registered: bool,
    pub warmup_kind: WarmupKind,
    /// Actual warm-up and measured window.
    pub warmup: Duration,
    pub warmup_complete: bool,
    pub first_pass: Option<Duration>,
    pub duration: Duration,
    pub timeout: Duration,
    pub client_cpu: Duration,
}

impl Report {
    pub fn new(info: RunInfo, stats: &Stats) -> Self {
        let secs = info.duration.as_secs_f64().max(1e-9);
        let mut latency_ms = BTreeMap::new();
        let total_errors: u64 = stats.errors.values().sum();
        latency_ms.insert("all", Latency::from(&stats.all, total_errors, secs));
        for k in RequestKind::ALL {
            let ks = &stats.kinds[k.index()];
            latency_ms.insert(k.name(), Latency::from(&ks.latency, ks.errors, secs));
        }
        let polls = stats.kinds[RequestKind::Poll.index()].latency.count();
        Self {
            url: info.url,
            tenant: info.tenant,
            devices: info.devices,
            load: info.load,
            registered: info.registered,
            warmup: info.warmup_kind,
            warmup_s: round3(info.warmup.as_secs_f64()),
            warmup_complete: info.warmup_complete,
            first_pass_s: info.first_pass.map(|d| round3(d.as_secs_f64())),
            duration_s: round3(info.duration.as_secs_f64()),
            timeout_s: info.timeout.as_secs_f64(),
            requests_per_s: round3(stats.all.count() as f64 / secs),
            polls_per_s: round3(polls as f64 / secs),
            latency_ms,
            errors: stats.errors.clone(),
            error_total: total_errors,
            cycles: stats.cycles,
            late_cycles: stats.late_cycles,
            deployments_started: stats.deployments_started,
            deployments_completed: stats.deployments_completed,
            connects: stats.connects,
            reconnects: stats.reconnects,
            client_cpu_s: round3(info.client_cpu.as_secs_f64()),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let shape = match &self.load {
            LoadShape::Interval { poll_interval_s } => {
                format!("{} devices polling every {poll_interval_s} s", self.devices)
            }
            LoadShape::Max { connections } => format!(
                "max throughput: {connections} connections polling back to back over {} devices",
                self.devices
            ),
            LoadShape::Register { connections } => format!(
                "registration: {} devices, one configData each over {connections} connections",
                self.devices
            ),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(s, "fleet-load: {} {} ({shape})", self.url, self.tenant);
        let warmup = match (self.warmup, self.warmup_complete) {
            (WarmupKind::Fixed, _) => "fixed",
            (WarmupKind::FirstPass, true) => "first full pass",
            (WarmupKind::FirstPass, false) => "first full pass NOT completed, limit reached",
        };
        let _ = writeln!(
            s,
            "measured {} s after {} s warm-up ({warmup}), request timeout {} s",
            self.duration_s, self.warmup_s, self.timeout_s
        );
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "request", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
        );
        let names = RequestKind::ALL.iter().map(|k| k.name()).chain(["all"]);
        for name in names {
            let Some(l) = self.latency_ms.get(name) else {
                continue;
            };
            if l.count == 0 && l.errors == 0 && name != "poll" {
                continue;
            }
            let _ = writeln!(
                s,
                "{:<16} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>7}",
                name, l.count, l.per_s, l.p50, l.p90, l.p99, l.max, l.errors
            );
        }
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "errors: {errors}");
        let _ = writeln!(
            s,
            "deployments completed: {} of {} started; cycles {}, late {}; connections {} (reopened {}); client cpu {:.2} s",
            self.deployments_completed,
            self.deployments_started,
            self.cycles,
            self.late_cycles,
            self.connects,
            self.reconnects,
            self.client_cpu_s
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_filters_and_report_counts() {
        let now = Instant::now();
        let window = Window {
            start: now - Duration::from_secs(10),
            end: now + Duration::from_secs(10),
        };
        let mut st = Stats::new(2);
        st.success(RequestKind::Poll, now - Duration::from_millis(5)); // window unknown yet
        st.window = Some(window);
        st.success(RequestKind::Poll, now - Duration::from_millis(5));
        st.success(RequestKind::Poll, now - Duration::from_secs(11)); // warm-up
        st.success(RequestKind::Feedback, now - Duration::from_millis(1));
        st.failure(RequestKind::Poll, now, "http-503");
        st.failure(RequestKind::Poll, now, "http-503");
        st.failure(RequestKind::Poll, now, "timeout");
        let r = Report::new(
            RunInfo {
                url: "http://127.0.0.1:1".into(),
                tenant: "DEFAULT".into(),
                devices: 2,
                load: LoadShape::Max { connections: 1 },
                registered: true,
                warmup_kind: WarmupKind::FirstPass,
                warmup: Duration::from_secs(10),
                warmup_complete: true,
                first_pass: Some(Duration::from_secs(10)),
                duration: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                client_cpu: Duration::ZERO,
            },
            &st,
        );
        assert_eq!(r.polls_per_s, 0.5);
        assert_eq!(r.requests_per_s, 1.0);
        assert_eq!(r.error_total, 3);
        assert_eq!(r.errors.get("http-503"), Some(&2));
        let poll = &r.latency_ms["poll"];
        assert_eq!((poll.count, poll.errors), (1, 3));
        assert!(poll.p99 >= 5.0 && poll.p99 < 6.0, "{}", poll.p99);
        let text = r.to_text();
        assert!(text.contains("http-503: 2, timeout: 1"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["load"]["type"], "max");
        assert_eq!(json["warmup"], "first-pass");
        assert_eq!(json["first_pass_s"], 10.0);
        assert_eq!(json["latency_ms"]["all"]["count"], 2);
    }

    #[test]
    fn first_pass_completes_once() {
        let now = Instant::now();
        let mut st = Stats::new(2);
        assert!(!st.cycle_done(now, true, 0));
        assert!(!st.cycle_done(now, false, 0)); // the same device again
        assert!(st.cycle_done(now, true, 0));
        assert_eq!(st.first_pass_done, Some(now));
        assert!(!st.cycle_done(now, true, 0));
        assert_eq!(st.cycles, 0); // no window yet
        st.window = Some(Window {
            start: now,
            end: now + Duration::from_secs(1),
        });
        st.cycle_done(now, false, 2);
        assert_eq!((st.cycles, st.late_cycles), (1, 2));
        assert!(st.ended(now + Duration::from_secs(1)));
        assert!(!st.ended(now));
    }
}
