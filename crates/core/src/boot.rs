//! The bootloader contract (`docs/boot-contract.md`) as a value, and the seam to read and write it.

use crate::{Error, SlotId};

/// Default number of trial boots before the bootloader falls back.
pub const DEFAULT_BOOTLIMIT: u32 = 3;

/// The contract's variables. Adapters map them to `rustupdate_slot`, `upgrade_available`,
/// `bootcount` and `bootlimit` and keep any other variables in the environment untouched.
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
}

/// Reads and writes the bootloader environment. `store` must replace all four variables in one
/// durable write: after a power cut the bootloader sees either the old or the new values.
pub trait BootControl {
    fn load(&mut self) -> Result<BootEnv, Error>;
    fn store(&mut self, env: &BootEnv) -> Result<(), Error>;
}

/// What the bootloader scripts do on every boot (GRUB `grub.cfg` and U-Boot `boot.cmd` implement
/// the same rule). Returns the environment after the boot and the slot that boots. Used by the
/// simulated bootloader in tests, and documents the contract in code.
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
}
