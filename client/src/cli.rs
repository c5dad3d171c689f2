//! Command-line arguments (clap derive).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "rustupdate",
    version,
    about = "Atomic A/B updates for embedded Linux"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(short, long, global = true, default_value = crate::config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install an artifact (file, http(s) URL, or - for stdin) into the inactive slot and arm a trial boot.
    Install(InstallArgs),
    /// After a trial boot: run the health checks, then commit or roll back (reboots). Otherwise
    /// record what happened since the last run. Run at every boot.
    Commit,
    /// Roll back a trial (reboots), or cancel an installed update before its reboot.
    Rollback,
    /// Show slots, versions, trial state and the last result.
    Status(StatusArgs),
    /// Rollback guard: roll back a trial still undecided after health.trial-timeout-secs of uptime.
    Guard,
    /// Show an artifact's manifest and whether its signatures satisfy this device's keys.
    ShowArtifact(ShowArgs),
    /// Poll the fleet server ([server] in the config) forever: install what it offers, reboot per
    /// policy, report each result once it is final.
    Daemon,
    /// One poll cycle of the daemon, then exit (for scripts and tests).
    CheckUpdate,
    /// Write the block index of the booted slot (a sha256 prefix per 4 KiB block), from which
    /// `rustupdate-artifact delta --base-index` makes a patch for this device.
    Index(IndexArgs),
    /// The trust document (docs/trust.md): show the one in force, or accept a newer one.
    #[command(subcommand)]
    Trust(TrustCommand),
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Show the trust document in force: its version, the release keys and their threshold, the
    /// root keys and the revoked keys.
    Show(StatusArgs),
    /// Accept a newer trust document (a path, an http(s):// URL, or - for stdin), signed by the
    /// current root keys; refused (exit 4) when older, under-signed or altered.
    Update {
        /// The document.
        document: String,
    },
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Artifact: a path, an http(s):// URL, or - for stdin.
    pub artifact: String,
    /// Delta patch (a path or an http(s):// URL, made by `rustupdate-artifact delta`) that
    /// rebuilds the artifact from the active slot; only the artifact's head is fetched then.
    /// Falls back to the full artifact when the patch cannot be used.
    #[arg(long)]
    pub delta: Option<String>,
    /// Reboot into the new slot when the install succeeded.
    #[arg(long)]
    pub reboot: bool,
    /// DANGEROUS: accept an artifact without any trusted signature.
    #[arg(long)]
    pub danger_allow_unsigned: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Artifact: a path, an http(s):// URL, or - for stdin.
    pub artifact: String,
}
