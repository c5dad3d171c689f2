//! The markdown report.

use crate::segment::Strategy;
use crate::{Baseline, DictRow, HighRow, Row};
use std::fmt::Write as _;
use std::time::Duration;

/// Megabytes (10^6 bytes), two decimals.
fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// Throughput in MB/s of `bytes` in `d`.
fn rate(bytes: u64, d: Duration) -> String {
    let s = d.as_secs_f64();
    if s > 0.0 {
        format!("{:.0}", bytes as f64 / 1e6 / s)
    } else {
        "-".into()
    }
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}", a as f64 / b as f64)
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// Uncompressed data bytes of `strategy` (from its main row), for throughputs.
fn data_bytes_of(rows: &[Row], strategy: Strategy) -> u64 {
    rows.iter()
        .find(|r| r.strategy == strategy)
        .map_or(0, |r| r.data_bytes)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn render(
    base: &Baseline,
    rows: &[Row],
    dict: &[DictRow],
    high: &[HighRow],
    elapsed: Duration,
) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut s, base, rows, dict, high, elapsed);
    s
}

fn write_report(
    s: &mut String,
    base: &Baseline,
    rows: &[Row],
    dict: &[DictRow],
    high: &[HighRow],
    elapsed: Duration,
) -> std::fmt::Result {
    let level = base.level;
    writeln!(s, "# Chunking study\n")?;
    writeln!(
        s,
        "- v1: `{}`, {} MB, {} zero 4 KiB granules",
        base.v1.display(),
        mb(base.v1_len),
        percent(base.v1_zero, base.v1_len)
    )?;
    writeln!(
        s,
        "- v2: `{}`, {} MB, {} zero 4 KiB granules",
        base.v2.display(),
        mb(base.v2_len),
        percent(base.v2_zero, base.v2_len)
    )?;
    writeln!(
        s,
        "- {}, {} threads available; every time below is one thread (zstd {}, sha2 with the CPU's SHA extensions when present); study took {:.0} s",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        zstd::zstd_safe::version_string(),
        elapsed.as_secs_f64()
    )?;
    writeln!(
        s,
        "- whole v2 image as one zstd -{level} stream: {} MB (compress {} s, decode {} s = {} MB/s of image)",
        mb(base.whole),
        secs(base.whole_compress),
        secs(base.whole_decode),
        rate(base.v2_len, base.whole_decode)
    )?;
    if let (Some(hl), Some(w)) = (base.high_level, base.whole_high) {
        writeln!(s, "- whole v2 image as one zstd -{hl} stream: {} MB", mb(w))?;
    }
    writeln!(s, "- MB = 10^6 bytes; table entry = 48 bytes\n")?;

    writeln!(s, "## Sizes, per-chunk zstd -{level}\n")?;
    writeln!(
        s,
        "| strategy | chunking | data entries | zero entries | table MB | table zstd MB | payload MB | payload, each distinct chunk once MB | full artifact MB | full / zstd -{level} image | new chunks | new data MB | **delta MB** |"
    )?;
    writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")?;
    let best = rows.iter().map(Row::delta_total).min().unwrap_or(0);
    for r in rows {
        let delta = mb(r.delta_total());
        let delta = if r.delta_total() == best {
            format!("**{delta}**")
        } else {
            delta
        };
        writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.strategy.label(),
            r.strategy,
            r.data_entries,
            r.zero_entries,
            mb(r.table_raw),
            mb(r.table_zstd),
            mb(r.payload),
            mb(r.payload_unique),
            mb(r.full()),
            ratio(r.full(), base.whole),
            r.delta.chunks,
            mb(r.delta.stored),
            delta
        )?;
    }
    writeln!(
        s,
        "\nfull artifact = stored chunks (zstd, or raw where zstd does not help) + raw tables, as `crates/format` lays them out (manifest and signatures not counted). \
         delta = what a device holding v1 downloads: v2's data chunks whose sha256 is not among v1's chunks (each once) + the v2 table compressed with zstd -{level}. \
         new data MB = stored bytes of those chunks.\n"
    )?;

    writeln!(s, "## Speed, one thread\n")?;
    writeln!(
        s,
        "| strategy | mean data chunk KiB | v2 cut s | v2 sha256 s | v2 compress s | v2 total s | v1 index (cut + sha256) s | decode s | decode MB/s | decode + sha256 s | decode + sha256 MB/s |"
    )?;
    writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")?;
    for r in rows {
        let total = r.v2_cut + r.v2_hash + r.v2_compress;
        writeln!(
            s,
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.strategy.label(),
            r.data_bytes as f64 / r.data_entries.max(1) as f64 / 1024.0,
            secs(r.v2_cut),
            secs(r.v2_hash),
            secs(r.v2_compress),
            secs(total),
            secs(r.v1_index),
            secs(r.decode.decompress),
            rate(r.data_bytes, r.decode.decompress),
            secs(r.decode.decompress_verify),
            rate(r.data_bytes, r.decode.decompress_verify)
        )?;
    }
    writeln!(
        s,
        "\ndecode = decompress every stored v2 chunk into one reused buffer (median of runs); MB/s counts uncompressed data bytes (zero runs need no decoding). \
         The whole-image stream decodes {} MB/s of image including its zero blocks. v1 index = what a device spends to chunk and hash its own slot before a delta download.\n",
        rate(base.v2_len, base.whole_decode)
    )?;

    if !dict.is_empty() {
        writeln!(
            s,
            "## The best {} strategies with a zstd dictionary, per-chunk zstd -{level}\n",
            dict.len()
        )?;
        writeln!(
            s,
            "| strategy | dictionary KiB | train s | payload MB | full artifact MB | full / zstd -{level} image | new data MB | **delta MB** | compress s | decode MB/s | decode + sha256 MB/s |"
        )?;
        writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")?;
        for d in dict {
            let data_bytes = data_bytes_of(rows, d.strategy);
            writeln!(
                s,
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                d.strategy.label(),
                d.dict_len as f64 / 1024.0,
                secs(d.train),
                mb(d.payload),
                mb(d.full()),
                ratio(d.full(), base.whole),
                mb(d.delta.stored),
                mb(d.delta_total()),
                secs(d.compress),
                rate(data_bytes, d.decode.decompress),
                rate(data_bytes, d.decode.decompress_verify)
            )?;
        }
        writeln!(
            s,
            "\nThe dictionary is trained on v2's chunks and travels with the artifact: it is counted in the full artifact and in the delta. \
             `crates/format` has no dictionary support today; this shows what one would buy.\n"
        )?;
    }

    if let (Some(hl), Some(whole_high)) = (base.high_level, base.whole_high) {
        writeln!(s, "## The best {} strategies at zstd -{hl}\n", high.len())?;
        let threads = rayon::current_num_threads();
        writeln!(
            s,
            "| strategy | full artifact MB | full / zstd -{hl} image | table zstd -{hl} MB | new data MB | **delta MB** | compress s ({threads} threads) | decode MB/s | decode + sha256 MB/s |"
        )?;
        writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")?;
        for h in high {
            let data_bytes = data_bytes_of(rows, h.strategy);
            writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                h.strategy.label(),
                mb(h.full),
                ratio(h.full, whole_high),
                mb(h.table_zstd),
                mb(h.delta.stored),
                mb(h.delta.stored + h.table_zstd),
                secs(h.compress),
                rate(data_bytes, h.decode.decompress),
                rate(data_bytes, h.decode.decompress_verify)
            )?;
        }
        writeln!(
            s,
            "\nwhole v2 image as one zstd -{hl} stream: {} MB.",
            mb(whole_high)
        )?;
    }
    Ok(())
}
