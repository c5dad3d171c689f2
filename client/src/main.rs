//! `rustupdate`, the device client. This file parses arguments, sets up logging and maps results
//! to the documented exit codes; each subcommand lives in `commands/`.

mod cli;
mod commands;
mod config;
mod ddi_transport;
mod delta_install;
mod delta_source;
mod device;
mod exit;
mod source;
mod sys;
mod trust_store;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any allocation of note and before any thread: a large buffer, once dropped, must not
    // stay in the heap (the whole client's peak RSS has a budget).
    sys::memory::return_large_blocks_to_the_kernel();
    let cli = cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .init();
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::from(exit::code_for(&err))
        }
    }
}
