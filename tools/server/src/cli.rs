//! Command-line arguments. `rustupdate-server [serve options]` runs the server; `backup` copies
//! its data directory; the other subcommands are clients of its management API.

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rustupdate-server",
    version,
    about = "Fleet server for rustupdate: hawkBit DDI v1 device API, phased rollouts, dashboard",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Upload and list artifacts.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Register, list, show and tag devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Create and steer rollouts.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// The trust document devices fetch (release keys and revocations; docs/trust.md).
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Operator accounts of the dashboard and the API, on the server host (its database).
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens of operator accounts, scoped to a role, on the server host (its database).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy a SQLite server's data directory (database, tokens, keys, artifacts) into a new
    /// directory, online and consistent; a server started on it is the fleet as it was.
    Backup(BackupArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The server's settings (--data-dir, --config, --database-url), as it runs with them.
    #[command(flatten)]
    pub server: ServeArgs,
    /// New (or empty) directory to write the copy into.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account; its password is read from standard input (the first line).
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        server: ServeArgs,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        server: ServeArgs,
    },
    /// Change an account's role.
    SetRole {
        name: String,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        server: ServeArgs,
    },
    /// Change an account's password (read from standard input); ends its dashboard sessions.
    SetPassword {
        name: String,
        #[command(flatten)]
        server: ServeArgs,
    },
    /// Remove an account with its sessions and API tokens.
    Remove {
        name: String,
        #[command(flatten)]
        server: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token of an account and print it (once: only its hash is stored). It acts
    /// with the lower of --role and the account's role.
    Create {
        /// The account it acts for.
        #[arg(long)]
        user: String,
        /// What it is for, e.g. "prometheus" or "ci".
        #[arg(long)]
        label: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// Days until it expires [default: never].
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        server: ServeArgs,
    },
    /// List tokens (never their values).
    List {
        #[command(flatten)]
        server: ServeArgs,
    },
    /// Revoke a token by its id (see `token list`).
    Revoke {
        id: i64,
        #[command(flatten)]
        server: ServeArgs,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Directory for the SQLite database, artifacts, tokens and trusted keys (`keys/*.pem`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// postgres://user@host/db for several server processes over one database [default: SQLite in the data dir].
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// hawkBit tenant in device URLs [default: DEFAULT].
    #[arg(long)]
    pub tenant: Option<String>,
    /// Seconds between device polls, sent as config.polling.sleep [default: 300].
    #[arg(long, value_name = "SECS")]
    pub poll_interval: Option<u64>,
    /// Base URL devices reach the server at: every link is built from it [default: the request's
    /// Host if it is an --allowed-host or the listen address, else the listen address].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Host (or host:port) whose requests get links to that Host when --public-url is unset
    /// (repeatable).
    #[arg(long, value_name = "HOST")]
    pub allowed_host: Vec<String>,
    /// TLS certificate chain (PEM); with --tls-key the server speaks HTTPS only.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Public key an uploaded .rua may be signed by (repeatable; DATA_DIR/keys/*.pem are trusted too).
    #[arg(long, value_name = "FILE")]
    pub trusted_key: Vec<PathBuf>,
    /// Largest artifact upload in bytes [default: 8 GiB].
    #[arg(long, value_name = "BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Delta patches this process builds at once; 0 builds none [default: 1].
    #[arg(long, value_name = "N")]
    pub delta_jobs: Option<u32>,
    /// Largest base image a patch job holds in memory, in bytes [default: 2 GiB].
    #[arg(long, value_name = "BYTES")]
    pub delta_max_image_bytes: Option<u64>,
    /// Seconds a client may take to send the request headers, and a keep-alive connection may
    /// stay idle [default: 15].
    #[arg(long, value_name = "SECS")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a request may take from its headers to its answer, body included; for uploads,
    /// the longest pause between two received chunks [default: 30].
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// Log lines as text or JSON [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Where the management API is, and the admin token.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "RUSTUPDATE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// File holding the admin token (DATA_DIR/admin.token on the server).
    #[arg(
        long,
        global = true,
        env = "RUSTUPDATE_ADMIN_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub admin_token_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Make FILE (signed by the root keys) the trust document devices fetch: it must be signed
    /// by a threshold of its own root keys and accepted by the current one (a higher version,
    /// signed by the current root keys). Admin only.
    Set {
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// What the current trust document holds (with --json, the API's summary).
    Show {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Upload an artifact: a .rua is verified against the server's trusted keys and described by
    /// its signed manifest. With --delta, a patch (.rudelta) of that artifact made by a release
    /// pipeline: checked to rebuild it from a release the server holds, then offered to devices.
    Upload {
        file: PathBuf,
        /// The file is a delta patch of the artifact with this id.
        #[arg(long, value_name = "ARTIFACT_ID", conflicts_with = "foreign")]
        delta: Option<i64>,
        /// Another updater's format (e.g. a SWUpdate .swu), which the server cannot verify:
        /// describe it with --name, --version and --device-type.
        #[arg(long)]
        foreign: bool,
        #[arg(long, requires = "foreign")]
        name: Option<String>,
        #[arg(long, requires = "foreign")]
        version: Option<String>,
        #[arg(long = "device-type", requires = "foreign")]
        device_types: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List artifacts.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The delta patches of an artifact (made by the server or uploaded), with their state.
    Deltas {
        artifact_id: i64,
        /// Queue a patch from this artifact (a release devices will run).
        #[arg(long, value_name = "ARTIFACT_ID")]
        from: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device and print its target token (once: only its hash is stored).
    Add {
        controller_id: String,
        #[arg(long)]
        device_type: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List devices.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a device: attributes, tags, actions with every feedback.
    Show {
        controller_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add or remove tags.
    Tag {
        controller_id: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Create a rollout of an artifact to the devices of a type (and tags, attributes).
    Create {
        #[arg(long)]
        name: String,
        /// Artifact id (see `artifact list`).
        #[arg(long)]
        artifact: i64,
        #[arg(long)]
        device_type: String,
        /// Only devices with this tag (repeatable: all of them).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Only devices with this attribute value, KEY=VALUE (repeatable).
        #[arg(long = "attribute", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
        /// Cumulative percentages of the targeted devices per phase.
        #[arg(long, default_value = "1,10,50,100")]
        phases: String,
        /// Percent of a phase's devices that must succeed before the next phase starts.
        #[arg(long, default_value_t = 100)]
        success_threshold: u8,
        /// Failures in a phase that pause the rollout: a count ("2") or a percentage ("10%").
        #[arg(long, default_value = "1")]
        error_threshold: String,
        /// Point devices at this URL (a CDN, a static server) instead of the server's own copy.
        #[arg(long)]
        download_url: Option<String>,
        /// Start it at once.
        #[arg(long)]
        start: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List rollouts.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A rollout's phases, counts and events.
    Status {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    Start {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    Pause {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    Resume {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel: no new actions; open ones are asked to cancel.
    Cancel {
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// `time level [span:] target: event=… key=value …`
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's): timestamp, level, the event's fields
    /// (`event`, …), target and the request span if any.
    Json,
}
