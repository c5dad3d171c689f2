//! Raw command-line arguments (`Args`) and the validated settings a run uses (`Settings`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Parser;

use crate::http::BaseUrl;

/// Longest run accepted, warm-up included: the generator must stop by itself.
pub const MAX_RUN_SECS: f64 = 3600.0;
/// Most simulated devices in one run.
pub const MAX_DEVICES: usize = 1_000_000;
/// Most concurrent connections in `--max` and `--register` mode.
pub const MAX_CONNECTIONS: usize = 4096;
/// Longest first-pass warm-up before the measured window starts anyway (and the report says the
/// warm-up did not complete).
pub const DEFAULT_WARMUP_LIMIT_SECS: f64 = 300.0;

/// Simulates hawkBit DDI devices against a server on this machine (loopback addresses only).
///
/// Each device: first contact `PUT …/configData` (not with --registered), then polls
/// `GET {url}/{tenant}/controller/v1/{id}`; when the answer links a deploymentBase it fetches it,
/// posts a `proceeding` and a `closed`/`success` feedback (and with --download fetches 1 KiB of
/// the first artifact). `--register C` only registers the devices (one configData each) and ends.
///
/// Exit codes: 0 run finished (errors are in the report), 1 bad arguments or setup failure.
#[derive(Debug, Parser)]
#[command(name = "fleet-load", version)]
pub struct Args {
    /// Server base URL (http only, loopback only), e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub url: String,
    /// hawkBit tenant in the DDI path.
    #[arg(long, default_value = "DEFAULT")]
    pub tenant: String,
    /// Number of simulated devices (with target-tokens: at most the number of lines; default all).
    #[arg(long)]
    pub devices: Option<usize>,
    /// Interval mode: each device polls once per SECS, start times spread evenly over the first
    /// interval.
    #[arg(long, value_name = "SECS", conflicts_with_all = ["max", "register"])]
    pub poll_interval: Option<f64>,
    /// Max mode: C keep-alive connections, each cycling through its share of the devices back
    /// to back, to find the sustained maximum throughput.
    #[arg(long, value_name = "C", conflicts_with = "register")]
    pub max: Option<usize>,
    /// Register mode: every device sends its first-contact configData once, over C keep-alive
    /// connections, and the run ends; the whole run is measured (--duration is its time limit).
    #[arg(long, value_name = "C")]
    pub register: Option<usize>,
    /// The devices are registered already (a --register run or an earlier phase): no
    /// first-contact configData, every cycle starts with the poll.
    #[arg(long)]
    pub registered: bool,
    /// Measured time in seconds (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Warm-up, not measured: `pass` ends it when every device has finished its first cycle (the
    /// first full pass; in interval mode about one interval), SECS is a fixed time.
    #[arg(long, default_value = "pass", value_name = "pass|SECS")]
    pub warmup: String,
    /// Longest first-pass warm-up in seconds: the window then starts anyway and the report has
    /// `warmup_complete: false`.
    #[arg(long, default_value_t = DEFAULT_WARMUP_LIMIT_SECS)]
    pub warmup_limit: f64,
    /// Write `start` to FILE when the measured window starts and append `end` when it ends (for a
    /// script that samples the server over exactly that window).
    #[arg(long, value_name = "FILE")]
    pub mark: Option<PathBuf>,
    /// Timeout of each request in seconds (connect, send and the whole answer).
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Device authentication: `gateway:TOKEN`, `target-tokens:FILE` (one "controllerId token"
    /// per line) or `none`.
    #[arg(long, default_value = "none")]
    pub auth: String,
    /// Controller id prefix; device i is PREFIX followed by i, zero-padded to 6 digits.
    #[arg(long, default_value = "bench-")]
    pub id_prefix: String,
    /// Fetch the first artifact of a deployment with `Range: bytes=0-1023`.
    #[arg(long)]
    pub download: bool,
    /// Client runtime threads (1: a single-threaded runtime, the lightest on a shared machine).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the report as JSON instead of the text table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    /// Complete `Authorization: …` header line, if any.
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Interval { every: Duration },
    Max { connections: usize },
    Register { connections: usize },
}

/// When the measured window starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    /// A fixed time after the start of the run.
    Fixed(Duration),
    /// When every device has finished one cycle, or after `limit` at the latest.
    FirstPass { limit: Duration },
}

impl Warmup {
    fn parse(s: &str, limit: f64) -> anyhow::Result<Self> {
        if s == "pass" {
            return Ok(Warmup::FirstPass {
                limit: secs("warmup-limit", limit)?,
            });
        }
        let v: f64 = s
            .parse()
            .with_context(|| format!("--warmup must be `pass` or seconds, not {s:?}"))?;
        Ok(Warmup::Fixed(secs("warmup", v)?))
    }

    /// The longest the warm-up can last.
    pub fn max(self) -> Duration {
        match self {
            Warmup::Fixed(d) | Warmup::FirstPass { limit: d } => d,
        }
    }
}

