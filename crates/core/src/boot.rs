//! The bootloader contract (`docs/boot-contract.md`) in one place: the variable names, their
//! conversion to and from [`BootEnv`], the bootlimit range, the rule the bootloader scripts apply
//! on every boot ([`bootloader_boot`]), and the [`BootControl`] seam that reads and writes it.
//!
//! It does not read or write any environment format: the byte codecs are `rustupdate-bootenv`, the
//! files and devices are the client's adapters, and the scripts that implement the rule in GRUB
//! and U-Boot are built by the layer (`meta-rustupdate`).

use crate::{Error, SlotId};
use std::ops::RangeInclusive;
use thiserror::Error;

/// The slot to boot: `a` or `b`.
pub const VAR_SLOT: &str = "rustupdate_slot";
/// `1` while a newly installed slot is on trial; `0` otherwise.
pub const VAR_UPGRADE_AVAILABLE: &str = "upgrade_available";
/// Incremented by the bootloader on each boot while `upgrade_available=1`.
pub const VAR_BOOTCOUNT: &str = "bootcount";
/// Boots allowed on trial before the bootloader falls back.
pub const VAR_BOOTLIMIT: &str = "bootlimit";

/// Default number of trial boots before the bootloader falls back.
pub const DEFAULT_BOOTLIMIT: u32 = 3;
/// Bootlimits the bootloader scripts support: they count in one decimal digit (GRUB has no
/// arithmetic).
pub const BOOTLIMIT_RANGE: RangeInclusive<u32> = 1..=9;

/// A contract variable that does not hold what the contract says.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContractError {
    #[error("{VAR_SLOT} is not set")]
    NoSlot,
    #[error("{VAR_SLOT}: {0}")]
    BadSlot(String),
    #[error("{name}={value:?} is not a number")]
    NotANumber { name: &'static str, value: String },
    #[error(
        "bootlimit must be between {min} and {max}, not {0} (the bootloader scripts count in one decimal digit)",
        min = BOOTLIMIT_RANGE.start(),
        max = BOOTLIMIT_RANGE.end()
    )]
    BootlimitOutOfRange(u32),
}

/// Checks a configured bootlimit against [`BOOTLIMIT_RANGE`].
pub fn check_bootlimit(bootlimit: u32) -> Result<(), ContractError> {
    if BOOTLIMIT_RANGE.contains(&bootlimit) {
        Ok(())
    } else {
        Err(ContractError::BootlimitOutOfRange(bootlimit))
    }
}

/// The contract's variables as values. Adapters keep any other variable in the environment
/// untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEnv {
    pub slot: SlotId,
    pub upgrade_available: bool,
    pub bootcount: u32,
    pub bootlimit: u32,
}

impl BootEnv {
    /// A committed, non-trial environment booting `slot`.
    pub fn committed(slot: SlotId, bootlimit: u32) -> BootEnv {
        BootEnv {
            slot,
            upgrade_available: false,
            bootcount: 0,
            bootlimit,
        }
    }

    /// A trial of `slot`: the bootloader counts boots and falls back after `bootlimit`.
    pub fn trial(slot: SlotId, bootlimit: u32) -> BootEnv {
        BootEnv {
            slot,
            upgrade_available: true,
            bootcount: 0,
            bootlimit,
        }
    }

    /// Reads the contract's variables through `get`. Unset or empty numbers take their defaults
    /// (`0`, and `default_bootlimit` for the bootlimit); the slot must be set.
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        default_bootlimit: u32,
    ) -> Result<BootEnv, ContractError> {
        let slot: SlotId = get(VAR_SLOT)
            .ok_or(ContractError::NoSlot)?
            .parse()
            .map_err(ContractError::BadSlot)?;
        let number = |name: &'static str, default: u32| -> Result<u32, ContractError> {
            match get(name) {
                None => Ok(default),
                Some(v) if v.is_empty() => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| ContractError::NotANumber {
                    name,
                    value: v.clone(),
                }),
            }
        };
        Ok(BootEnv {
            slot,
            upgrade_available: number(VAR_UPGRADE_AVAILABLE, 0)? == 1,
            bootcount: number(VAR_BOOTCOUNT, 0)?,
            bootlimit: number(VAR_BOOTLIMIT, default_bootlimit)?,
        })
    }

    /// The four variables with their values, as an adapter writes them.
    pub fn to_vars(&self) -> [(&'static str, String); 4] {
        [
            (VAR_SLOT, self.slot.as_str().to_string()),
            (
                VAR_UPGRADE_AVAILABLE,
                u8::from(self.upgrade_available).to_string(),
            ),
            (VAR_BOOTCOUNT, self.bootcount.to_string()),
            (VAR_BOOTLIMIT, self.bootlimit.to_string()),
        ]
    }
}

/// Reads and writes the bootloader environment. `store` must replace all four variables in one
/// durable write: after a power cut the bootloader sees either the old or the new values.
pub trait BootControl {
    fn load(&mut self) -> Result<BootEnv, Error>;
    fn store(&mut self, env: &BootEnv) -> Result<(), Error>;
}

/// What the bootloader scripts do on every boot (GRUB `grub.cfg` and U-Boot `boot.cmd` implement
/// the same rule). Returns the environment after the boot and the slot that boots. Used by the
/// simulated bootloaders of the tests (in-memory and reference-tool), and documents the contract
/// in code.
pub fn bootloader_boot(env: &BootEnv) -> (BootEnv, SlotId) {
    let mut next = *env;
    if env.upgrade_available {
        next.bootcount = env.bootcount + 1;
        if next.bootcount > env.bootlimit {
            next = BootEnv::committed(env.slot.other(), env.bootlimit);
        }
    }
    (next, next.slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn falls_back_after_bootlimit_trial_boots() {
        let mut env = BootEnv::trial(SlotId::B, 3);
        for expected in 1..=3 {
            let (next, booted) = bootloader_boot(&env);
            assert_eq!((booted, next.bootcount), (SlotId::B, expected));
            env = next;
        }
        let (next, booted) = bootloader_boot(&env);
        assert_eq!(booted, SlotId::A);
        assert_eq!(next, BootEnv::committed(SlotId::A, 3));
        // Committed environments are left alone.
        assert_eq!(bootloader_boot(&next), (next, SlotId::A));
    }

    #[test]
    fn variables_round_trip_and_default() {
        let env = BootEnv {
            slot: SlotId::B,
            upgrade_available: true,
            bootcount: 2,
            bootlimit: 5,
        };
        let vars: BTreeMap<&str, String> = env.to_vars().into_iter().collect();
        assert_eq!(BootEnv::from_vars(|n| vars.get(n).cloned(), 3), Ok(env));
        let only_slot = |n: &str| (n == VAR_SLOT).then(|| "A".to_string());
        assert_eq!(
            BootEnv::from_vars(only_slot, 4),
            Ok(BootEnv::committed(SlotId::A, 4))
        );
        assert_eq!(BootEnv::from_vars(|_| None, 3), Err(ContractError::NoSlot));
        let bad = |n: &str| Some(if n == VAR_SLOT { "a" } else { "x" }.to_string());
        assert!(matches!(
            BootEnv::from_vars(bad, 3),
            Err(ContractError::NotANumber { .. })
        ));
    }

    #[test]
    fn bootlimit_range() {
        assert!(check_bootlimit(1).is_ok() && check_bootlimit(9).is_ok());
        let err = check_bootlimit(12).unwrap_err();
        assert!(err.to_string().contains("between 1 and 9, not 12"), "{err}");
        assert!(check_bootlimit(0).is_err());
    }
}
