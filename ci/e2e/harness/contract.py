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
# The partition with the bootloader environment (systemd-boot: its entries, harness/bls.py).
BOOT_LABEL = {"grub": "esp", "uboot": "boot", "systemd-boot": "esp"}
GRUBENV_PATH = "EFI/BOOT/grubenv"  # on the ESP: copy 0
GRUBENV_REDUND_PATH = "EFI/BOOT/grubenv-redund"  # copy 1
UBOOT_ENV_PATH = "uboot.env"  # on the boot partition: copy 0, libubootenv's redundant format
UBOOT_ENV_REDUND_PATH = "uboot-redund.env"  # copy 1
UBOOT_ENV_SIZE = 0x4000
# Both copies of the environment on the boot partition, per bootloader (docs/boot-contract.md).
ENV_COPIES = {"grub": (GRUBENV_PATH, GRUBENV_REDUND_PATH),
              "uboot": (UBOOT_ENV_PATH, UBOOT_ENV_REDUND_PATH)}
# GRUB copies carry a sequence number (0, 1, 2, cyclic) as their first and their last variable:
# a copy is complete when both match; of two complete copies the one a step ahead is current.
VAR_SEQ = "rustupdate_seq"
VAR_SEQ_END = "rustupdate_seq_end"
SEQ_VALUES = ("0", "1", "2")
# The slot the client last committed, on the data partition, read by the boot scripts when no
# copy of the environment is valid.
COMMITTED_SLOT_RECORD = "rustupdate/committed-slot.env"


def committed(slot: str, bootlimit: int = DEFAULT_BOOTLIMIT) -> dict[str, str]:
    """`BootEnv::committed`: boot `slot`, no trial."""
    return {VAR_SLOT: slot, VAR_UPGRADE_AVAILABLE: "0", VAR_BOOTCOUNT: "0",
            VAR_BOOTLIMIT: str(bootlimit)}
