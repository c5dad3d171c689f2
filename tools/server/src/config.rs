//! Server settings: a TOML file (`--config`, kebab-case keys, unknown keys rejected) and flags,
//! flags winning. Every key is documented in `docs/server.md`.

use crate::cli::{LogFormat, ServeArgs};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_TENANT: &str = "DEFAULT";
/// hawkBit's default is 5 minutes; devices on metered links want no less.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 300;
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 8 << 30;
/// Patch jobs at once: each holds its base image in memory, and one keeps a core busy.
pub const DEFAULT_DELTA_JOBS: u32 = 1;
pub const MAX_DELTA_JOBS: u32 = 16;
pub const DEFAULT_DELTA_MAX_IMAGE_BYTES: u64 = 2 << 30;
/// How long a client may take to send a request's line and headers, and how long a keep-alive
/// connection may stay idle. A device's whole request is a few hundred bytes.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 15;
/// How long a request may take from its headers to its answer (body included), and how long an
/// artifact upload may go without receiving a byte.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Longest timeout accepted for either of the two above.
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// The file form: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub database: Option<String>,
    pub tenant: Option<String>,
    pub poll_interval: Option<u64>,
    pub public_url: Option<String>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    pub max_upload_bytes: Option<u64>,
    pub delta_jobs: Option<u32>,
    pub delta_max_image_bytes: Option<u64>,
    pub header_read_timeout: Option<u64>,
    pub request_timeout: Option<u64>,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub tenant: String,
    pub poll_interval_secs: u64,
    pub public_url: Option<String>,
    /// `Host` values links may be built from when `public_url` is unset (see `links::base_url`).
    pub allowed_hosts: Vec<String>,
    pub tls: Option<Tls>,
    /// Explicit key files; `DATA_DIR/keys/*.pem` are trusted as well.
    pub trusted_keys: Vec<PathBuf>,
    pub max_upload_bytes: u64,
    /// Delta patch jobs this process runs at once (0: none; `deltas.rs`).
    pub delta_jobs: u32,
    /// Largest base image a patch job reads into memory.
    pub delta_max_image_bytes: u64,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub log_format: LogFormat,
}

impl Settings {
    /// The keys an uploaded `.rua` must be signed by: `--trusted-key` files and
    /// `DATA_DIR/keys/*.pem`, read at every upload so that adding a key needs no restart.
    pub fn keyring(&self) -> Result<rustupdate_verify::Keyring> {
        let dir = self.keys_dir();
        let dir = dir.is_dir().then_some(dir.as_path());
        Ok(rustupdate_verify::key_files::keyring(
            &self.trusted_keys,
            dir,
        )?)
    }