#[derive(Debug)]
pub struct Settings {
    pub url: String,
    pub base: BaseUrl,
    pub addr: SocketAddr,
    pub tenant: String,
    pub devices: Vec<Device>,
    pub mode: Mode,
    pub registered: bool,
    pub warmup: Warmup,
    pub duration: Duration,
    pub mark: Option<PathBuf>,
    pub timeout: Duration,
    pub download: bool,
    pub threads: usize,
    pub json: bool,
    pub out: Option<PathBuf>,
}

/// Device authentication as given on the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Gateway(String),
    TargetTokens(PathBuf),
}

impl Auth {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        if s == "none" {
            return Ok(Auth::None);
        }
        if let Some(t) = s.strip_prefix("gateway:") {
            ensure!(!t.is_empty(), "--auth gateway: needs a token");
            return Ok(Auth::Gateway(t.to_owned()));
        }
        if let Some(f) = s.strip_prefix("target-tokens:") {
            return Ok(Auth::TargetTokens(PathBuf::from(f)));
        }
        bail!("--auth must be none, gateway:TOKEN or target-tokens:FILE, not {s:?}")
    }
}

/// Parses a target-token file: one `controllerId token` per line; blank lines and `#` comments
/// are skipped.
pub fn parse_target_tokens(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(token), None) => out.push((id.to_owned(), token.to_owned())),
            _ => bail!("line {}: expected \"controllerId token\"", n + 1),
        }
    }
    Ok(out)
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    ensure!(
        v.is_finite() && (0.0..=MAX_RUN_SECS).contains(&v),
        "--{name} must be between 0 and {MAX_RUN_SECS} seconds"
    );
    Ok(Duration::from_secs_f64(v))
}

impl Settings {
    /// Validates `args`, resolves the server address (loopback only) and reads the token file,
    /// if any.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        let base = BaseUrl::parse(&args.url)?;
        let addr = resolve_loopback(&base)?;
        ensure!(
            !args.tenant.is_empty() && !args.tenant.contains(['/', '?', ' ']),
            "--tenant must be a single path segment"
        );
        ensure!(
            !args.id_prefix.contains(['/', '?', ' ']),
            "--id-prefix must not contain '/', '?' or spaces"
        );
        let mode = match (args.poll_interval, args.max, args.register) {
            (Some(p), None, None) => {
                let every = secs("poll-interval", p)?;
                ensure!(
                    every >= Duration::from_millis(10),
                    "--poll-interval must be at least 0.01 s"
                );
                Mode::Interval { every }
            }
            (None, Some(c), None) => {
                ensure!(
                    (1..=MAX_CONNECTIONS).contains(&c),
                    "--max must be between 1 and {MAX_CONNECTIONS}"
                );
                Mode::Max { connections: c }
            }
            (None, None, Some(c)) => {
                ensure!(
                    (1..=MAX_CONNECTIONS).contains(&c),
                    "--register must be between 1 and {MAX_CONNECTIONS}"
                );
                ensure!(
                    !args.registered,
                    "--register and --registered exclude each other"
                );
                Mode::Register { connections: c }
            }
            _ => bail!("give exactly one of --poll-interval SECS, --max C and --register C"),
        };
        let duration = secs("duration", args.duration)?;
        ensure!(duration > Duration::ZERO, "--duration must be positive");
        let warmup = match mode {
            // The whole registration is measured.
            Mode::Register { .. } => Warmup::Fixed(Duration::ZERO),
            _ => Warmup::parse(&args.warmup, args.warmup_limit)?,
        };
        ensure!(
            (warmup.max() + duration).as_secs_f64() <= MAX_RUN_SECS,
            "warm-up (or its limit) plus duration must not exceed {MAX_RUN_SECS} s"
        );
        let timeout = secs("timeout", args.timeout)?;
        ensure!(
            timeout >= Duration::from_millis(1),
            "--timeout must be positive"
        );
        ensure!(
            (1..=64).contains(&args.threads),
            "--threads must be between 1 and 64"
        );

        let devices = match Auth::parse(&args.auth)? {
            Auth::TargetTokens(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading target tokens {}", path.display()))?;
                let pairs = parse_target_tokens(&text)
                    .with_context(|| format!("parsing target tokens {}", path.display()))?;
                let n = args.devices.unwrap_or(pairs.len());
                ensure!(
                    n <= pairs.len(),
                    "--devices {n} but {} lists only {} devices",
                    path.display(),
                    pairs.len()
                );
                pairs
                    .into_iter()
                    .take(n)
                    .map(|(id, token)| Device {
                        id,
                        auth: Some(format!("Authorization: TargetToken {token}")),
                    })
                    .collect()
            }
            auth => {
                let n = args
                    .devices
                    .context("--devices is required unless --auth target-tokens:FILE")?;
                let header = match auth {
                    Auth::Gateway(t) => Some(format!("Authorization: GatewayToken {t}")),
                    _ => None,
                };
                (0..n)
                    .map(|i| Device {
                        id: format!("{}{i:06}", args.id_prefix),
                        auth: header.clone(),
                    })
                    .collect::<Vec<_>>()
            }
        };
        ensure!(
            (1..=MAX_DEVICES).contains(&devices.len()),
            "the number of devices must be between 1 and {MAX_DEVICES}"
        );
        if let Mode::Max { connections } | Mode::Register { connections } = mode {
            ensure!(
                devices.len() >= connections,
                "--max/--register {connections} needs at least as many devices ({} given)",
                devices.len()
            );
        }
        Ok(Self {
            url: args.url,
            base,
            addr,
            tenant: args.tenant,
            devices,
            mode,
            registered: args.registered,
            warmup,
            duration,
            mark: args.mark,
            timeout,
            download: args.download,
            threads: args.threads,
            json: args.json,
            out: args.out,
        })
    }
}

