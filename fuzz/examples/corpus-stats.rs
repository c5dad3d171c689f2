//! How deep a `reader` corpus gets: runs every file through the three passes of the `reader`
//! target and counts where each read stops (error variant; for truncation, the part), so that a
//! fuzzing run is judged by what it reaches and not only by its edge count.
//!
//! Run from `fuzz/`: `cargo run --release --example corpus-stats -- corpus/reader`

use rustupdate_fuzz::{Outcome, PASSES, read};
use std::collections::BTreeMap;

fn label(outcome: &Outcome) -> String {
    let err = match outcome {
        Outcome::Verified => return "verified".into(),
        Outcome::TooLarge => return "not read: declares more than 64 MiB".into(),
        Outcome::NotFixable => return "not fixable: the head does not parse".into(),
        Outcome::Rejected(err) => err,
    };
    let debug = format!("{err:?}");
    let inner = debug.strip_prefix("Format(").unwrap_or(&debug);
    let variant: String = inner
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    match inner.split_once("part: \"") {
        Some((_, rest)) if variant == "Truncated" => {
            format!("Truncated in {}", rest.split('"').next().unwrap_or(""))
        }
        _ => variant,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus/reader".into());
    let mut counts: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); PASSES.len()];
    let mut files = 0;
    for entry in std::fs::read_dir(&dir)? {
        let data = std::fs::read(entry?.path())?;
        files += 1;
        for (pass, counts) in PASSES.iter().zip(&mut counts) {
            *counts.entry(label(&read(&data, *pass))).or_default() += 1;
        }
    }
    println!("{files} inputs in {dir}");
    for (pass, counts) in PASSES.iter().zip(&counts) {
        println!("\n{pass:?}:");
        let mut rows: Vec<_> = counts.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (what, n) in rows {
            println!("  {n:6}  {what}");
        }
    }
    Ok(())
}
