//! Validated rollout parameters: the phases, the success threshold that lets a phase end and the
//! error threshold that pauses the rollout. Everything is checked when it is built or parsed
//! (`Phases::parse`, `Threshold::from_str`, deserialization), so the rest of the crate never sees
//! an invalid value. This module does not decide anything; [`crate::rollout::decide`] does.

use crate::names::echo;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most phases a rollout may have.
pub const MAX_PHASES: usize = 10;
/// A percentage: the whole target set.
pub const ALL_PERCENT: u8 = 100;
/// Percent of a phase's devices that must succeed before the next phase starts, unless set.
pub const DEFAULT_SUCCESS_THRESHOLD: u8 = 100;
/// Failures in a phase that pause the rollout, unless set: the first one.
pub const DEFAULT_ERROR_THRESHOLD: Threshold = Threshold::Count(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("a rollout needs at least one phase (the last one {ALL_PERCENT}%)")]
    NoPhases,
    #[error("{count} phases given, a rollout has at most {MAX_PHASES}")]
    TooManyPhases { count: usize },
    #[error("phase {phase} is {text:?}, not a whole percentage")]
    PhaseNotANumber { phase: usize, text: String },
    #[error("phase {phase} is {percent}%, each phase is 1 to {ALL_PERCENT}% of the devices")]
    PhaseOutOfRange { phase: usize, percent: u64 },
    #[error(
        "phase {phase} is {percent}% after {previous}%: phases are cumulative and strictly increasing"
    )]
    PhasesNotIncreasing {
        phase: usize,
        percent: u8,
        previous: u8,
    },
    #[error(
        "the last phase is {percent}%, it must be {ALL_PERCENT}% so that every device is reached"
    )]
    LastPhaseNotAll { percent: u8 },
    #[error(
        "error threshold {text:?} is neither a count of devices (\"3\") nor a percentage (\"20%\")"
    )]
    ThresholdNotANumber { text: String },
    #[error("error threshold of 0 devices: the count must be at least 1")]
    ThresholdZeroCount,
    #[error("error threshold {percent}%: the percentage must be 1 to {ALL_PERCENT}")]
    ThresholdPercentOutOfRange { percent: u64 },
    #[error("success threshold {percent}%: it must be 1 to {ALL_PERCENT}")]
    SuccessThresholdOutOfRange { percent: u8 },
}

/// Cumulative percentages of the target set, e.g. `1,10,50,100`: phase 0 is the first 1% of the
/// devices, phase 1 brings the total to 10%, and so on. Each is 1 to 100, strictly increasing, the
/// last is 100, at most [`MAX_PHASES`]. Written `1,10,50,100` as text and `[1,10,50,100]` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u64>", into = "Vec<u8>")]
pub struct Phases(Vec<u8>);

impl Phases {
    pub fn new(percents: Vec<u8>) -> Result<Phases, SpecError> {
        Phases::from_wide(percents.into_iter().map(u64::from).collect())
    }

    /// Parses `1,10,50,100` (spaces around the numbers allowed, no `%`).
    pub fn parse(text: &str) -> Result<Phases, SpecError> {
        if text.trim().is_empty() {
            return Err(SpecError::NoPhases);
        }
        let mut percents = Vec::new();
        for (i, item) in text.split(',').enumerate() {
            if i >= MAX_PHASES {
                return Err(SpecError::TooManyPhases {
                    count: text.split(',').count(),
                });
            }
            let item = item.trim();
            let percent = item
                .parse::<u64>()
                .map_err(|_| SpecError::PhaseNotANumber {
                    phase: i + 1,
                    text: echo(item),
                })?;
            percents.push(percent);
        }
        Phases::from_wide(percents)
    }