/// Resolves the server address and refuses anything but loopback: this tool generates load and
/// must never be pointed at another machine.
pub fn resolve_loopback(base: &BaseUrl) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (base.host.as_str(), base.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", base.host))?
        .collect();
    let addr = addrs
        .first()
        .copied()
        .with_context(|| format!("{} resolves to no address", base.host))?;
    ensure!(
        addrs.iter().all(|a| a.ip().is_loopback()),
        "{} is not a loopback address; fleet-load only targets servers on this machine",
        base.host
    );
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["fleet-load", "--url", "http://127.0.0.1:9"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    }

    #[test]
    fn interval_defaults() {
        let s = Settings::from_args(args(&["--devices", "3", "--poll-interval", "60"])).unwrap();
        assert_eq!(s.devices.len(), 3);
        assert_eq!(s.devices[2].id, "bench-000002");
        assert!(s.devices[0].auth.is_none());
        assert_eq!(
            s.warmup,
            Warmup::FirstPass {
                limit: Duration::from_secs(300)
            }
        );
        assert!(!s.registered);
        assert!(matches!(s.mode, Mode::Interval { every } if every == Duration::from_secs(60)));
    }

    #[test]
    fn warmup_and_register() {
        let s = Settings::from_args(args(&[
            "--devices",
            "3",
            "--max",
            "2",
            "--warmup",
            "2.5",
            "--registered",
        ]))
        .unwrap();
        assert_eq!(s.warmup, Warmup::Fixed(Duration::from_millis(2500)));
        assert!(s.registered);
        assert!(
            Settings::from_args(args(&["--devices", "3", "--max", "2", "--warmup", "soon"]))
                .is_err()
        );
        let s = Settings::from_args(args(&["--devices", "3", "--register", "2"])).unwrap();
        assert!(matches!(s.mode, Mode::Register { connections: 2 }));
        assert_eq!(s.warmup, Warmup::Fixed(Duration::ZERO));
        assert!(
            Settings::from_args(args(&["--devices", "3", "--register", "2", "--registered"]))
                .is_err()
        );
        assert!(
            Args::try_parse_from([
                "fleet-load",
                "--url",
                "http://127.0.0.1:9",
                "--devices",
                "3",
                "--register",
                "2",
                "--max",
                "2"
            ])
            .is_err()
        );
    }

    #[test]
    fn max_mode_and_gateway() {
        let s = Settings::from_args(args(&[
            "--devices",
            "8",
            "--max",
            "4",
            "--auth",
            "gateway:abc",
        ]))
        .unwrap();
        assert!(matches!(s.warmup, Warmup::FirstPass { .. }));
        assert_eq!(
            s.devices[0].auth.as_deref(),
            Some("Authorization: GatewayToken abc")
        );
        assert!(Settings::from_args(args(&["--devices", "2", "--max", "4"])).is_err());
        assert!(Settings::from_args(args(&["--devices", "2"])).is_err());
        assert!(
            Settings::from_args(args(&[
                "--devices",
                "2",
                "--max",
                "1",
                "--duration",
                "7200"
            ]))
            .is_err()
        );
    }

    #[test]
    fn auth_and_tokens() {
        assert_eq!(Auth::parse("none").unwrap(), Auth::None);
        assert!(Auth::parse("gateway:").is_err());
        assert!(Auth::parse("bearer:x").is_err());
        let t = parse_target_tokens("# c\n\ndev-1 tok1\n  dev-2   tok2  \n").unwrap();
        assert_eq!(
            t,
            vec![
                ("dev-1".into(), "tok1".into()),
                ("dev-2".into(), "tok2".into())
            ]
        );
        assert!(parse_target_tokens("dev-1\n").is_err());
        assert!(parse_target_tokens("a b c\n").is_err());
    }

    #[test]
    fn refuses_non_loopback() {
        let lo = BaseUrl::parse("http://127.0.0.1:9").unwrap();
        assert!(resolve_loopback(&lo).unwrap().ip().is_loopback());
        let other = BaseUrl::parse("http://192.0.2.1:9").unwrap();
        assert!(resolve_loopback(&other).is_err());
    }
}
