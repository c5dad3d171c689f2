"""`layout.json`: what build.py made for one architecture and what the runner needs of it.

A pure codec (`Layout.to_json` / `Layout.from_json`, strict: a missing or unknown key is an
error, so build.py and the runner cannot drift apart) with one-line `load`/`save` around it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import contract


class LayoutError(Exception):
    pass


@dataclass(frozen=True)
class Partition:
    number: int
    offset: int  # bytes from the start of the disk
    size: int


@dataclass(frozen=True)
class Image:
    """A root file system image (rootfs-vN.ext4) as written into a slot."""
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Artifact:
    version: str
    expect: str  # what the device should do with it, in words


@dataclass(frozen=True)
class Firmware:
    """OVMF code and variable store (x86_64) or the U-Boot binary (arm64)."""
    code: str | None = None
    vars: str | None = None
    bios: str | None = None


@dataclass(frozen=True)
class Layout:
    arch: str
    bootloader: str  # "grub" | "uboot" | "systemd-boot"
    device_type: str
    kernel: str
    kernel_package: str
    disk: str
    partitions: dict[str, Partition]  # by GPT label
    env_path: str  # the bootloader environment file on the boot partition
    uboot_env_size: int
    firmware: Firmware
    images: dict[str, Image]  # by version
    artifacts: dict[str, Artifact]  # by file name
    client: str
    built: str
    # Other pristine disks by the scenario key `disk` (the default, "busybox", is `disk`):
    # "systemd" = disk-systemd.img, the systemd guests (ci/e2e/systemd_rootfs.py).
    guest_disks: dict[str, str] = dataclasses.field(default_factory=dict)
    # systemd-boot: the SHA-256 of each version's initrd.img (every release has its own, so that
    # arming a trial really copies kernel files onto the ESP); empty for the other chains.
    initrds: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def boot_partition(self) -> Partition:
        return self.partitions[contract.BOOT_LABEL[self.bootloader]]

    def slot_partition(self, slot: str) -> Partition:
        return self.partitions[contract.slot_label(slot)]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Layout:
        doc = json.loads(text)
        fields = _fields(cls, doc, "layout")
        fields["partitions"] = {k: Partition(**_fields(Partition, v, f"partition {k}"))
                                for k, v in doc["partitions"].items()}
        fields["firmware"] = Firmware(**_fields(Firmware, doc["firmware"], "firmware", partial=True))
        fields["images"] = {k: Image(**_fields(Image, v, f"image {k}"))
                            for k, v in doc["images"].items()}
        fields["artifacts"] = {k: Artifact(**_fields(Artifact, v, f"artifact {k}"))
                               for k, v in doc["artifacts"].items()}
        return cls(**fields)


def _fields(cls: Any, doc: dict[str, Any], what: str, partial: bool = False) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown, missing = set(doc) - names, names - set(doc)
    if unknown or (missing and not partial):
        raise LayoutError(f"{what}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
                          " (rebuild with ci/e2e/run.sh)")
    return dict(doc)


def load(path: Path) -> Layout:
    return Layout.from_json(path.read_text())


def save(layout: Layout, path: Path) -> None:
    path.write_text(layout.to_json())
