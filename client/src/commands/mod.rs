//! One module per subcommand.

mod commit;
mod daemon;
mod index;
mod install;
mod show_artifact;
mod status;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<u8> {
    let config = || Config::load(&cli.config).map_err(|err| err.context(exit::Usage));
    match &cli.command {
        Command::Install(args) => install::run(&config()?, args),
        Command::Commit => commit::commit(&config()?),
        Command::Rollback => commit::rollback(&config()?),
        Command::Guard => commit::guard(&config()?),
        Command::Status(args) => status::run(&config()?, args),
        Command::ShowArtifact(args) => show_artifact::run(&config()?, args),
        Command::Daemon => daemon::daemon(&config()?),
        Command::CheckUpdate => daemon::check_update(&config()?),
        Command::Index(args) => index::run(&config()?, args),
    }
}
