//! chunk-study: measures chunking strategies for the rustupdate artifact format on a pair of
//! root filesystem images (v1, v2) and prints a markdown report.
//!
//! For every strategy it reports the chunk table size, the full artifact size for v2, the bytes a
//! device holding v1 must download for v2 (the chunks whose sha256 it lacks, plus the table), the
//! single-threaded time to cut, hash and compress, and the decode throughput of the per-chunk
//! payload. It does not build real artifacts (no manifest, no signatures, no segments): it
//! measures the parts that depend on the chunking.
//!
//! Usage: see [`USAGE`]. The images come from `bench/rootfs-images.sh`.

mod measure;
mod report;
mod segment;

use measure::{DecodeTimes, Delta};
use segment::{Extent, Strategy};
use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: chunk-study [--v1 IMAGE] [--v2 IMAGE] [--out FILE] [--strategy SPEC]... [--level N]
                   [--high-level N | --no-high] [--high-count N] [--dict-size N | --no-dict]
                   [--reps N]

  --v1, --v2      images (default: <repo>/build/bench/rootfs-v1.ext4, rootfs-v2.ext4)
  --out           markdown report (default: <repo>/build/bench/chunk-study.md)
  --strategy      fixed:SIZE | fixed-whole:SIZE | fastcdc:MIN:AVG:MAX, repeatable
                  (default: fixed 4/16/64 KiB, FastCDC avg 8/16/32 KiB, fixed-whole 16/64 KiB)
  --level         zstd level of the per-chunk compression in the main tables (default 3)
  --high-level    level of the second pass over the best strategies (default 19)
  --no-high       skip that pass and the whole-image stream at the high level (slow)
  --high-count    how many strategies the second pass and the dictionary pass cover (default 2)
  --dict-size     size of the zstd dictionary trained for the dictionary pass (default 112640)
  --no-dict       skip the dictionary pass
  --reps          runs per time measurement, the median is reported (default 3)
";

#[derive(Debug)]
struct Args {
    v1: PathBuf,
    v2: PathBuf,
    out: PathBuf,
    strategies: Vec<Strategy>,
    level: i32,
    high_level: Option<i32>,
    high_count: usize,
    dict_size: Option<usize>,
    reps: usize,
}

impl Args {
    fn parse(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
        let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/bench");
        let mut args = Args {
            v1: build.join("rootfs-v1.ext4"),
            v2: build.join("rootfs-v2.ext4"),
            out: build.join("chunk-study.md"),
            strategies: Vec::new(),
            level: 3,
            high_level: Some(19),
            high_count: 2,
            dict_size: Some(112_640),
            reps: 3,
        };
        while let Some(flag) = raw.next() {
            let mut value = || raw.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--v1" => args.v1 = value()?.into(),
                "--v2" => args.v2 = value()?.into(),
                "--out" => args.out = value()?.into(),
                "--strategy" => args.strategies.push(value()?.parse()?),
                "--level" => args.level = number(&value()?)?,
                "--high-level" => args.high_level = Some(number(&value()?)?),
                "--no-high" => args.high_level = None,
                "--high-count" => args.high_count = number(&value()?)?,
                "--dict-size" => args.dict_size = Some(number(&value()?)?),
                "--no-dict" => args.dict_size = None,
                "--reps" => args.reps = number::<usize>(&value()?)?.max(1),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if args.strategies.is_empty() {
            args.strategies = Strategy::defaults();
        }
        Ok(args)
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text:?}"))
}

/// Everything measured for one strategy at the main level.
#[derive(Debug)]
pub struct Row {
    pub strategy: Strategy,
    pub data_entries: usize,
    pub zero_entries: usize,
    pub data_bytes: u64,
    pub table_raw: u64,
    pub table_zstd: u64,
    pub payload: u64,
    /// Stored bytes if every distinct chunk of v2 were stored once.
    pub payload_unique: u64,
    pub delta: Delta,
    pub v2_cut: Duration,
    pub v2_hash: Duration,
    pub v2_compress: Duration,
    pub v1_index: Duration,
    pub decode: DecodeTimes,
}

impl Row {
    /// Payload plus raw tables: `crates/format` stores the tables uncompressed in the body.
    pub fn full(&self) -> u64 {
        self.payload + self.table_raw
    }

