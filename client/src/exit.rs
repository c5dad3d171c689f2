//! Exit codes, documented in `docs/client.md`.

/// Success (for `commit`: committed, or nothing to do).
pub const OK: u8 = 0;
/// The operation failed; nothing was activated (a failed install is recorded in the state).
pub const FAILED: u8 = 1;
/// Not run, nothing written: bad command line or configuration.
pub const USAGE: u8 = 2;
/// Not run, nothing written: another rustupdate holds the lock (`sys::lock`). The same code as
/// [`USAGE`]: in both cases the command did nothing, and its message says why.
pub const BUSY: u8 = 2;
/// `commit`/`guard`: the trial failed and the device was switched back (a reboot was requested).
pub const ROLLED_BACK: u8 = 3;
/// The artifact was rejected (signature, policy, device type, security version, integrity)
/// before it could be activated.
pub const REJECTED: u8 = 4;

/// Marks an error as a rejection of the artifact.
#[derive(Debug)]
pub struct Rejected;

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("artifact rejected")
    }
}

impl std::error::Error for Rejected {}

/// Marks an error in the configuration or the command line.
#[derive(Debug)]
pub struct Usage;

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("configuration error")
    }
}

impl std::error::Error for Usage {}

pub fn code_for(err: &anyhow::Error) -> u8 {
    // anyhow finds context markers at any depth of the context chain.
    if err.downcast_ref::<Rejected>().is_some() {
        REJECTED
    } else if err.downcast_ref::<Usage>().is_some() {
        USAGE
    } else if err.downcast_ref::<crate::sys::lock::Busy>().is_some() {
        BUSY
    } else {
        FAILED
    }
}
