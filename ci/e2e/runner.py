#!/usr/bin/env python3
"""Runs the declarative end-to-end scenarios (ci/scenarios/*.toml) under QEMU.

    ci/e2e/runner.py [--arch x86_64|arm64|all] [--scenario NAME|FILE.toml ...] [--jobs N]
                     [--accel auto|tcg|kvm] [--build DIR] [--narrate] [--list]
    ci/e2e/runner.py --recap SINCE     (the demo's recap of summary.json, if written after SINCE)

Each scenario starts from a fresh copy of the pristine disk made by build.py and boots it several
times. Every boot is one QEMU process (-no-reboot: a guest reboot or power-off ends it); the
per-boot action reaches the guest's init through fw_cfg. Between boots the runner reads (and, when
a scenario says so, writes) the bootloader environment inside the disk image with mtools and the
reference tools (grub-editenv, fw_printenv/fw_setenv), and checks the expectations of the boot.
Console logs: <build>/results/<arch>/<scenario>/boot-NN.log; summary: <build>/results/summary.json.

Scenario file format: ci/e2e/README.md. The pieces live in ci/e2e/harness/.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import contract, guest, layout as layout_json, qemu, scenario
from harness.disk import Disk, DiskError
from harness.layout import Layout, LayoutError
from harness.scenario import Boot, Observed, Scenario, ScenarioError

REPO = Path(__file__).resolve().parent.parent.parent
SCENARIOS = REPO / "ci" / "scenarios"
DEFAULT_TIMEOUT = {"x86_64": 120.0, "arm64": 90.0}
NARRATE = re.compile(r"^(E2E: (booted|result|hook|health|broken)|rustupdate: |Kernel panic|"
                     r"\[(INFO|WARN|ERROR) +rustupdate[^\]]*\] (artifact|installing|slot|trial|"
                     r"committed|update|rolling|health|.*interrupted))")


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# What a run records (results/summary.json)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# HTTP server for installs over the network (bounded by the scenario)
# ---------------------------------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


def start_http(directory: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(QuietHandler, directory=str(directory))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


# ---------------------------------------------------------------------------------------------
# Boots
# ---------------------------------------------------------------------------------------------

def boot_once(lay: Layout, disk: Disk, boot: Boot, logfile: Path, accel: str) -> qemu.BootResult:
    cmd = qemu.command(lay, disk.path, disk.vars, accel, boot.net, {
        "action": boot.action, "health": boot.health or "", "env": boot.client_env,
        "end": boot.end or ""})
    timeout = boot.timeout or DEFAULT_TIMEOUT[lay.arch]
    return qemu.run(cmd, logfile, timeout, boot.kill_on, boot.kill_delay)


def trace_install_points(lay: Layout, results: Path, accel: str) -> list[str]:
    """The client's durable-write points during TRACE_ACTION from the pristine disk, in order.

    Their numbers depend on the image (zero runs are not written), so scenarios name them and
    the runner counts them here with RUSTUPDATE_FAULT_TRACE=1 (one boot per architecture)."""
    rdir = results / lay.arch / "fault-trace"
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    disk = Disk(lay, rdir).fresh()
    boot = Boot(action=scenario.TRACE_ACTION, client_env="RUSTUPDATE_FAULT_TRACE=1")
    res = boot_once(lay, disk, boot, rdir / "boot-01.log", accel)
    disk.remove()
    points = guest.fault_trace(res.console)
    if not points or [n for n, _ in points] != list(range(1, len(points) + 1)):
        raise ScenarioError(f"no usable fault-point trace (see {rdir / 'boot-01.log'})")
    (rdir / "points.txt").write_text("".join(f"{n} {name}\n" for n, name in points))
    log(f"--- {lay.arch} fault points of '{scenario.TRACE_ACTION}': {len(points)} ("
        + ", ".join(f"{n} {name}" for n, name in points if name != "image:write") + ")")
    return [name for _, name in points]


def concrete(boot: Boot, points: list[str] | None, http_port: int | None) -> Boot:
    """The boot as it runs: its power cut numbered, @HTTP@ replaced by the server's URL."""
    if isinstance(boot.fault, scenario.FaultPoint):
        if points is None:
            raise ScenarioError("no fault-point trace (see the trace's error above)")
        boot = boot.with_fault(boot.fault.resolve(points), boot.fault.name)
    elif isinstance(boot.fault, scenario.FaultNumber):
        boot = boot.with_fault(boot.fault.number, None)
    if http_port is not None:
        boot = boot.with_http(guest.http_url(http_port))
    return boot