    pub fn from_args(args: &ServeArgs) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("config {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("rustupdate-fleet"));
        let listen = match args.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let database_url = args
            .database
            .clone()
            .or(file.database)
            .unwrap_or_else(|| sqlite_url(&data_dir.join("fleet.db")));
        let tenant = args
            .tenant
            .clone()
            .or(file.tenant)
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        rustupdate_ddi::Tenant::new(&tenant)?;
        if tenant == "." || tenant == ".." {
            bail!("tenant {tenant:?} is a path special and cannot be a URL segment");
        }
        let poll_interval_secs = args
            .poll_interval
            .or(file.poll_interval)
            .unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
        if poll_interval_secs == 0
            || poll_interval_secs > u64::from(rustupdate_ddi::sleep::MAX_POLL_SLEEP_SECS)
        {
            bail!(
                "poll-interval must be 1 to {} seconds ({}, hawkBit's longest)",
                rustupdate_ddi::sleep::MAX_POLL_SLEEP_SECS,
                rustupdate_ddi::PollSleep::from_secs(u64::MAX)
            );
        }
        let public_url = args.public_url.clone().or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public-url {url:?} must start with http:// or https://");
        }
        let mut allowed_hosts = file.allowed_hosts;
        allowed_hosts.extend(args.allowed_host.iter().cloned());
        if let Some(bad) = allowed_hosts
            .iter()
            .find(|h| !crate::host_names::valid_host(h))
        {
            bail!("allowed-hosts entry {bad:?} is not a host or host:port");
        }
        let timeout = |name: &str, value: Option<u64>, default: u64| -> Result<Duration> {
            let secs = value.unwrap_or(default);
            if secs == 0 || secs > MAX_TIMEOUT_SECS {
                bail!("{name} must be 1 to {MAX_TIMEOUT_SECS} seconds");
            }
            Ok(Duration::from_secs(secs))
        };
        let header_read_timeout = timeout(
            "header-read-timeout",
            args.header_read_timeout.or(file.header_read_timeout),
            DEFAULT_HEADER_READ_TIMEOUT_SECS,
        )?;
        let request_timeout = timeout(
            "request-timeout",
            args.request_timeout.or(file.request_timeout),
            DEFAULT_REQUEST_TIMEOUT_SECS,
        )?;
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(Tls { cert, key }),
            (None, None) => None,
            _ => bail!("tls-cert and tls-key go together"),
        };
        let mut trusted_keys = file.trusted_keys;
        trusted_keys.extend(args.trusted_key.iter().cloned());
        let delta_jobs = args
            .delta_jobs
            .or(file.delta_jobs)
            .unwrap_or(DEFAULT_DELTA_JOBS);
        if delta_jobs > MAX_DELTA_JOBS {
            bail!("delta-jobs must be 0 to {MAX_DELTA_JOBS}");
        }
        Ok(Settings {
            data_dir,
            listen,
            database_url,
            tenant,
            poll_interval_secs,
            public_url,
            allowed_hosts,
            tls,
            trusted_keys,
            max_upload_bytes: args
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(DEFAULT_MAX_UPLOAD_BYTES),
            delta_jobs,
            delta_max_image_bytes: args
                .delta_max_image_bytes
                .or(file.delta_max_image_bytes)
                .unwrap_or(DEFAULT_DELTA_MAX_IMAGE_BYTES),
            header_read_timeout,
            request_timeout,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// Defaults, for unit tests of what reads settings.
    #[cfg(test)]
    pub fn for_tests() -> Settings {
        #[allow(clippy::unwrap_used)]
        Settings::from_args(&ServeArgs::default()).unwrap()
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    pub fn gateway_token_path(&self) -> PathBuf {
        self.data_dir.join("gateway.token")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }

    pub fn upload_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys() {
        let err = toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\npol-interval = 3\n")
            .unwrap_err();
        assert!(err.to_string().contains("pol-interval"), "{err}");
    }

    #[test]
    fn reads_every_key() {
        let text = r#"
data-dir = "/var/lib/rustupdate-server"
listen = "0.0.0.0:8443"
database = "postgres://fleet@db/fleet"
tenant = "ACME"
poll-interval = 60
public-url = "https://updates.example.com"
allowed-hosts = ["fleet.lan:8080"]
header-read-timeout = 10
request-timeout = 20
tls-cert = "/etc/ssl/fleet.crt"
tls-key = "/etc/ssl/fleet.key"
trusted-keys = ["/etc/rustupdate/release.pub.pem"]
max-upload-bytes = 1000000
log-format = "json"
"#;
        let c: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(c.poll_interval, Some(60));
        assert_eq!(c.log_format, Some(LogFormat::Json));
        assert_eq!(c.allowed_hosts, ["fleet.lan:8080"]);
        assert_eq!(c.request_timeout, Some(20));
    }

    #[test]
    fn poll_interval_stays_under_a_day() {
        let args = |secs| ServeArgs {
            poll_interval: Some(secs),
            ..ServeArgs::default()
        };
        assert!(Settings::from_args(&args(86_399)).is_ok());
        let err = Settings::from_args(&args(86_400)).unwrap_err();
        assert!(err.to_string().contains("23:59:59"), "{err}");
    }

    #[test]
    fn refuses_hosts_that_are_not_hosts() {
        let args = ServeArgs {
            allowed_host: vec!["evil.example/path".into()],
            ..ServeArgs::default()
        };
        assert!(Settings::from_args(&args).is_err());
    }
}
