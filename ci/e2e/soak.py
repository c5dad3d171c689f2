#!/usr/bin/env python3
"""Randomized power-cut soak: QEMU is killed (SIGKILL, a real power cut) at random instants of
updates, and the device must converge after every cut and still deploy an update at the end.

    ci/e2e/soak.py [--arch x86_64|arm64|x86_64-sdboot|all] [--seed N] [--cuts M] [--jobs N]
                   [--window PHASE=SECONDS ...] [--accel auto|tcg|kvm] [--build DIR] [--verbose]

The run is a function of the seed: the seed gives every cut its phase and a fraction u in [0, 1)
of that phase's window (the plan is printed first), so `--seed N --cuts M` repeats a run; the
windows are measured at the start of each run (printed; `--window` pins them, for an exact repeat
on a slower or faster host). Without --seed a fresh seed is drawn (printed first and in every
failure), so that CI covers new cut points over time. Without --cuts, the CI size of the
architecture (CI_CUTS).

A run, per architecture, on a fresh copy of the pristine disk:
  0. measure: install the other good version, reboot into the trial, commit. The install's
     duration (`E2E: action install` to its result), the trial boot's time to the bootloader's
     `rustupdate: booting slot` line (printed after it saved the boot count) plus a quarter of
     the way on to the init (systemd-boot prints nothing: OVMF's `BdsDxe: starting` plus half of
     the way on, past its rename of the entry), and the commit's duration are the windows of the
     three phases.
  1. per cut, from a converged device (committed in the slot it boots, nothing pending), one of
     install  install the version the inactive slot does not hold; kill u * window after
              `E2E: action install`
     boot     install it (no cut); kill the trial boot u * window after QEMU started: firmware,
              the bootloader's boot-count save, the start of the kernel
     commit   install it, boot the trial; kill u * window after `E2E: action commit`
     then boot with `commit` (no cut) until the device has converged (MAX_RECOVERY_BOOTS).
  2. install the other version again, without a cut: the trial boot must commit it.

Checked after every boot (a violation stops the run, exit 1, with the seed and the cycle):
  - the slot whose kernel the bootloader loaded (its `rustupdate: booting slot` line) holds a
    complete good image: the sha256 of the slot's first bytes is that of the v1 or v2 image;
  - a boot that was not killed reached the guest's init (`E2E: booted`), and no kernel panicked.
    A panic before the guest's user space ran (e.g. "IO-APIC + timer doesn't work!", an x86_64
    TCG artefact on a loaded host) is an infrastructure failure: harness.boots.boot_once puts the boot
    area back and boots once more ("infrastructure retry", counted in the summary); a second
    such panic fails the run as an INFRASTRUCTURE FAILURE, naming what the slot holds;
  - the booted slot is the one the boot contract picks from the environment before the boot
    (the trial slot, or the other one once bootcount would exceed bootlimit or after the boot
    script's own "falling back"), and it holds the complete image of the version it reports
    (Disk.slot_holds);
  - the environment reads (Disk.read_env; systemd-boot: the contract's values of the entry files,
    harness/bls.py) with sane contract values; the slot it boots next holds a complete good image,
    and during a trial so does the fallback slot; systemd-boot: those slots' kernel files on the
    ESP (rustupdate/<slot>/) are their own release's (each release has its own initrd);
  - bootcount: outside a trial 0; during a trial it never goes down, goes up by at most one per
    boot, by exactly one in a boot that reached the init; a trial ends only by a commit (same
    slot) or a fallback (other slot), both with bootcount 0; a trial is armed only by an install
    of this boot, into the slot it installed, holding the complete new image;
  - converged (what a cycle must end in): powered off normally, `status --json` with `pending`
    null, `committed.slot` the booted slot and `committed.version` its version, a `last-result`
    of CONVERGED_RESULTS, the environment not on trial and on the booted slot;
  - the cycle's outcome follows the environment after the cut: the new image if the environment
    already pointed at the new slot (armed or committed), else the old one; with health checks
    that pass and one cut per cycle a trial cannot run out of boots, so only a fallback the boot
    script reports may end an armed trial on the old image (shown as "old (fell back)").

Not here: cuts at the client's named durable writes (the power-cut-* scenarios), broken images
and failing health checks (broken-update, health-rollback), more than one cut per cycle.

Output: a line per cut, a summary; <build>/results/<arch>/soak/summary.json and a console log per
boot (NNNN-cCCC-<role>.log) in the same directory (the disk is kept when the run fails).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import contract, guest, layout as layout_json, qemu
from harness.boots import boot_once
from harness.disk import Disk, DiskError
from harness.layout import Layout, LayoutError
from harness.runlog import log
from harness.runs import for_each_arch
from harness.scenario import ARCHES, MACHINE, Boot
from harness.soak_contract import (
    ACTION_COMMIT,
    ACTION_INSTALL,
    CONVERGED_RESULTS,
    GOOD_VERSIONS,
    PHASES,
    Cut,
    InfraFailure,
    Violation,
    check_boot,
    check_boot_files,
    check_env_values,
    env_text,
    other,
    parse_windows,
    plan,
    slot_version,
)
from runner import REPO

# The CI size per architecture: about 90 s of arm64 and 2 minutes of x86_64 (see README); the
# systemd-boot chain runs after arm64 in CI, in the x86_64 soak's shadow.
CI_CUTS = {"x86_64": 4, "arm64": 8, "x86_64-sdboot": 2}
MAX_RECOVERY_BOOTS = 6  # after a cut: counting boots, a fallback, a rollback reboot fit easily
# The boot phase's window: QEMU start to a console line, and a part of the way from there to the
# init. Both boot scripts print "rustupdate: booting slot" right after they saved the counted
# boot (and before the kernel): a quarter of the way on covers loading and starting the kernel
# (U-Boot's save itself takes ~0.25 s before the line). systemd-boot prints nothing: OVMF's line
# as it starts it, and half of the way on, which covers systemd-boot's rename of the entry and
# loading the kernel from the ESP (OVMF's line at ~3.3 s, the kernel's start at ~6.7 s, the init
# at ~10 s under TCG at load ~1).
BOOT_WINDOW = {"grub": ("rustupdate: booting slot", 0.25),
               "uboot": ("rustupdate: booting slot", 0.25),
               "systemd-boot": ("BdsDxe: starting", 0.5)}
ANSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")


# ---------------------------------------------------------------------------------------------
# One device's soak
# ---------------------------------------------------------------------------------------------

@dataclass
class BootSeen:
    """One boot as summary.json records it."""
    n: int
    cycle: int
    role: str  # measure-install, measure-trial, cut, install, recover, final-install, final-trial
    action: str
    booted: str  # "<slot>/<version>" or "-"
    end: str
    seconds: float
    env: str  # after the boot
    last_result: str | None
    killed_after: float | None = None  # seconds after the cut's anchor
    log: str = ""
    # The first try's kernel panic when the boot was tried again (an infrastructure retry).
    infra_retry: str | None = None


@dataclass
class Done:
    """A boot that passed the checks, for the cycle logic."""
    res: qemu.BootResult
    seen: BootSeen
    booted: tuple[str, str] | None
    env: dict[str, str]
    status: dict[str, Any] | None

    def converged_status(self) -> dict[str, Any]:
        """The status of a boot that converged (Soak.converged said so: it printed one)."""
        if self.status is None:
            raise Violation("no status JSON on the console")
        return self.status

    def converged_booted(self) -> tuple[str, str]:
        """The (slot, version) of a boot that converged (it reached the init)."""
        if self.booted is None:
            raise Violation("the boot never reached the guest's init")
        return self.booted


@dataclass
class CycleSeen:
    cycle: int
    phase: str
    fraction: float
    window: float
    delay: float
    killed_after: float | None  # measured on the console; None: the boot ended before the kill
    hit: str  # the last console line before the kill
    from_: str  # "<slot>/<version>" before the cycle
    to: str  # "<slot>/<version>" installed
    env_after_cut: str
    slot_after_cut: str  # what the target slot held after the cut: old, partial or new
    outcome: str  # new | old
    last_result: str | None
    recovery_boots: int


class Soak:
    def __init__(self, lay: Layout, rdir: Path, accel: str, seed: int, verbose: bool):
        self.lay, self.rdir, self.accel, self.seed, self.verbose = lay, rdir, accel, seed, verbose
        self.disk = Disk(lay, rdir).fresh()
        self.cycle = 0
        self.fell_back = False  # the bootloader gave up on a trial in this cycle
        self.boots: list[BootSeen] = []
        self._holds: dict[str, str | None] = {}
        self.env = self._read_env("the pristine disk")
        check_env_values(self.env, "the pristine disk")
        self.versions = {name: a.version for name, a in lay.artifacts.items()}
        for v in GOOD_VERSIONS:
            if self.versions.get(f"{v}.rua") != v or v not in lay.images:
                raise Violation(f"no {v}.rua / {v} image in {lay.arch}'s layout.json: rebuild "
                                "(ci/e2e/run.sh, or ci/e2e/build.py)")

    # -- slots and environment ------------------------------------------------------------------

    def holds(self, slot: str) -> str | None:
        """The good version whose complete image the slot holds, None for anything else. Cached:
        only an install writes a slot, and `boot` forgets its target after one."""
        if slot not in self._holds:
            self._holds[slot] = next((v for v in GOOD_VERSIONS if self.disk.slot_holds(slot, v)),
                                     None)
        return self._holds[slot]

    def _read_env(self, when: str) -> dict[str, str]:
        try:
            return self.disk.read_env()
        except DiskError as err:
            raise Violation(f"the bootloader environment cannot be read after {when}: {err}") \
                from None

    # -- a boot and its checks ------------------------------------------------------------------

    def boot(self, role: str, action: str, kill_on: str | None = None,
             kill_delay: float = 0.0) -> Done:
        n = len(self.boots) + 1
        logfile = self.rdir / f"{n:04d}-c{self.cycle:03d}-{role}.log"
        before = self.env
        res = boot_once(self.lay, self.disk, Boot(action=action, kill_on=kill_on,
                                                  kill_delay=kill_delay), logfile, self.accel)
        booted = guest.booted(res.console)
        if booted and ACTION_INSTALL in res.console:
            self._holds.pop(other(booted[0]), None)  # the install's target was written
        status = guest.status(res.console) if res.end not in ("killed", "cut") else None
        lr = (status or {}).get("last-result") or {}
        seen = BootSeen(n, self.cycle, role, action, "/".join(booted) if booted else "-", res.end,
                        round(res.duration, 2), "?",
                        f"{lr.get('version')} {lr.get('result')}" if lr else None,
                        log=logfile.name, infra_retry=res.infra_retry)
        self.boots.append(seen)
        try:
            if qemu.STOP.is_set():
                raise Violation("stopped")
            after = self._read_env(f"boot {n}")
            seen.env = env_text(after)
            self.fell_back |= check_boot(before, after, res, booted, action,
                                         self._installing(action), self.holds)
            if self.disk.esp is not None:
                check_boot_files(after, self.holds, self.disk.esp_holds)
        except Violation as err:
            raise type(err)(f"boot {n} ({role}, {action!r}, ended {res.end}, booted "
                            f"{seen.booted}, environment {env_text(before)} -> {seen.env}): "
                            f"{err}; console log {logfile}") from None
        self.env = after
        if self.verbose:
            log(f"  {self.lay.arch:6s}   boot {n:4d} c{self.cycle:03d} {role:13s} "
                f"{action[:36]:36s} "
                f"booted {seen.booted:5s} end {res.end:8s} {res.duration:5.1f} s  env "
                f"{env_text(after)}" + (f"  [{seen.last_result}]" if seen.last_result else ""))
        return Done(res, seen, booted, after, status)

    def _installing(self, action: str) -> str | None:
        if not action.startswith("install "):
            return None
        return self.versions[action.split()[-1].rsplit("/", 1)[-1]]

    def converged(self, done: Done) -> str | None:
        """Why the device has not converged after this boot (None: it has)."""
        if done.res.end != "poweroff" or done.booted is None:
            return f"the boot ended {done.res.end}"
        st = done.status
        if st is None:
            return "no status JSON on the console"
        slot, version = done.booted
        committed = st.get("committed") or {}
        result = (st.get("last-result") or {}).get("result")
        if st.get("pending") is not None:
            return f"pending {st['pending'].get('stage')}"
        if committed.get("slot") != slot or committed.get("version") != version:
            return (f"committed {committed.get('slot')}/{committed.get('version')}, "
                    f"booted {slot}/{version}")
        if result not in CONVERGED_RESULTS:
            return f"last-result {result!r}"
        if done.env[contract.VAR_UPGRADE_AVAILABLE] != "0" or done.env[contract.VAR_SLOT] != slot:
            return f"environment {env_text(done.env)}"
        return None

    def recover(self, limit: int = MAX_RECOVERY_BOOTS) -> tuple[Done, int]:
        for k in range(1, limit + 1):
            done = self.boot("recover", "commit")
            if self.converged(done) is None:
                return done, k
        raise Violation(f"not converged after {limit} boots: {self.converged(done)}")

    # -- the run --------------------------------------------------------------------------------

    def target(self, booted: tuple[str, str]) -> tuple[str, str]:
        """The inactive slot and the good version it does not hold (the other version than the
        booted one when it holds neither), so every install rewrites the slot."""
        slot = other(booted[0])
        there = self.holds(slot)
        version = next(v for v in GOOD_VERSIONS if v != (there or booted[1]))
        return slot, version

    def install_and_trial(self, role: str, booted: tuple[str, str]) -> tuple[Done, Done]:
        slot, version = self.target(booted)
        inst = self.boot(f"{role}-install", f"install /data/artifacts/{version}.rua")
        if inst.res.end != "reboot" or not inst.env[contract.VAR_UPGRADE_AVAILABLE] == "1":
            raise Violation(f"the install of {version} did not arm a trial (ended {inst.res.end})")
        trial = self.boot(f"{role}-trial", "commit")
        why = self.converged(trial)
        if why or trial.booted != (slot, version) or \
                (trial.converged_status()["last-result"] or {}).get("result") != "committed":
            raise Violation(f"the trial of {slot}/{version} did not commit: {why or trial.booted}")
        return inst, trial

    def measure(self, pinned: dict[str, float]) -> dict[str, float]:
        """Cycle 0: an update without a cut; its timings are the phases' windows."""
        inst, trial = self.install_and_trial("measure", ("a", "v1"))
        t_install = _between(inst.res, ACTION_INSTALL, "E2E: result install")
        t_commit = _between(trial.res, ACTION_COMMIT, "E2E: result commit")
        marker, past = BOOT_WINDOW[self.lay.bootloader]
        saved = trial.res.marker_time(marker)
        init = trial.res.marker_time(guest.BOOTED)
        if saved is None or init is None:
            raise Violation(f"cannot measure: {marker!r} or {guest.BOOTED!r} not on the "
                            "trial's console")
        t_boot = saved + past * (init - saved)
        measured = {"install": t_install, "boot": t_boot, "commit": t_commit}
        return {p: round(pinned.get(p, measured[p]), 2) for p in PHASES}

    def run_cut(self, cut: Cut, windows: dict[str, float], booted: tuple[str, str]) -> CycleSeen:
        self.cycle = cut.cycle
        self.fell_back = False
        slot, version = self.target(booted)
        artifact = f"/data/artifacts/{version}.rua"
        window = windows[cut.phase]
        delay = round(cut.fraction * window, 3)
        if cut.phase == "install":
            anchor = ACTION_INSTALL
            done = self.boot("cut", f"install {artifact}", re.escape(anchor), delay)
        else:
            inst = self.boot("install", f"install {artifact}")
            if inst.res.end != "reboot" or inst.env[contract.VAR_UPGRADE_AVAILABLE] != "1":
                raise Violation(f"cycle {cut.cycle}: the install of {version} did not arm a trial")
            anchor = ACTION_COMMIT if cut.phase == "commit" else ""
            done = self.boot("cut", "commit", re.escape(anchor) if anchor else "^", delay)
        res = done.res
        killed_after = hit = None
        if res.killed_at is not None:
            start = res.marker_time(anchor) if anchor else 0.0
            killed_after = round(res.killed_at - start, 3) if start is not None else None
            hit = _last_line(res, res.killed_at) or "(no complete console line yet)"
            done.seen.killed_after = killed_after
        headed_new = self.env[contract.VAR_SLOT] == slot
        env_after_cut = env_text(self.env)
        held = self.holds(slot)
        slot_after_cut = "new" if held == version else "partial" if held is None else "old"
        last, k = (done, 0) if self.converged(done) is None else self.recover()
        outcome = {(slot, version): "new", booted: "old"}.get(last.converged_booted())
        # Health checks pass and one cut costs a trial at most one count, so a trial the
        # environment armed must commit, unless the bootloader gave up on it (allowed, shown).
        expected = "new" if headed_new and not self.fell_back else "old"
        if outcome != expected:
            image = f"{slot}/{version}" if expected == "new" else "/".join(booted)
            raise Violation(f"cycle {cut.cycle}: ended on {'/'.join(last.converged_booted())}, "
                            f"expected the "
                            f"{expected} image ({image}) from the environment after the cut "
                            f"({env_after_cut})" + (" and a fallback" if self.fell_back else ""))
        lr = last.converged_status().get("last-result") or {}
        return CycleSeen(cut.cycle, cut.phase, cut.fraction, window, delay, killed_after,
                         hit or "(not killed: the boot ended first)", "/".join(booted),
                         f"{slot}/{version}", env_after_cut, slot_after_cut,
                         outcome + (" (fell back)" if self.fell_back else ""),
                         f"{lr.get('version')} {lr.get('result')}", k)


