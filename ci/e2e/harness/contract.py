"""The boot contract's names, for the e2e harness (build.py, the runner, the scenario checks).

It mirrors the Rust contract and changes with it: docs/boot-contract.md, crates/core/src/boot.rs
(the VAR_* names, DEFAULT_BOOTLIMIT, BootEnv::committed) and crates/core/src/slot.rs
(rustupdate.slot=); selftest.py fails when the names drift apart. The boot scripts themselves
are the layer's templates, rendered by build.py.
"""

VAR_SLOT = "rustupdate_slot"
VAR_UPGRADE_AVAILABLE = "upgrade_available"
VAR_BOOTCOUNT = "bootcount"
VAR_BOOTLIMIT = "bootlimit"
VARS = (VAR_SLOT, VAR_UPGRADE_AVAILABLE, VAR_BOOTCOUNT, VAR_BOOTLIMIT)

SLOTS = ("a", "b")
DEFAULT_BOOTLIMIT = 3
CMDLINE_SLOT = "rustupdate.slot="  # the slot the bootloader actually booted


def slot_label(slot: str) -> str:
    """GPT partition label of a slot (root=PARTLABEL=...)."""
    return f"rootfs_{slot}"


DATA_LABEL = "data"
BOOT_LABEL = {"grub": "esp", "uboot": "boot"}  # the partition with the bootloader environment
GRUBENV_PATH = "EFI/BOOT/grubenv"  # on the ESP
UBOOT_ENV_PATH = "uboot.env"  # on the boot partition, mkenvimage format
UBOOT_ENV_SIZE = 0x4000


def committed(slot: str, bootlimit: int = DEFAULT_BOOTLIMIT) -> dict[str, str]:
    """`BootEnv::committed`: boot `slot`, no trial."""
    return {VAR_SLOT: slot, VAR_UPGRADE_AVAILABLE: "0", VAR_BOOTCOUNT: "0",
            VAR_BOOTLIMIT: str(bootlimit)}