    /// Validates percentages read as wide numbers, so that `300` is reported as a percentage out of
    /// range rather than an overflow. Phases are numbered from 1 in messages.
    fn from_wide(percents: Vec<u64>) -> Result<Phases, SpecError> {
        if percents.is_empty() {
            return Err(SpecError::NoPhases);
        }
        if percents.len() > MAX_PHASES {
            return Err(SpecError::TooManyPhases {
                count: percents.len(),
            });
        }
        let mut checked: Vec<u8> = Vec::with_capacity(percents.len());
        for (i, &wide) in percents.iter().enumerate() {
            let percent = match u8::try_from(wide) {
                Ok(p) if (1..=ALL_PERCENT).contains(&p) => p,
                _ => {
                    return Err(SpecError::PhaseOutOfRange {
                        phase: i + 1,
                        percent: wide,
                    });
                }
            };
            if let Some(&previous) = checked.last()
                && percent <= previous
            {
                return Err(SpecError::PhasesNotIncreasing {
                    phase: i + 1,
                    percent,
                    previous,
                });
            }
            checked.push(percent);
        }
        match checked.last() {
            Some(&ALL_PERCENT) => Ok(Phases(checked)),
            Some(&percent) => Err(SpecError::LastPhaseNotAll { percent }),
            None => Err(SpecError::NoPhases),
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Number of phases, 1 to [`MAX_PHASES`].
    pub fn count(&self) -> u32 {
        // At most MAX_PHASES (10) entries, checked on construction.
        self.0.len() as u32
    }

    /// Whether `phase` (from 0) is the last phase, or past it.
    pub fn is_last(&self, phase: u32) -> bool {
        phase.saturating_add(1) >= self.count()
    }
}

impl TryFrom<Vec<u64>> for Phases {
    type Error = SpecError;

    fn try_from(percents: Vec<u64>) -> Result<Phases, SpecError> {
        Phases::from_wide(percents)
    }
}

impl From<Phases> for Vec<u8> {
    fn from(phases: Phases) -> Vec<u8> {
        phases.0
    }
}

impl FromStr for Phases {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Phases, SpecError> {
        Phases::parse(text)
    }
}

impl fmt::Display for Phases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, percent) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{percent}")?;
        }
        Ok(())
    }
}

/// How many failed devices in a phase pause the rollout: a count (`3`) or a percentage of the
/// phase's members (`20%`). Written the same as text and as a JSON string. Zero is refused in both
/// forms: a threshold that is reached before anything failed would pause every rollout at once;
/// a rollout that should never pause does not exist here (use `100%` to pause only when every
/// device of a phase failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Threshold {
    /// At least this many devices failed (1 or more).
    Count(u32),
    /// At least this percentage of the phase's members failed (1 to 100).
    Percent(u8),
}

impl Threshold {
    /// Whether `failed` failures among `of` devices reach the threshold. A percentage of an empty
    /// phase is never reached; a count is reached by the number of failures alone.
    pub fn reached(&self, failed: u32, of: u32) -> bool {
        match *self {
            Threshold::Count(n) => failed >= n,
            Threshold::Percent(p) => {
                of > 0 && u64::from(failed) * u64::from(ALL_PERCENT) >= u64::from(p) * u64::from(of)
            }
        }
    }
}

impl Default for Threshold {
    fn default() -> Threshold {
        DEFAULT_ERROR_THRESHOLD
    }
}

impl FromStr for Threshold {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Threshold, SpecError> {
        let trimmed = text.trim();
        let not_a_number = || SpecError::ThresholdNotANumber { text: echo(text) };
        if let Some(number) = trimmed.strip_suffix('%') {
            let percent = number.trim().parse::<u64>().map_err(|_| not_a_number())?;
            match u8::try_from(percent) {
                Ok(p) if (1..=ALL_PERCENT).contains(&p) => Ok(Threshold::Percent(p)),
                _ => Err(SpecError::ThresholdPercentOutOfRange { percent }),
            }
        } else {
            match trimmed.parse::<u32>().map_err(|_| not_a_number())? {
                0 => Err(SpecError::ThresholdZeroCount),
                n => Ok(Threshold::Count(n)),
            }
        }
    }
}

impl TryFrom<String> for Threshold {
    type Error = SpecError;

    fn try_from(text: String) -> Result<Threshold, SpecError> {
        text.parse()
    }
}

