//! Fault injection for the power-cut tests.
//!
//! Every durable write in the adapters calls [`point`]. With `RUSTUPDATE_FAULT_AFTER=N` in the
//! environment the process stops dead (exit code 99, no cleanup, no further writes) at the N-th
//! point, which is what a power cut at that instant looks like to the next boot (the kernel's
//! page cache survives here, which is why every write that matters is fsynced before the point).
//! `RUSTUPDATE_FAULT_TRACE=1` prints each point reached, so a test can count them.
//! Without these variables a point costs one relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub const FAULT_EXIT_CODE: i32 = 99;

static REACHED: AtomicU64 = AtomicU64::new(0);

struct Settings {
    after: Option<u64>,
    trace: bool,
}

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings {
        after: std::env::var("RUSTUPDATE_FAULT_AFTER")
            .ok()
            .and_then(|v| v.parse().ok()),
        trace: std::env::var_os("RUSTUPDATE_FAULT_TRACE").is_some(),
    })
}

pub fn point(name: &str) {
    let settings = settings();
    if settings.after.is_none() && !settings.trace {
        return;
    }
    let n = REACHED.fetch_add(1, Ordering::Relaxed) + 1;
    if settings.trace {
        eprintln!("rustupdate-fault-point {n} {name}");
    }
    if settings.after == Some(n) {
        eprintln!("rustupdate: simulated power cut at fault point {n} ({name})");
        std::process::exit(FAULT_EXIT_CODE);
    }
}
