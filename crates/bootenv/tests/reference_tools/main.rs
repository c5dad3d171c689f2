//! Cross-checks against the reference tools, both directions: what this crate writes is read by
//! `fw_printenv` and `grub-editenv`, and what `fw_setenv`, `mkenvimage` and `grub-editenv` write is
//! read by this crate, with odd values and full environments.
//!
//! The tools come from Debian packages `libubootenv-tool` (`fw_printenv`, `fw_setenv`),
//! `u-boot-tools` (`mkenvimage`) and `grub-common` (`grub-editenv`). A missing tool fails the test
//! with the package to install; nothing is skipped.
//!
//! One test binary: the tool helpers here, a module per bootloader.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

mod grub;
mod sdboot;
mod uboot;

use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// Tools

/// The path of `name` on `PATH`; panics naming the Debian package when it is missing.
fn tool(name: &str, package: &str) -> PathBuf {
    rustupdate_testkit::require_tool(name, package)
}

/// Runs a tool: `Ok(stdout)` on exit status 0, `Err(description)` otherwise.
fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let stdout = String::from_utf8(output.stdout).expect("tool output is UTF-8");
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{command:?}: {}; stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `name=value\n` per variable: what `fw_printenv` and `grub-editenv list` print.
fn listing<'a>(vars: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    vars.map(|(name, value)| format!("{name}={value}\n"))
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}