    /// New chunks plus the compressed table, which a delta client fetches whole.
    pub fn delta_total(&self) -> u64 {
        self.delta.stored + self.table_zstd
    }
}

/// The same measures at the high level for one of the best strategies.
#[derive(Debug)]
pub struct HighRow {
    pub strategy: Strategy,
    /// Wall time of the compression on all threads.
    pub compress: Duration,
    pub full: u64,
    pub table_zstd: u64,
    pub delta: Delta,
    pub decode: DecodeTimes,
}

/// One of the best strategies again, each chunk compressed with a dictionary trained on v2.
#[derive(Debug)]
pub struct DictRow {
    pub strategy: Strategy,
    pub dict_len: u64,
    pub train: Duration,
    pub payload: u64,
    pub table_raw: u64,
    pub table_zstd: u64,
    pub delta: Delta,
    pub compress: Duration,
    pub decode: DecodeTimes,
}

impl DictRow {
    /// Payload, raw tables and the dictionary, which the artifact must carry.
    pub fn full(&self) -> u64 {
        self.payload + self.table_raw + self.dict_len
    }

    /// A delta client also needs v2's dictionary.
    pub fn delta_total(&self) -> u64 {
        self.delta.stored + self.table_zstd + self.dict_len
    }
}

/// The images and the whole-image references.
#[derive(Debug)]
pub struct Baseline {
    pub v1: PathBuf,
    pub v2: PathBuf,
    pub v1_len: u64,
    pub v2_len: u64,
    pub v1_zero: u64,
    pub v2_zero: u64,
    pub level: i32,
    pub whole: u64,
    pub whole_compress: Duration,
    pub whole_decode: Duration,
    pub high_level: Option<i32>,
    pub whole_high: Option<u64>,
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("chunk-study: {msg}");
            }
            eprint!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunk-study: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Box<dyn Error>> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()).into())
}

/// The two images, each with its zero runs and non-zero extents.
#[derive(Debug)]
struct Images {
    v1: Vec<u8>,
    ext1: Vec<Extent>,
    v2: Vec<u8>,
    ext2: Vec<Extent>,
}

impl Images {
    fn read(v1: &Path, v2: &Path) -> Result<Images, Box<dyn Error>> {
        let (v1, v2) = (read(v1)?, read(v2)?);
        Ok(Images {
            ext1: segment::extents(&v1),
            ext2: segment::extents(&v2),
            v1,
            v2,
        })
    }

    /// Cuts and hashes v1 and v2 with `strategy`.
    fn index(&self, strategy: Strategy) -> (measure::Index, measure::Index) {
        (
            measure::index(&self.v1, &self.ext1, strategy),
            measure::index(&self.v2, &self.ext2, strategy),
        )
    }
}