def _between(res: qemu.BootResult, start: str, end: str) -> float:
    a, b = res.marker_time(start), res.marker_time(end)
    if a is None or b is None:
        raise Violation(f"cannot measure: {start!r} or {end!r} not on the console")
    return b - a


def _last_line(res: qemu.BootResult, t: float) -> str:
    text = ""
    for when, raw in res.lines:
        if when > t:
            break
        line = ANSI.sub("", raw).strip()
        if line:
            text = line
    return text[:72]


# ---------------------------------------------------------------------------------------------
# Per architecture
# ---------------------------------------------------------------------------------------------

def soak_arch(arch: str, args: argparse.Namespace, out: dict[str, dict[str, Any]]) -> None:
    t0 = time.monotonic()
    rdir = args.build / "results" / arch / "soak"
    cuts = plan(args.seed, args.cuts if args.cuts is not None else CI_CUTS[arch])
    doc: dict[str, Any] = {"arch": arch, "seed": args.seed, "cuts": len(cuts), "ok": False, "failure": None}
    out[arch] = doc
    soak = None
    try:
        lay = layout_json.load(args.build / arch / "layout.json")
    except (OSError, LayoutError, KeyError, TypeError, ValueError) as err:
        doc["failure"] = f"{args.build / arch / 'layout.json'}: {err} (build first: ci/e2e/run.sh)"
        log(f"--- {arch} soak: FAIL: {doc['failure']}")
        return
    accel = "tcg"
    if MACHINE[arch] == "x86_64" and (args.accel == "kvm" or (
            args.accel == "auto" and qemu.kvm_usable(lay, rdir.parent))):
        accel = "kvm"
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    rerun = f"ci/e2e/soak.py --arch {arch} --seed {args.seed} --cuts {len(cuts)}"
    log(f"--- {arch} soak: seed {args.seed}, {len(cuts)} cuts: "
        + " ".join(f"{c.cycle}:{c.phase}@{c.fraction:.3f}" for c in cuts))
    cycles: list[CycleSeen] = []
    try:
        soak = Soak(lay, rdir, accel, args.seed, args.verbose)
        windows = soak.measure(args.window)
        doc["windows"] = windows
        rerun += "".join(f" --window {p}={w}" for p, w in windows.items())
        log(f"  {arch:6s} windows (s): " + ", ".join(
            f"{p} {w}{' (pinned)' if p in args.window else ''}" for p, w in windows.items())
            + f"; to repeat: {rerun}")
        booted = slot_version(soak.boots[-1].booted)
        for cut in cuts:
            c = soak.run_cut(cut, windows, booted)
            cycles.append(c)
            booted = slot_version(c.to if c.outcome == "new" else c.from_)
            after = (f"killed {c.killed_after:.2f} s after "
                     f"{'QEMU start' if c.phase == 'boot' else 'the action'}: {c.hit!r}"
                     if c.killed_after is not None else c.hit)
            log(f"  {arch:6s} seed {args.seed} cut {c.cycle:3d}/{len(cuts)} {c.phase:7s} "
                f"u={c.fraction:.3f} delay {c.delay:5.2f} s of {c.window:.2f}: {after}; env "
                f"{c.env_after_cut}, slot {c.to[0]} {c.slot_after_cut}; {c.recovery_boots} more "
                f"boot(s) -> {c.outcome} "
                f"({'/'.join(booted)}, {c.last_result})")
        soak.cycle = len(cuts) + 1
        _, trial = soak.install_and_trial("final", booted)
        log(f"  {arch:6s} final update without a cut: committed {trial.seen.booted}")
        doc["ok"] = True
    except Violation as err:
        cycle = soak.cycle if soak else 0
        doc["failure"] = f"seed {args.seed} cycle {cycle}: {err}"
        doc["infrastructure_failure"] = isinstance(err, InfraFailure)
        what = "INFRASTRUCTURE FAILURE" if isinstance(err, InfraFailure) else "VIOLATION"
        log(f"--- {arch} soak: {what} (seed {args.seed}, cycle {cycle}; repeat: {rerun}):\n"
            f"      {err}")
    except (DiskError, OSError, subprocess.CalledProcessError) as err:
        doc["failure"] = f"seed {args.seed}: harness: {err}"
        log(f"--- {arch} soak: harness error (seed {args.seed}; repeat: {rerun}): {err}")
    wall = time.monotonic() - t0
    boots = soak.boots if soak else []
    retries = [b for b in boots if b.infra_retry]
    for b in retries:
        log(f"  {arch:6s} infrastructure retry: boot {b.n} ({b.log}): {b.infra_retry}")
    per_phase: dict[str, collections.Counter[str]] = {p: collections.Counter() for p in PHASES}
    for c in cycles:
        per_phase[c.phase]["cuts"] += 1
        per_phase[c.phase][c.outcome] += 1
        per_phase[c.phase]["not killed" if c.killed_after is None else "killed"] += 1
    doc.update({
        "wall_seconds": round(wall, 1),
        "boots": len(boots),
        "infra_retries": [{"boot": b.n, "log": b.log, "panic": b.infra_retry} for b in retries],
        "phases": {p: dict(v) for p, v in per_phase.items()},
        "outcomes": dict(collections.Counter(c.outcome for c in cycles)),
        "slot_after_cut": dict(collections.Counter(c.slot_after_cut for c in cycles)),
        "last_results": dict(collections.Counter(c.last_result for c in cycles)),
        "recovery_boots": dict(collections.Counter(str(c.recovery_boots) for c in cycles)),
        "repeat": rerun,
        "cycles": [dataclasses.asdict(c) for c in cycles],
        "boot_details": [dataclasses.asdict(b) for b in boots],
    })
    (rdir / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    if soak and doc["ok"]:
        soak.disk.remove()
    log(f"--- {arch} soak: {'PASS' if doc['ok'] else 'FAIL'}: {len(cycles)} of {len(cuts)} cuts ("
        + ", ".join(f"{p} {per_phase[p]['cuts']}" for p in PHASES) + "), outcomes "
        + (", ".join(f"{k} {v}" for k, v in sorted(doc["outcomes"].items())) or "-")
        + f", {len(boots)} boots"
        + (f" ({len(retries)} infrastructure retr{'y' if len(retries) == 1 else 'ies'})"
           if retries else "")
        + f", seed {args.seed}, {wall:.1f} s; {rdir / 'summary.json'}")


def main() -> int:
    qemu.stop_on_signals()
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="all", choices=ARCHES + ("all",))
    ap.add_argument("--seed", type=int,
                    help="the run's seed (default: a fresh one, printed; this repeats a run)")
    ap.add_argument("--cuts", type=int, help=f"power cuts per architecture (default: {CI_CUTS})")
    ap.add_argument("--jobs", type=int, default=1, help="architectures in parallel (1 or 2)")
    ap.add_argument("--window", action="append", default=[], metavar="PHASE=SECONDS",
                    help="pin a phase's window instead of measuring it")
    ap.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"))
    ap.add_argument("--build", type=Path, default=REPO / "build" / "e2e")
    ap.add_argument("--verbose", action="store_true", help="a line per boot")
    args = ap.parse_args()
    if args.seed is None:
        # A fresh seed per run, so that CI covers new cut points over time; printed first and in
        # every failure, and --seed repeats the run.
        args.seed = random.SystemRandom().randrange(1 << 32)
        log(f"soak: seed {args.seed} (fresh; --seed {args.seed} repeats this run)")
    else:
        log(f"soak: seed {args.seed} (given)")
    args.window = parse_windows(args.window)
    if args.cuts is not None and args.cuts < 0:
        ap.error("--cuts must be >= 0")
    arches = ARCHES if args.arch == "all" else (args.arch,)
    out: dict[str, dict[str, Any]] = {}
    crashes = for_each_arch(arches, args.jobs, lambda a: soak_arch(a, args, out))
    for crash in crashes:
        log(f"soak: FAILED: {crash} (seed {args.seed})")
    for a in arches:
        if a not in out:
            log(f"soak: FAILED: no result for {a} (seed {args.seed})")
    return 0 if not crashes and all(out.get(a, {}).get("ok") for a in arches) else 1


if __name__ == "__main__":
    sys.exit(main())
