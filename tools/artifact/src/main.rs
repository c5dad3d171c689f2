//! `rustupdate-artifact`: the host tool that builds, signs, inspects and verifies `.rua` artifacts.
//! One module per subcommand; this file only parses arguments and maps results to exit codes.

mod build;
mod cli;
mod delta;
mod files;
mod inspect;
mod keygen;
mod progress;
mod sign;
mod signer;
mod trust;
mod verify;

use clap::Parser;
use std::process::ExitCode;

/// Exit codes (documented in `docs/artifact-tool.md`).
pub const EXIT_OK: u8 = 0;
/// `verify` checked the artifact and it is not acceptable; `trust inspect`: the document does not
/// parse, or a device would not accept it.
pub const EXIT_REJECTED: u8 = 1;
/// Usage, I/O or any other error.
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Keygen(args) => keygen::run(&args),
        cli::Command::Build(args) => build::run(&args),
        cli::Command::Sign(args) => sign::run(&args),
        cli::Command::Inspect(args) => inspect::run(&args),
        cli::Command::Verify(args) => verify::run(&args),
        cli::Command::Delta(args) => delta::run(&args),
        cli::Command::Trust(args) => trust::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("rustupdate-artifact: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
