//! The two root filesystem slots.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum SlotId {
    A,
    B,
}

impl SlotId {
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }

    /// The value used in the bootloader environment and on the kernel command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotId::A => "a",
            SlotId::B => "b",
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SlotId {
    type Err = String;

    /// Accepts `a`/`b` in either case (GRUB setups often write `A`/`B`).
    fn from_str(text: &str) -> Result<SlotId, String> {
        match text.trim() {
            "a" | "A" => Ok(SlotId::A),
            "b" | "B" => Ok(SlotId::B),
            other => Err(format!("{other:?} is not a slot (expected a or b)")),
        }
    }
}

/// Finds `rustupdate.slot=<a|b>` on a kernel command line.
pub fn booted_slot_from_cmdline(cmdline: &str) -> Option<SlotId> {
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("rustupdate.slot="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        assert_eq!(
            booted_slot_from_cmdline("console=ttyS0 rustupdate.slot=b quiet"),
            Some(SlotId::B)
        );
        assert_eq!(booted_slot_from_cmdline("rustupdate.slot=x"), None);
        assert_eq!(booted_slot_from_cmdline("root=/dev/sda2"), None);
        assert_eq!(SlotId::A.other(), SlotId::B);
    }
}
