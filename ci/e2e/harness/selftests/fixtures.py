"""The selftest's shared fixtures: a console, an environment, a scenario parser, a fleet server's
answers and a layout."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from .. import contract, scenario
from ..layout import Artifact, Firmware, Image, Layout, Partition
from ..scenario import Observed

HERE = Path(__file__).resolve().parents[2]  # ci/e2e
REPO = HERE.parent.parent

CONSOLE = """\
U-Boot 2023.01
E2E: booted slot=b version=v2 uptime=1.20
E2E: action commit
E2E: hook before-commit version=v2 target=b
E2E: result commit rc=0
E2E: status-begin
[INFO rustupdate] interleaved log line
{"booted-slot": "b", "pending": null, "committed": {"version": "v2", "slot": "b"},
 "bootloader": {"upgrade-available": false}}
E2E: status-end rc=0
E2E: end poweroff"""
ENV = contract.committed("b")


def parse(text: str) -> scenario.Scenario:
    return scenario.parse(tomllib.loads(text), "t", Path("t.toml"))


def seen(console: str = CONSOLE, end: str = "poweroff", env: dict[str, str] = ENV,
         holds: Callable[[str, str], bool] = lambda s, v: (s, v) == ("b", "v2"),
         server: dict[str, str] | None = None) -> Observed:
    return Observed(console, end, env, holds, server)


FLEET = '[fleet]\nartifact = "v3.rua"\n'
# GET /api/v1/devices/{id} and GET /api/v1/rollouts/{id} (tools/server/src/api.rs), abridged.
DEVICE = {"device": {"controller_id": "e2e-arm64", "last_seen": 5},
          "actions": [{"id": 1, "rollout_id": 7, "device_id": 1, "state": "failed",
                       "reason": "v3 fell back to slot a after 3 boots", "rollout_name": "r",
                       "artifact_version": "v3",
                       "feedback": [{"execution": "proceeding"}, {"execution": "closed"}]}]}
ROLLOUT = {"id": 7, "state": "paused",
           "pause_reason": "phase 1 of 1: 1 of 1 devices failed (error threshold 1)"}
PANIC_IOAPIC = ("[    1.05] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with "
                "apic=debug and send a report.  Then try booting with the 'noapic' option.")
LAYOUT = Layout(
    arch="arm64", bootloader="uboot", device_type="e2e-arm64", kernel="6.1.0-1-arm64",
    kernel_package="linux-image-6.1.0-1-arm64", disk="/d/disk.img",
    partitions={"boot": Partition(1, 1 << 20, 16 << 20), "rootfs_a": Partition(2, 17 << 20, 96 << 20)},
    env_path=contract.UBOOT_ENV_PATH, uboot_env_size=contract.UBOOT_ENV_SIZE,
    firmware=Firmware(bios="/u-boot.bin"),
    images={"v2": Image("/d/rootfs-v2.ext4", 64 << 20, "ab" * 32)},
    artifacts={"v2.rua": Artifact("v2", "installs")}, client="/c", built="2024-01-01 00:00:00")
