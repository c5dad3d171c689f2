//! `rustupdate index -o FILE`: the block index of the booted slot, for a patch made against what
//! this device holds whatever its history (`rustupdate-artifact delta --base-index FILE`).

use crate::cli::IndexArgs;
use crate::config::Config;
use crate::device::Device;
use crate::exit;
use anyhow::{Context, Result};
use rustupdate_delta::BlockIndex;
use std::io::{BufReader, Seek, SeekFrom};

pub fn run(config: &Config, args: &IndexArgs) -> Result<u8> {
    let device = Device::open(config)?;
    let path = device.slot_path(device.booted);
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // Seeking to the end works for block devices, where metadata().len() is 0.
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let index = BlockIndex::of(&mut BufReader::with_capacity(256 << 10, file), len)
        .with_context(|| format!("reading {}", path.display()))?;
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