fn zero_bytes(extents: &[Extent]) -> u64 {
    extents
        .iter()
        .filter(|e| e.zero)
        .map(|e| (e.end - e.start) as u64)
        .sum()
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let images = Images::read(&args.v1, &args.v2)?;
    let v2 = images.v2.as_slice();

    eprintln!("whole v2 image as one zstd -{} stream", args.level);
    let start = Instant::now();
    let whole_stream = zstd::stream::encode_all(v2, args.level)?;
    let whole_compress = start.elapsed();
    let whole_decode = measure::median(
        (0..args.reps)
            .map(|_| {
                let start = Instant::now();
                zstd::stream::copy_decode(whole_stream.as_slice(), std::io::sink())
                    .map(|()| start.elapsed())
            })
            .collect::<Result<_, _>>()?,
    );
    let mut baseline = Baseline {
        v1: std::fs::canonicalize(&args.v1)?,
        v2: std::fs::canonicalize(&args.v2)?,
        v1_len: images.v1.len() as u64,
        v2_len: v2.len() as u64,
        v1_zero: zero_bytes(&images.ext1),
        v2_zero: zero_bytes(&images.ext2),
        level: args.level,
        whole: whole_stream.len() as u64,
        whole_compress,
        whole_decode,
        high_level: args.high_level,
        whole_high: None,
    };
    drop(whole_stream);

    let mut rows = Vec::new();
    for &strategy in &args.strategies {
        eprintln!("{strategy}: measuring at level {}", args.level);
        rows.push(measure_row(&images, strategy, args)?);
    }

    let mut best: Vec<&Row> = rows.iter().collect();
    best.sort_by_key(|r| r.delta_total());
    best.truncate(args.high_count);

    let mut dict = Vec::new();
    if let Some(size) = args.dict_size {
        for r in &best {
            eprintln!("{}: dictionary of {size} bytes", r.strategy);
            dict.push(measure_dict(&images, r.strategy, size, args)?);
        }
    }

    let mut high = Vec::new();
    if let Some(level) = args.high_level {
        eprintln!("level {level}: the best {} strategies", best.len());
        // One after the other, so that the timings do not compete for the cores.
        for r in &best {
            high.push(measure_high(&images, r.strategy, level, args.reps)?);
        }
        eprintln!("level {level}: whole v2 stream (one thread)");
        baseline.whole_high = Some(measure::zstd_len(v2, level)?);
    }

    let markdown = report::render(&baseline, &rows, &dict, &high, started.elapsed());
    print!("{markdown}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &markdown)
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn measure_row(images: &Images, strategy: Strategy, args: &Args) -> Result<Row, Box<dyn Error>> {
    let v2 = images.v2.as_slice();
    // The results are the same every run; the times are the medians over `reps` runs.
    let (mut v1_index, mut v2_cut, mut v2_hash, mut v2_compress) = (vec![], vec![], vec![], vec![]);
    let mut last = None;
    for _ in 0..args.reps {
        let (idx1, idx2) = images.index(strategy);
        let payload = measure::compress(v2, &idx2, args.level, &[])?;
        v1_index.push(idx1.cut_time + idx1.hash_time);
        v2_cut.push(idx2.cut_time);
        v2_hash.push(idx2.hash_time);
        v2_compress.push(payload.time);
        last = Some((idx1, idx2, payload));
    }
    let (idx1, idx2, payload) = last.ok_or("--reps must be at least 1")?;
    let have = idx1.hash_set();
    let table = measure::table(&idx2, &payload.stored);
    let decode = measure::decode(&payload, &idx2, &[], args.reps)?;
    Ok(Row {
        strategy,
        data_entries: idx2.data_count(),
        zero_entries: idx2.zero_count(),
        data_bytes: idx2.data_pieces().map(|(_, len)| len as u64).sum(),
        table_raw: table.len() as u64,
        table_zstd: measure::zstd_len(&table, args.level)?,
        payload: payload.len(),
        payload_unique: measure::delta(&HashSet::new(), &idx2, &payload.stored).stored,
        delta: measure::delta(&have, &idx2, &payload.stored),
        v2_cut: measure::median(v2_cut),
        v2_hash: measure::median(v2_hash),
        v2_compress: measure::median(v2_compress),
        v1_index: measure::median(v1_index),
        decode,
    })
}

fn measure_dict(
    images: &Images,
    strategy: Strategy,
    dict_size: usize,
    args: &Args,
) -> Result<DictRow, Box<dyn Error>> {
    let v2 = images.v2.as_slice();
    let (idx1, idx2) = images.index(strategy);
    let have = idx1.hash_set();
    let start = Instant::now();
    let dictionary = measure::train_dictionary(v2, &idx2, dict_size)?;
    let train = start.elapsed();
    let payload = measure::compress(v2, &idx2, args.level, &dictionary)?;
    let table = measure::table(&idx2, &payload.stored);
    Ok(DictRow {
        strategy,
        dict_len: dictionary.len() as u64,
        train,
        payload: payload.len(),
        table_raw: table.len() as u64,
        table_zstd: measure::zstd_len(&table, args.level)?,
        delta: measure::delta(&have, &idx2, &payload.stored),
        compress: payload.time,
        decode: measure::decode(&payload, &idx2, &dictionary, args.reps)?,
    })
}

fn measure_high(
    images: &Images,
    strategy: Strategy,
    level: i32,
    reps: usize,
) -> std::io::Result<HighRow> {
    let (idx1, idx2) = images.index(strategy);
    let have = idx1.hash_set();
    let payload = measure::compress_parallel(&images.v2, &idx2, level)?;
    let table = measure::table(&idx2, &payload.stored);
    Ok(HighRow {
        strategy,
        compress: payload.time,
        full: payload.len() + table.len() as u64,
        table_zstd: measure::zstd_len(&table, level)?,
        delta: measure::delta(&have, &idx2, &payload.stored),
        decode: measure::decode(&payload, &idx2, &[], reps)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_overrides() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.strategies, Strategy::defaults());
        assert_eq!((a.level, a.high_level, a.reps), (3, Some(19), 3));
        let a = parse(&["--strategy", "fixed:4096", "--no-high", "--level", "5"]).unwrap();
        assert_eq!(a.strategies, vec![Strategy::Fixed { size: 4096 }]);
        assert_eq!((a.level, a.high_level), (5, None));
        assert!(parse(&["--level"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