def run_boot(n: int, boot: Boot, lay: Layout, disk: Disk, rdir: Path, accel: str,
             narrated: bool) -> BootRecord:
    if narrated and boot.note:
        log(f"  {lay.arch:6s} boot {n:2d}: {boot.note}")
    if boot.host_wipe:
        disk.wipe_slot(boot.host_wipe)
    if boot.host_env:
        disk.write_env(boot.host_env)
    res = boot_once(lay, disk, boot, rdir / f"boot-{n:02d}.log", accel)
    errors = []
    try:
        env = disk.read_env()
    except DiskError as err:
        env = {}
        errors.append(f"bootloader environment: {err}")
    if res.rc not in (0, None) and res.end not in ("killed", "timeout"):
        errors.append(f"qemu exited with {res.rc}: {res.console[-300:]}")
    if res.end == "timeout":
        errors.append(f"timed out after {boot.timeout or DEFAULT_TIMEOUT[lay.arch]:.0f} s")
    errors += scenario.check(boot.expect, Observed(res.console, res.end, env, disk.slot_holds))
    booted = guest.booted(res.console)
    rec = BootRecord(
        boot=n, action=boot.action, booted="/".join(booted) if booted else "-", end=res.end,
        seconds=round(res.duration, 2),
        init_at=_rounded(res.marker_time(guest.BOOTED)),
        commit_at=_rounded(res.marker_time(guest.COMMITTED)),
        env={k: env.get(k) for k in contract.VARS}, errors=errors)
    st = guest.status(res.console)
    if st:
        rec.situation = st.get("situation")
        lr = st.get("last-result") or {}
        rec.last_result = f"{lr.get('version')} {lr.get('result')}" if lr else None
    e = rec.env
    log(f"  {lay.arch:6s} boot {n:2d} {rec.action[:44]:44s} booted {rec.booted:6s} "
        f"end {res.end:8s} {res.duration:6.1f} s  env slot={e[contract.VAR_SLOT]} "
        f"ua={e[contract.VAR_UPGRADE_AVAILABLE]} bc={e[contract.VAR_BOOTCOUNT]}"
        + (f"  [{rec.last_result}]" if rec.last_result else "")
        + ("  OK" if not errors else "  FAIL"))
    if narrated:
        for t, line in res.lines:
            if NARRATE.search(line):
                log(f"        {t:6.1f} s  {line.strip()[:110]}")
    for err in errors:
        log(f"      ! {err}")
    if errors:
        log(f"      console log: {rdir / f'boot-{n:02d}.log'}")
    return rec


def _rounded(t: float | None) -> float | None:
    return round(t, 2) if t is not None else None


def reboot_to_commit(boots: list[BootRecord]) -> float | None:
    """Time from the reboot into the new slot to the commit: the trial boot's commit marker,
    counted from the start of its QEMU (which follows the install boot's reboot at once)."""
    found = None
    for prev, cur in zip(boots, boots[1:]):
        if (prev.action.startswith("install") or "; install" in prev.action) \
                and prev.end == "reboot" and cur.commit_at is not None and cur.booted != prev.booted:
            found = cur.commit_at
    return found