impl From<Threshold> for String {
    fn from(threshold: Threshold) -> String {
        threshold.to_string()
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Count(n) => write!(f, "{n}"),
            Threshold::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Everything that shapes a rollout besides its target set and release. JSON keys are kebab-case
/// (`phases`, `success-threshold`, `error-threshold`), unknown keys are errors, and the two
/// thresholds may be left out for their defaults. Deserializing validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "RawRolloutSpec")]
pub struct RolloutSpec {
    pub phases: Phases,
    /// Percent of a phase's devices (those not canceled) that must succeed before the next phase
    /// starts, 1 to 100, default [`DEFAULT_SUCCESS_THRESHOLD`].
    pub success_threshold: u8,
    /// Failures in the current phase that pause the rollout, default [`DEFAULT_ERROR_THRESHOLD`].
    pub error_threshold: Threshold,
}

impl RolloutSpec {
    /// A spec with both thresholds at their defaults.
    pub fn new(phases: Phases) -> RolloutSpec {
        RolloutSpec {
            phases,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            error_threshold: DEFAULT_ERROR_THRESHOLD,
        }
    }

    /// Checks what the field types cannot: the success threshold's range. Phases and the error
    /// threshold are valid by construction.
    pub fn validate(&self) -> Result<(), SpecError> {
        if (1..=ALL_PERCENT).contains(&self.success_threshold) {
            Ok(())
        } else {
            Err(SpecError::SuccessThresholdOutOfRange {
                percent: self.success_threshold,
            })
        }
    }
}

/// The JSON form before validation.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRolloutSpec {
    phases: Phases,
    #[serde(default = "default_success_threshold")]
    success_threshold: u8,
    #[serde(default)]
    error_threshold: Threshold,
}

fn default_success_threshold() -> u8 {
    DEFAULT_SUCCESS_THRESHOLD
}

impl TryFrom<RawRolloutSpec> for RolloutSpec {
    type Error = SpecError;

