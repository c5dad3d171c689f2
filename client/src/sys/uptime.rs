//! The [`Clock`] seam from `/proc/uptime` (path injected). A file that cannot be read or parsed is
//! an error naming the file, never a silent zero. It does not decide anything with the time (the
//! rollback guard in `rustupdate-core` does).

use rustupdate_core::Error;
use rustupdate_core::seams::Clock;
use std::path::PathBuf;
use std::time::Duration;

pub const PROC_UPTIME: &str = "/proc/uptime";

#[derive(Debug)]
pub struct ProcUptime {
    pub path: PathBuf,
}

impl Clock for ProcUptime {
    fn uptime(&mut self) -> Result<Duration, Error> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|err| Error::adapter("uptime", format!("{}: {err}", self.path.display())))?;
        parse(&text).ok_or_else(|| {
            Error::adapter(
                "uptime",
                format!("{}: {text:?} is not an uptime", self.path.display()),
            )
        })
    }
}

/// The first field of `/proc/uptime`: seconds since boot, with a fraction.
fn parse(text: &str) -> Option<Duration> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_uptime() {
        assert_eq!(
            parse("350735.47 234388.90\n"),
            Some(Duration::from_millis(350_735_470))
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("soon 1"), None);
        assert_eq!(parse("-1 0"), None);
    }
}
