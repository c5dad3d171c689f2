//! The server's log: `tracing` events on stderr, one line each, filtered by `RUST_LOG` (`info`
//! when unset; directives it cannot parse are skipped, as before with env_logger), as text or
//! (`--log-format json`) as tracing-subscriber's JSON with the event's fields at the top level.
//!
//! Every event names what happened in an `event` field (`event=started`, `event=shutdown`, …):
//! scripts and tests find lines by it. Events inside a request carry its span
//! (`request_span.rs`). Records of dependencies that log through the `log` crate are forwarded.

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Installs the subscriber for this process; a second call (tests) leaves the first in place.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
