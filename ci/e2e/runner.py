#!/usr/bin/env python3
"""Runs the declarative end-to-end scenarios (ci/scenarios/*.toml) under QEMU.

    ci/e2e/runner.py [--arch x86_64|arm64|x86_64-sdboot|all] [--scenario NAME|FILE.toml ...] [--jobs N]
                     [--accel auto|tcg|kvm] [--build DIR] [--server BIN] [--narrate] [--list]
    ci/e2e/runner.py --recap SINCE     (the demo's recap of summary.json, if written after SINCE)
    ci/e2e/runner.py --needs-server [--arch A] [--scenario ...]   (exit 0: a fleet scenario is chosen)

Each scenario starts from a fresh copy of the pristine disk made by build.py and boots it several
times. Every boot is one QEMU process (-no-reboot: a guest reboot or power-off ends it); the
per-boot action reaches the guest's init through fw_cfg. Between boots the runner reads (and, when
a scenario says so, writes) the bootloader environment inside the disk image with mtools and the
reference tools (grub-editenv, fw_printenv/fw_setenv), and checks the expectations of the boot.
Console logs: <build>/results/<arch>/<scenario>/boot-NN.log; summary: <build>/results/summary.json.

Fleet scenarios (a [fleet] table) start a rustupdate-server on a loopback port with a fresh data
directory (<results>/<arch>/<scenario>/server-data, log server.log), upload the artifact, register
the device(s) and start the rollout before the first boot; the guest's daemon polls it at
10.0.2.2. A boot with `until` ends when the server shows that state (the runner types the stop
line). With several devices, each boots its one [[boot]] again after every reboot, all at once.

Scenario file format: ci/e2e/README.md. The pieces live in ci/e2e/harness/.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from harness import layout as layout_json, qemu, scenario
from harness.boots import concrete, reboot_to_commit, run_boot, trace_install_points
from harness.disk import Disk, DiskError
from harness.fleet_run import FleetDevice, FleetRun, fleet_summary, log_fleet, start_fleet
from harness.fleet_server import FleetError
from harness.httpd import ArtifactServer
from harness.layout import Layout, LayoutError
from harness.records import BootRecord, ScenarioRecord, print_summary
from harness.runlog import log
from harness.runs import RunOne, run_all, run_arch
from harness.scenario import Scenario, ScenarioError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Scenario files: the boot and update scenarios, and the fleet scenarios kept with the harness.
SCENARIO_DIRS = (REPO / "ci" / "scenarios",)
MAX_FLEET_BOOTS = 10  # per device of a multi-device fleet scenario
# Seed of the random kill delays (kill_delay = [lo, hi]): a new one per run, printed with every
# delay drawn; RUSTUPDATE_E2E_SEED=N repeats a run's delays.
SEED = int(os.environ.get("RUSTUPDATE_E2E_SEED") or random.SystemRandom().randrange(1 << 32))


def scenario_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in SCENARIO_DIRS:
        for p in sorted(d.glob("*.toml")):
            if p.stem in found:
                raise ScenarioError(f"{p}: a scenario {p.stem} exists already ({found[p.stem]})")
            found[p.stem] = p
    return found


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------

def run_scenario(sc: Scenario, lay: Layout, build: Path, results: Path, accel: str,
                 narrated: bool = False, points: list[str] | None = None,
                 server_bin: Path | None = None) -> ScenarioRecord:
    rdir = results / lay.arch / sc.name
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    t0 = time.monotonic()
    http: ArtifactServer | None = None
    fleet: FleetRun | None = None
    disks: list[Disk] = []
    boots: list[BootRecord] = []
    failures: list[str] = []
    fleet_doc = None
    log(f"--- {lay.arch} {sc.name}: {sc.description}")
    try:
        if sc.fleet is not None:
            fleet = start_fleet(sc, lay, build, rdir, server_bin or Path("rustupdate-server"))
            disks = [d.disk for d in fleet.devices]
        else:
            disks = [Disk(lay, rdir).fresh()]
        if sc.needs_http:
            http = ArtifactServer(build / lay.arch / "artifacts")
        if fleet is not None and len(fleet.devices) > 1:
            boots, failures = run_devices(sc, lay, fleet, accel, narrated, points)
        else:
            dev = fleet.devices[0] if fleet else None
            rng = random.Random(f"{SEED}:{lay.arch}:{sc.name}")
            for n, planned in enumerate(sc.boots, start=1):
                if qemu.STOP.is_set():
                    failures.append("stopped")
                    break
                boot = concrete(planned, points, http.port if http else None, rng)
                if boot.kill_on and boot.kill_delay:
                    log(f"  {lay.arch:6s} boot {n:2d}: kill {boot.kill_delay:.4f} s after "
                        f"/{boot.kill_on}/ (seed {SEED})")
                if boot.cut_after_writes is not None:
                    log(f"  {lay.arch:6s} boot {n:2d}: power cut after {boot.cut_after_writes} "
                        f"write request(s) (seed {SEED})")
                rec = run_boot(n, boot, lay, disks[0], rdir, accel, narrated, fleet, dev, http)
                boots.append(rec)
                failures += [f"boot {n}: {err}" for err in rec.errors]
                if failures:
                    break
        if fleet is not None:
            fleet_doc = fleet_summary(fleet)
            if fleet.spec.expect and len(fleet.devices) > 1:
                errors = scenario.check_fleet(fleet.spec.expect, fleet_doc)
                failures += [f"fleet: {err}" for err in errors]
                for err in errors:
                    log(f"      ! fleet: {err}")
    except (ScenarioError, DiskError, FleetError, subprocess.CalledProcessError, OSError) as err:
        failures.append(f"runner: {err}")
        log(f"      ! runner: {err}")
    except Exception as err:  # noqa: BLE001 - a harness bug: the scenario fails with it
        failures.append(f"runner: unexpected {type(err).__name__}: {err} (traceback above)")
        log(f"      ! runner: unexpected exception in {lay.arch} {sc.name}:\n"
            f"{traceback.format_exc()}")
    finally:
        if http is not None:
            http.stop()
        if fleet is not None:
            fleet.server.stop()
    wall = time.monotonic() - t0
    to_commit = reboot_to_commit(boots)
    ok = not failures
    if ok:
        for disk in disks:
            disk.remove()  # the disk of a passing scenario is not needed any more (logs are kept)
    if fleet_doc is not None and (len(fleet_doc["devices"]) > 1
                                  or (fleet_doc.get("downloads") or {}).get("delta_actions")):
        log_fleet(lay.arch, fleet_doc)
    log(f"--- {lay.arch} {sc.name}: {'PASS' if ok else 'FAIL'} ({len(boots)} boots, {wall:.1f} s"
        + (f", reboot into new slot -> committed {to_commit:.1f} s" if to_commit else "") + ")")
    return ScenarioRecord(lay.arch, sc.name, ok, len(boots), len(sc.boots), round(wall, 1),
                          to_commit, failures, boots, fleet_doc)


def run_devices(sc: Scenario, lay: Layout, fleet: FleetRun, accel: str, narrated: bool,
                points: list[str] | None) -> tuple[list[BootRecord], list[str]]:
    """Several devices at once, as a fleet lives: each boots the scenario's one [[boot]], and
    boots it again whenever the guest rebooted (an install, a panic, a rollback), until the
    server shows `until` and the device polled once more (MAX_FLEET_BOOTS at most)."""
    boot = concrete(sc.boots[0], points, None)
    records: dict[str, list[BootRecord]] = {d.controller_id: [] for d in fleet.devices}
    failures: list[str] = []
    lock = threading.Lock()

    def device_life(dev: FleetDevice) -> None:
        try:
            boot_again(dev)
        except Exception as err:  # noqa: BLE001 - the scenario fails with it, not unseen
            log(f"      ! {dev.controller_id}: unexpected exception:\n{traceback.format_exc()}")
            with lock:
                failures.append(f"{dev.controller_id}: unexpected {type(err).__name__}: {err}")

    def boot_again(dev: FleetDevice) -> None:
        for n in range(1, MAX_FLEET_BOOTS + 1):
            if qemu.STOP.is_set():
                return
            this = boot if n == 1 else dataclasses.replace(boot, note="rebooted, boots again")
            rec = run_boot(n, this, lay, dev.disk, dev.rdir, accel, narrated, fleet, dev)
            with lock:
                records[dev.controller_id].append(rec)
                failures.extend(f"{dev.controller_id} boot {n}: {e}" for e in rec.errors)
            if rec.errors or rec.end not in ("reset", "reboot"):
                return  # stopped by the host (or failed)
        with lock:
            failures.append(f"{dev.controller_id}: still rebooting after {MAX_FLEET_BOOTS} boots")

    threads = [threading.Thread(target=device_life, args=(d,)) for d in fleet.devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for d in fleet.devices for r in records[d.controller_id]], failures






def prepare_arch(arch: str, mine: list[Scenario], args: argparse.Namespace,
                 results: Path) -> RunOne:
    """The architecture's layout, accelerator and fault-point trace, and a RunOne for them; when
    it is not built, a RunOne that fails every scenario with the reason."""
    def broken(why: str) -> RunOne:
        log(f"--- {arch}: {why}")
        return lambda sc: ScenarioRecord(arch, sc.name, False, 0, len(sc.boots), 0.0, None,
                                         [f"not run: {why}"])

    path = args.build / arch / "layout.json"
    if not path.exists():
        return broken(f"{path} missing: build first (ci/e2e/run.sh)")
    try:
        lay = layout_json.load(path)
    except (LayoutError, KeyError, TypeError, ValueError) as err:
        return broken(f"{path}: {err}")
    accel = "tcg"
    if scenario.MACHINE[arch] == "x86_64" and (args.accel == "kvm" or (
            args.accel == "auto" and qemu.kvm_usable(lay, results / arch))):
        accel = "kvm"
        log("--- x86_64: using KVM")
    points = None
    if any(sc.needs_trace for sc in mine):
        try:
            points = trace_install_points(lay, results, accel)
        except ScenarioError as err:
            log(f"--- {arch}: {err}")

    def run_one(sc: Scenario) -> ScenarioRecord:
        # The scenario's pristine disk: disk.img (busybox guests) or layout.guest_disks[disk].
        sc_lay = lay if sc.disk == "busybox" else dataclasses.replace(
            lay, disk=lay.guest_disks[sc.disk])
        return run_scenario(sc, sc_lay, args.build, results, accel, args.narrate, points,
                            args.server)
    return run_one




# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------



def recap(summary: Path, since: float) -> int:
    """The demo's closing words: each scenario's description and how it ended."""
    if not summary.exists() or summary.stat().st_mtime < since:
        log("\nno scenario ran (see the errors above)")
        return 1
    files = scenario_files()
    log("\n=== what happened ===")
    for run in json.loads(summary.read_text()):
        story = "did not go as expected"
        if run["ok"]:
            story = scenario.load(files[run["scenario"]]).description
        last = run["boot_details"][-1] if run.get("boot_details") else {}
        fleet = run.get("fleet")
        several = bool(fleet) and len(fleet["devices"]) > 1
        line = (f"{run['arch']:7} {run['scenario']:21} {'PASS' if run['ok'] else 'FAIL'}  {story}; "
                f"{run['boots']} boots in {run['wall_seconds']} s"
                + ("" if several else f", now running {last.get('booted', '?')}"))
        if run.get("reboot_to_commit_seconds") is not None:
            line += (f"; downtime (reboot into the new slot -> committed) "
                     f"{run['reboot_to_commit_seconds']} s")
        log(line)
        if several:
            log_fleet(run["arch"], fleet)
        elif fleet:
            for cid, d in fleet["devices"].items():
                log(f"        server: {cid} action {d['action']}"
                    + (f" ({d['reason']})" if d["reason"] != "null" else ""))
            downloads = fleet.get("downloads") or {}
            if downloads.get("actions"):
                log(f"        server served {downloads.get('delta_bytes', 0)} bytes of delta "
                    f"patches and {downloads.get('full_bytes', 0)} of full artifacts"
                    + (f"; fallbacks: {downloads.get('fallback_reasons')}"
                       if downloads.get("fallbacks") else ""))
        for failure in run.get("failures", []):
            log(f"        {failure}")
    log("Console logs: build/e2e/results/<arch>/<scenario>/boot-NN.log")
    return 0


def choose(names: list[str], known: dict[str, Scenario]) -> list[Scenario]:
    """Scenarios by name or ad-hoc file (in the order given); every CI scenario when none, on
    the arches it runs on in CI."""
    if not names:
        return [dataclasses.replace(sc, arches=sc.ci_arches) for sc in known.values() if sc.ci]
    chosen = []
    for name in names:
        if name.endswith(".toml") and Path(name).is_file():
            chosen.append(scenario.load(Path(name)))
        elif name in known:
            chosen.append(known[name])
        else:
            raise ScenarioError(f"unknown scenario {name}; known: {', '.join(known)}")
    return chosen


def default_server() -> Path:
    """$RUSTUPDATE_E2E_SERVER, else the debug build of tools/server (its own workspace; the
    build ci/server-test.sh makes and run.sh updates)."""
    if os.environ.get("RUSTUPDATE_E2E_SERVER"):
        return Path(os.environ["RUSTUPDATE_E2E_SERVER"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "tools" / "server" / "target")
    return target / "debug" / "rustupdate-server"




def main() -> int:
    # A terminated run still kills its QEMU (qemu.run's finally) and stops the HTTP server.
    qemu.stop_on_signals()
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
    ap.add_argument("--server", type=Path, default=default_server(),
                    help="rustupdate-server binary for the fleet scenarios "
                         "(default: $RUSTUPDATE_E2E_SERVER or the server workspace's debug build)")
    ap.add_argument("--needs-server", action="store_true",
                    help="exit 0 if a chosen scenario needs the fleet server, 1 if none does")
    args = ap.parse_args()
    results = args.build / "results"
    if args.recap is not None:
        return recap(results / "summary.json", args.recap)

    try:
        known = {name: scenario.load(p) for name, p in scenario_files().items()}
        chosen = choose(args.scenario, known)
    except ScenarioError as err:
        log(f"runner: {err}")
        return 2
    if args.list:
        for sc in known.values():
            on_demand = [a for a in sc.arches if a not in sc.ci_arches]
            log(f"{sc.name:28s} {'ci ' if sc.ci else '   '}{','.join(sc.arches):14s} "
                + (f"(on demand: {','.join(on_demand)}) " if sc.ci and on_demand else "")
                + f"{len(sc.boots):2d} boots  {sc.description}")
        return 0
    arches = scenario.ARCHES if args.arch == "all" else (args.arch,)
    if args.needs_server:
        return 0 if any(sc.fleet and set(sc.arches) & set(arches) for sc in chosen) else 1
    results.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    outcome = run_all(arches, chosen, args.jobs, functools.partial(
        run_arch, prepare=lambda a, mine: prepare_arch(a, mine, args, results)))
    (results / "summary.json").write_text(
        json.dumps([dataclasses.asdict(r) for r in outcome.records], indent=2) + "\n")
    print_summary(outcome.records, outcome.problems, time.monotonic() - t0)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