def run_scenario(sc: Scenario, lay: Layout, build: Path, results: Path, accel: str,
                 narrated: bool = False, points: list[str] | None = None) -> ScenarioRecord:
    rdir = results / lay.arch / sc.name
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    t0 = time.monotonic()
    disk = Disk(lay, rdir).fresh()
    http_srv = http_port = None
    if sc.needs_http:
        http_srv, http_port = start_http(build / lay.arch / "artifacts")
    boots: list[BootRecord] = []
    failures: list[str] = []
    log(f"--- {lay.arch} {sc.name}: {sc.description}")
    try:
        for n, boot in enumerate(sc.boots, start=1):
            if qemu.STOP.is_set():
                failures.append("stopped")
                break
            rec = run_boot(n, concrete(boot, points, http_port), lay, disk, rdir, accel, narrated)
            boots.append(rec)
            failures += [f"boot {n}: {err}" for err in rec.errors]
            if failures:
                break
    except (ScenarioError, DiskError, subprocess.CalledProcessError, OSError) as err:
        failures.append(f"runner: {err}")
        log(f"      ! runner: {err}")
    finally:
        if http_srv is not None:
            http_srv.shutdown()
            http_srv.server_close()
    wall = time.monotonic() - t0
    to_commit = reboot_to_commit(boots)
    ok = not failures
    if ok:
        disk.remove()  # the disk of a passing scenario is not needed any more (logs are kept)
    log(f"--- {lay.arch} {sc.name}: {'PASS' if ok else 'FAIL'} ({len(boots)} boots, {wall:.1f} s"
        + (f", reboot into new slot -> committed {to_commit:.1f} s" if to_commit else "") + ")")
    return ScenarioRecord(lay.arch, sc.name, ok, len(boots), len(sc.boots), round(wall, 1),
                          to_commit, failures, boots)


def run_arch(arch: str, chosen: list[Scenario], args: argparse.Namespace, results: Path,
             out: list[ScenarioRecord]) -> None:
    def broken(why: str) -> None:
        log(f"--- {arch}: {why}")
        out.append(ScenarioRecord(arch, "(build)", False, 0, 0, 0.0, None, [why]))

    path = args.build / arch / "layout.json"
    if not path.exists():
        return broken(f"{path} missing: build first (ci/e2e/run.sh)")
    try:
        lay = layout_json.load(path)
    except (LayoutError, KeyError, TypeError, ValueError) as err:
        return broken(f"{path}: {err}")
    accel = "tcg"
    if arch == "x86_64" and (args.accel == "kvm" or (
            args.accel == "auto" and qemu.kvm_usable(lay, results / arch))):
        accel = "kvm"
        log("--- x86_64: using KVM")
    mine = [sc for sc in chosen if arch in sc.arches]
    points = None
    if any(sc.needs_trace for sc in mine):
        try:
            points = trace_install_points(lay, results, accel)
        except ScenarioError as err:
            log(f"--- {arch}: {err}")
    for sc in mine:
        out.append(run_scenario(sc, lay, args.build, results, accel, args.narrate, points))


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

def print_summary(records: list[ScenarioRecord], wall: float) -> None:
    log("\n=== end-to-end summary ===")
    log(f"{'arch':7s} {'scenario':28s} {'result':6s} {'boots':>5s} {'wall s':>7s} {'s/boot':>6s} "
        f"{'reboot->commit s':>16s}")
    for s in records:
        per_boot = s.wall_seconds / s.boots if s.boots else 0
        rc = s.reboot_to_commit_seconds
        log(f"{s.arch:7s} {s.scenario:28s} {'PASS' if s.ok else 'FAIL':6s} {s.boots:5d} "
            f"{s.wall_seconds:7.1f} {per_boot:6.1f} {(f'{rc:.1f}' if rc else '-'):>16s}")
    passed = sum(1 for s in records if s.ok)
    log(f"total wall time {wall:.1f} s")
    log(f"e2e: {passed} passed, {len(records) - passed} failed")


