//! `trust …`: create, edit, sign and inspect trust documents (`docs/trust.md`). What a document
//! may hold and when a device accepts it is decided in `rustupdate-trust`; these modules read
//! files, call it and write the result.
//!
//! - [`edit`]: `init`, `add-key`, `remove-key`, `revoke`, `set-threshold`.
//! - [`sign`]: `sign` with root keys (own key files or an external signer).
//! - [`inspect`]: `inspect`, with `--previous` and `--root-anchor`.
//! - [`files`]: reading and writing documents and key files.

mod edit;
mod files;
mod inspect;
mod sign;

use crate::cli::{TrustArgs, TrustCommand};
use anyhow::Result;

pub fn run(args: &TrustArgs) -> Result<u8> {
    match &args.command {
        TrustCommand::Init(args) => edit::init(args),
        TrustCommand::AddKey(args) => edit::add_key(args),
        TrustCommand::RemoveKey(args) => edit::remove_key(args),
        TrustCommand::Revoke(args) => edit::revoke(args),
        TrustCommand::SetThreshold(args) => edit::set_threshold(args),
        TrustCommand::Sign(args) => sign::run(args),
        TrustCommand::Inspect(args) => inspect::run(args),
    }
}
