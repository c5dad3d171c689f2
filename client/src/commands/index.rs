//! `rustupdate index -o FILE`: the block index of the booted slot, for a patch made against what
//! this device holds whatever its history (`rustupdate-artifact delta --base-index FILE`).

use crate::cli::IndexArgs;
use crate::config::Config;
use crate::delta_source::{SlotBase, SlotBaseReader};
use crate::device::Device;
use crate::exit;
use anyhow::{Context, Result};
use rustupdate_delta::BlockIndex;

pub fn run(config: &Config, args: &IndexArgs) -> Result<u8> {
    let device = Device::open(config)?;
    let path = device.slot_path(device.booted);
    // Read as a delta reads its base (past the page cache of a mounted slot), so that the index
    // names the blocks a patch will find.
    let base = SlotBase::open(&path)?;
    let len = base.size;
    let mut reader = SlotBaseReader { base, position: 0 };
    let index =
        BlockIndex::of(&mut reader, len).with_context(|| format!("reading {}", path.display()))?;
    let bytes = index.to_bytes().map_err(anyhow::Error::msg)?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "{}: {} blocks of slot {} ({}), {} bytes",
        args.output.display(),
        index.keys.len(),
        device.booted,
        path.display(),
        bytes.len()
    );
    Ok(exit::OK)
}