    fn try_from(raw: RawRolloutSpec) -> Result<RolloutSpec, SpecError> {
        let spec = RolloutSpec {
            phases: raw.phases,
            success_threshold: raw.success_threshold,
            error_threshold: raw.error_threshold,
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_and_print_the_same() {
        let phases = Phases::parse("1, 10,50 ,100").unwrap();
        assert_eq!(phases.as_slice(), &[1, 10, 50, 100]);
        assert_eq!(phases.to_string(), "1,10,50,100");
        assert_eq!(phases.count(), 4);
        assert!(!phases.is_last(2));
        assert!(phases.is_last(3));
        assert_eq!(Phases::parse("100").unwrap().as_slice(), &[100]);
    }

    #[test]
    fn phases_refuse_invalid_lists() {
        assert_eq!(Phases::parse(""), Err(SpecError::NoPhases));
        assert_eq!(Phases::new(vec![]), Err(SpecError::NoPhases));
        assert_eq!(
            Phases::parse("0,100"),
            Err(SpecError::PhaseOutOfRange {
                phase: 1,
                percent: 0
            })
        );
        assert_eq!(
            Phases::parse("10,300"),
            Err(SpecError::PhaseOutOfRange {
                phase: 2,
                percent: 300
            })
        );
        assert_eq!(
            Phases::parse("10,10,100"),
            Err(SpecError::PhasesNotIncreasing {
                phase: 2,
                percent: 10,
                previous: 10
            })
        );
        assert_eq!(
            Phases::parse("50,20,100"),
            Err(SpecError::PhasesNotIncreasing {
                phase: 2,
                percent: 20,
                previous: 50
            })
        );
        assert_eq!(
            Phases::parse("1,50"),
            Err(SpecError::LastPhaseNotAll { percent: 50 })
        );
        assert!(matches!(
            Phases::parse("1,x,100"),
            Err(SpecError::PhaseNotANumber { phase: 2, .. })
        ));
        assert!(matches!(
            Phases::parse("1,5%,100"),
            Err(SpecError::PhaseNotANumber { phase: 2, .. })
        ));
        assert_eq!(
            Phases::parse("1,2,3,4,5,6,7,8,9,10,100"),
            Err(SpecError::TooManyPhases { count: 11 })
        );
        let ten: Vec<u8> = (1..=10).map(|i| i * 10).collect();
        assert!(Phases::new(ten).is_ok());
    }

    #[test]
    fn phase_limit_message_is_built_from_the_constant() {
        let message = SpecError::TooManyPhases { count: 11 }.to_string();
        assert!(message.contains(&MAX_PHASES.to_string()), "{message}");
    }

    #[test]
    fn phases_json_is_a_validated_array() {
        let phases: Phases = serde_json::from_str("[1,10,50,100]").unwrap();
        assert_eq!(serde_json::to_string(&phases).unwrap(), "[1,10,50,100]");
        assert!(serde_json::from_str::<Phases>("[10,1,100]").is_err());
        assert!(serde_json::from_str::<Phases>("[1,300]").is_err());
        assert!(serde_json::from_str::<Phases>("[]").is_err());
        assert!(serde_json::from_str::<Phases>("\"1,100\"").is_err());
    }

    #[test]
    fn thresholds_parse_and_print_the_same() {
        for (text, threshold) in [
            ("3", Threshold::Count(3)),
            ("20%", Threshold::Percent(20)),
            ("100%", Threshold::Percent(100)),
        ] {
            assert_eq!(text.parse::<Threshold>().unwrap(), threshold);
            assert_eq!(threshold.to_string(), text);
            assert_eq!(
                serde_json::to_string(&threshold).unwrap(),
                format!("\"{threshold}\"")
            );
            assert_eq!(
                serde_json::from_str::<Threshold>(&format!("\"{text}\"")).unwrap(),
                threshold
            );
        }
    }

    #[test]
    fn thresholds_refuse_zero_and_nonsense() {
        assert_eq!("0".parse::<Threshold>(), Err(SpecError::ThresholdZeroCount));
        assert_eq!(
            "0%".parse::<Threshold>(),
            Err(SpecError::ThresholdPercentOutOfRange { percent: 0 })
        );
        assert_eq!(
            "101%".parse::<Threshold>(),
            Err(SpecError::ThresholdPercentOutOfRange { percent: 101 })
        );
        for bad in ["", "%", "-1", "3.5", "abc", "20 percent"] {
            assert!(
                matches!(
                    bad.parse::<Threshold>(),
                    Err(SpecError::ThresholdNotANumber { .. })
                ),
                "{bad:?}"
            );
        }
        // One spelling: a JSON number is not a threshold.
        assert!(serde_json::from_str::<Threshold>("3").is_err());
    }

    #[test]
    fn count_threshold_counts_failures_alone() {
        let t = Threshold::Count(2);
        assert!(!t.reached(1, 10));
        assert!(t.reached(2, 10));
        assert!(t.reached(3, 0));
        assert!(Threshold::Count(1).reached(1, 1));
        assert!(!Threshold::Count(1).reached(0, 1));
    }

    #[test]
    fn percent_threshold_is_of_the_members() {
        let t = Threshold::Percent(20);
        assert!(!t.reached(1, 10));
        assert!(t.reached(2, 10));
        assert!(!t.reached(1, 6)); // 16.7%
        assert!(t.reached(2, 6)); // 33%
        assert!(!t.reached(0, 0));
        assert!(!t.reached(5, 0));
        assert!(Threshold::Percent(100).reached(3, 3));
        assert!(!Threshold::Percent(100).reached(2, 3));
        // No overflow near the top of the range.
        assert!(Threshold::Percent(100).reached(u32::MAX, u32::MAX));
    }

    #[test]
    fn spec_json_has_kebab_keys_and_defaults() {
        let spec: RolloutSpec = serde_json::from_str(r#"{"phases":[5,100]}"#).unwrap();
        assert_eq!(spec, RolloutSpec::new(Phases::new(vec![5, 100]).unwrap()));
        assert_eq!(spec.success_threshold, DEFAULT_SUCCESS_THRESHOLD);
        assert_eq!(spec.error_threshold, Threshold::Count(1));
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"phases":[5,100],"success-threshold":100,"error-threshold":"1"}"#
        );
        let spec: RolloutSpec = serde_json::from_str(
            r#"{"phases":[1,100],"success-threshold":90,"error-threshold":"10%"}"#,
        )
        .unwrap();
        assert_eq!(spec.success_threshold, 90);
        assert_eq!(spec.error_threshold, Threshold::Percent(10));
    }

    #[test]
    fn spec_json_is_validated() {
        for bad in [
            r#"{"phases":[1,100],"success-threshold":0}"#,
            r#"{"phases":[1,100],"success-threshold":101}"#,
            r#"{"phases":[1,100],"error-threshold":"0"}"#,
            r#"{"phases":[1,50]}"#,
            r#"{"phases":[1,100],"sucess-threshold":90}"#,
            r#"{"success-threshold":90}"#,
        ] {
            assert!(serde_json::from_str::<RolloutSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_checks_the_success_threshold() {
        let mut spec = RolloutSpec::new(Phases::parse("100").unwrap());
        assert_eq!(spec.validate(), Ok(()));
        spec.success_threshold = 0;
        assert_eq!(
            spec.validate(),
            Err(SpecError::SuccessThresholdOutOfRange { percent: 0 })
        );
        spec.success_threshold = 101;
        assert!(spec.validate().is_err());
    }
}