def recap(summary: Path, since: float) -> int:
    """The demo's closing words: each scenario's description and how it ended."""
    if not summary.exists() or summary.stat().st_mtime < since:
        log("\nno scenario ran (see the errors above)")
        return 1
    log("\n=== what happened ===")
    for run in json.loads(summary.read_text()):
        story = "did not go as expected"
        if run["ok"]:
            story = scenario.load(SCENARIOS / f"{run['scenario']}.toml").description
        last = run["boot_details"][-1] if run.get("boot_details") else {}
        line = (f"{run['arch']:7} {run['scenario']:16} {'PASS' if run['ok'] else 'FAIL'}  {story}; "
                f"{run['boots']} boots in {run['wall_seconds']} s, now running "
                f"{last.get('booted', '?')}")
        if run.get("reboot_to_commit_seconds") is not None:
            line += (f"; downtime (reboot into the new slot -> committed) "
                     f"{run['reboot_to_commit_seconds']} s")
        log(line)
        for failure in run.get("failures", []):
            log(f"        {failure}")
    log("Console logs: build/e2e/results/<arch>/<scenario>/boot-NN.log")
    return 0


def choose(names: list[str], known: dict[str, Scenario]) -> list[Scenario]:
    """Scenarios by name or ad-hoc file (in the order given); every CI scenario when none."""
    if not names:
        return [sc for sc in known.values() if sc.ci]
    chosen = []
    for name in names:
        if name.endswith(".toml") and Path(name).is_file():
            chosen.append(scenario.load(Path(name)))
        elif name in known:
            chosen.append(known[name])
        else:
            raise ScenarioError(f"unknown scenario {name}; known: {', '.join(known)}")
    return chosen


def main() -> int:
    # A terminated runner still kills its QEMU (qemu.run's finally) and stops the HTTP server.
    def stop(signum, _frame):
        qemu.STOP.set()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="all", choices=scenario.ARCHES + ("all",))
    ap.add_argument("--scenario", nargs="*", default=[], help="scenario names (default: every ci one)")
    ap.add_argument("--build", type=Path, default=REPO / "build" / "e2e")
    ap.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"),
                    help="x86_64 guests only; arm64 guests always use TCG")
    ap.add_argument("--jobs", type=int, default=1, help="architectures run in parallel (1 or 2)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--narrate", action="store_true",
                    help="demo mode: print the notes and the telling console lines of every boot")
    ap.add_argument("--recap", type=float, metavar="SINCE",
                    help="print the demo's recap of summary.json if written after SINCE (epoch s)")
    args = ap.parse_args()
    results = args.build / "results"
    if args.recap is not None:
        return recap(results / "summary.json", args.recap)

    try:
        known = {p.stem: scenario.load(p) for p in sorted(SCENARIOS.glob("*.toml"))}
        chosen = choose(args.scenario, known)
    except ScenarioError as err:
        log(f"runner: {err}")
        return 2
    if args.list:
        for sc in known.values():
            log(f"{sc.name:28s} {'ci ' if sc.ci else '   '}{','.join(sc.arches):14s} "
                f"{len(sc.boots):2d} boots  {sc.description}")
        return 0
    arches = scenario.ARCHES if args.arch == "all" else (args.arch,)
    results.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    per: dict[str, list[ScenarioRecord]] = {a: [] for a in arches}
    if args.jobs > 1 and len(arches) > 1:
        threads = [threading.Thread(target=run_arch, args=(a, chosen, args, results, per[a]))
                   for a in arches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for a in arches:
            run_arch(a, chosen, args, results, per[a])
    records = [r for a in arches for r in per[a]]
    (results / "summary.json").write_text(
        json.dumps([dataclasses.asdict(r) for r in records], indent=2) + "\n")
    print_summary(records, time.monotonic() - t0)
    return 0 if records and all(r.ok for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
