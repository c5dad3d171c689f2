//! One module per subcommand. Every command that can write the slots, the bootloader environment
//! the state or the trust document takes the client lock first (`sys::lock`); `status`,
//! `show-artifact`, `trust show` and `index`
//! (which reads the booted slot and writes only its output file) do not.

mod commit;
mod daemon;
mod index;
mod install;
mod show_artifact;
mod status;
mod trust;

use crate::cli::{Cli, Command, TrustCommand};
use crate::config::Config;
use crate::exit;
use crate::sys::lock::take_lock;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<u8> {
    let config = || Config::load(&cli.config).map_err(|err| err.context(exit::Usage));
    match &cli.command {
        Command::Install(args) => {
            let config = config()?;
            let _lock = take_lock(&config, "install")?;
            install::run(&config, args)
        }
        Command::Commit => {
            let config = config()?;
            let _lock = take_lock(&config, "commit")?;
            commit::commit(&config)
        }
        Command::Rollback => {
            let config = config()?;
            let _lock = take_lock(&config, "rollback")?;
            commit::rollback(&config)
        }
        Command::Guard => {
            let config = config()?;
            let _lock = take_lock(&config, "guard")?;
            commit::guard(&config)
        }
        Command::Status(args) => status::run(&config()?, args),
        Command::ShowArtifact(args) => show_artifact::run(&config()?, args),
        // The daemon takes the lock per cycle, and lets go of it between polls.
        Command::Daemon => daemon::daemon(&config()?),
        Command::CheckUpdate => daemon::check_update(&config()?),
        Command::Index(args) => index::run(&config()?, args),
        Command::Trust(TrustCommand::Show(args)) => trust::show(&config()?, args),
        Command::Trust(TrustCommand::Update { document }) => {
            let config = config()?;
            let _lock = take_lock(&config, "trust update")?;
            trust::update(&config, document)
        }
    }
}
