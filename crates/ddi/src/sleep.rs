//! hawkBit's polling interval, `config.polling.sleep`, written `HH:MM:SS`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A polling interval of whole seconds, below 100 hours (two hour digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PollSleep(u32);

/// Longest interval `HH:MM:SS` can say: what a device accepts from a server.
pub const MAX_SLEEP_SECS: u32 = 99 * 3600 + 59 * 60 + 59;

/// Longest interval a server sends, `23:59:59`: hawkBit's own ceiling, and rauc-hawkbit-updater
/// (which parses the value as a time of day) refuses `24:00:00` and above.
pub const MAX_POLL_SLEEP_SECS: u32 = 23 * 3600 + 59 * 60 + 59;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("polling sleep {0:?} is not HH:MM:SS (minutes and seconds below 60)")]
pub struct SleepError(String);

impl PollSleep {
    /// The interval to send, capped at [`MAX_POLL_SLEEP_SECS`] (under a day).
    pub fn from_secs(secs: u64) -> PollSleep {
        PollSleep(secs.min(u64::from(MAX_POLL_SLEEP_SECS)) as u32)
    }

    pub fn as_secs(self) -> u64 {
        u64::from(self.0)
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(self.as_secs())
    }
}

impl fmt::Display for PollSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

impl FromStr for PollSleep {
    type Err = SleepError;

    fn from_str(text: &str) -> Result<PollSleep, SleepError> {
        let err = || SleepError(text.to_owned());
        let mut parts = text.split(':');
        let mut field = |max: u32| -> Result<u32, SleepError> {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let value: u32 = part.parse().map_err(|_| err())?;
            if value > max {
                return Err(err());
            }
            Ok(value)
        };
        let (h, m, s) = (field(99)?, field(59)?, field(59)?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(PollSleep(h * 3600 + m * 60 + s))
    }
}

impl Serialize for PollSleep {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PollSleep {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_hawkbit_examples() {
        for (text, secs) in [("00:05:00", 300), ("12:00:00", 43200), ("00:00:01", 1)] {
            let sleep: PollSleep = text.parse().unwrap();
            assert_eq!(sleep.as_secs(), secs);
            assert_eq!(sleep.to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed() {
        for text in [
            "",
            "5:00",
            "00:60:00",
            "00:00:60",
            "0a:00:00",
            "00:00:00:00",
            "-1:00:00",
        ] {
            assert!(text.parse::<PollSleep>().is_err(), "{text}");
        }
    }

    #[test]
    fn sends_less_than_a_day() {
        assert_eq!(PollSleep::from_secs(86_399).to_string(), "23:59:59");
        assert_eq!(PollSleep::from_secs(86_400).to_string(), "23:59:59");
        assert_eq!(PollSleep::from_secs(u64::MAX).to_string(), "23:59:59");
    }

    #[test]
    fn accepts_long_intervals_from_other_servers() {
        let sleep: PollSleep = "99:59:59".parse().unwrap();
        assert_eq!(sleep.as_secs(), u64::from(MAX_SLEEP_SECS));
    }
}
