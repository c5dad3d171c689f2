"""What a run records (results/summary.json): a record per boot and per scenario, and the
summary printed at the end of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .runlog import log


@dataclass
class BootRecord:
    boot: int
    action: str
    booted: str  # "<slot>/<version>" or "-"
    end: str
    seconds: float
    init_at: float | None  # "E2E: booted", seconds after QEMU started
    commit_at: float | None  # a successful commit, seconds after QEMU started
    env: dict[str, str | None]
    errors: list[str]
    situation: str | None = None  # from `status --json`
    last_result: str | None = None
    device: str | None = None  # the controller id, in fleet scenarios
    server: dict[str, str] | None = None  # what the fleet server showed after the boot
    http_served: dict[str, int] | None = None  # body bytes per file the HTTP server sent
    # The first try's kernel panic when this boot was tried again (an infrastructure retry).
    infra_retry: str | None = None


@dataclass
class ScenarioRecord:
    arch: str
    scenario: str
    ok: bool
    boots: int
    planned_boots: int
    wall_seconds: float
    reboot_to_commit_seconds: float | None
    failures: list[str]
    boot_details: list[BootRecord] = field(default_factory=list)
    fleet: dict[str, Any] | None = None  # fleet scenarios: the rollout and each device at the end



def print_summary(records: list[ScenarioRecord], problems: list[str], wall: float) -> None:
    log("\n=== end-to-end summary ===")
    log(f"{'arch':7s} {'scenario':28s} {'result':6s} {'boots':>5s} {'wall s':>7s} {'s/boot':>6s} "
        f"{'reboot->commit s':>16s}")
    for s in records:
        per_boot = s.wall_seconds / s.boots if s.boots else 0
        rc = s.reboot_to_commit_seconds
        log(f"{s.arch:7s} {s.scenario:28s} {'PASS' if s.ok else 'FAIL':6s} {s.boots:5d} "
            f"{s.wall_seconds:7.1f} {per_boot:6.1f} {(f'{rc:.1f}' if rc else '-'):>16s}")
    passed = sum(1 for s in records if s.ok)
    retries = [(s, b) for s in records for b in s.boot_details if b.infra_retry]
    log(f"total wall time {wall:.1f} s")
    for s, b in retries:
        log(f"infrastructure retry: {s.arch} {s.scenario} boot {b.boot}: {b.infra_retry}")
    for problem in problems:
        log(f"RUN FAILED: {problem}")
    if not records:
        log("RUN FAILED: no scenario ran")
    if retries:
        log(f"{len(retries)} infrastructure retr{'y' if len(retries) == 1 else 'ies'} (see above)")
    # The closing line, in the plain form CI reads: each harness problem counts as a failure.
    log(f"e2e: {passed} passed, {len(records) - passed + len(problems)} failed")
