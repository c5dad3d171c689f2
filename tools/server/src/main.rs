//! `rustupdate-server`: the fleet server (default) and the operator CLI for its management API.

mod accounts;
mod admin_api;
mod api;
mod app;
mod app_state;
mod artifact_files;
mod audit;
mod backup;
mod charts;
mod cli;
mod config;
mod contacts;
mod dashboard;
mod ddi_api;
mod deltas;
mod error;
mod guard;
mod host_names;
mod intake;
mod links;
mod logging;
mod login_limit;
mod metrics;
mod metrics_api;
mod operations;
mod operator_cli;
mod passwords;
mod patch_uploads;
mod request_span;
mod roles;
mod store;
mod target;
mod tokens;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Artifact(c)) => operator_cli::artifact(c),
        Some(Command::Device(c)) => operator_cli::device(c),
        Some(Command::Rollout(c)) => operator_cli::rollout(c),
        Some(Command::Trust(c)) => operator_cli::trust(c),
        Some(Command::User(c)) => accounts::user(c),
        Some(Command::Token(c)) => accounts::token(c),
        Some(Command::Backup(args)) => backup(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rustupdate-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &cli::ServeArgs) -> anyhow::Result<()> {
    let settings = config::Settings::from_args(args)?;
    logging::init(settings.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(app::serve(settings))
}

fn backup(args: &cli::BackupArgs) -> anyhow::Result<()> {
    let settings = config::Settings::from_args(&args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let copied = runtime.block_on(backup::backup(&settings, &args.to))?;
    println!(
        "backup in {}: database {} bytes, {} files ({} bytes)",
        args.to.display(),
        copied.database_bytes,
        copied.files,
        copied.file_bytes
    );
    Ok(())
}
