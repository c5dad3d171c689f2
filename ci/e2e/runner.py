#!/usr/bin/env python3
"""Runs the declarative end-to-end scenarios (ci/scenarios/*.toml) under QEMU.

    ci/e2e/runner.py [--arch x86_64|arm64|all] [--scenario NAME|FILE.toml ...] [--jobs N]
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
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import contract, guest, layout as layout_json, qemu, scenario
from harness.disk import Disk, DiskError
from harness.fleet import FleetError, FleetServer, server_section
from harness.httpd import ArtifactServer
from harness.layout import Layout, LayoutError
from harness.scenario import Boot, Observed, Scenario, ScenarioError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Scenario files: the boot and update scenarios, and the fleet scenarios kept with the harness.
SCENARIO_DIRS = (REPO / "ci" / "scenarios",)
MAX_FLEET_BOOTS = 10  # per device of a multi-device fleet scenario
DEFAULT_TIMEOUT = {"x86_64": 120.0, "arm64": 90.0}
# Seed of the random kill delays (kill_delay = [lo, hi]): a new one per run, printed with every
# delay drawn; RUSTUPDATE_E2E_SEED=N repeats a run's delays.
SEED = int(os.environ.get("RUSTUPDATE_E2E_SEED") or random.SystemRandom().randrange(1 << 32))
NARRATE = re.compile(r"^(E2E: (booted|result|hook|health|broken|daemon)|rustupdate: |Kernel panic|"
                     r"\[(INFO|WARN|ERROR) +rustupdate[^\]]*\] (artifact|installing|slot|trial|"
                     r"committed|update|rolling|health|.*interrupted)|"
                     # the daemon's lines, but of its progress only the end
                     r"\[(INFO|WARN|ERROR) +rustupdate[^\]]*(daemon|ddi|server)[^\]]*\] "
                     r"(?!written (?!100%)))")


_LOG = threading.Lock()


def log(msg: str) -> None:
    with _LOG:
        print(msg, flush=True)


def scenario_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in SCENARIO_DIRS:
        for p in sorted(d.glob("*.toml")):
            if p.stem in found:
                raise ScenarioError(f"{p}: a scenario {p.stem} exists already ({found[p.stem]})")
            found[p.stem] = p
    return found


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


# ---------------------------------------------------------------------------------------------
# Boots
# ---------------------------------------------------------------------------------------------

@dataclass
class FleetDevice:
    """One device of a fleet scenario: its controller id, what its token file holds, its disk."""
    controller_id: str
    token: str
    disk: Disk
    rdir: Path


@dataclass
class FleetRun:
    """A fleet scenario's server and rollout, while the scenario runs."""
    server: FleetServer
    rollout_id: int
    spec: scenario.Fleet
    devices: list[FleetDevice]
    until_since: float | None = None  # epoch ms when the shared `until` first held (several devices)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fw_cfg(self, dev: FleetDevice) -> dict[str, str]:
        return {"server": server_section(self.server.guest_url, dev.controller_id,
                                         self.spec.auth, self.spec.poll_interval),
                "token": dev.token}

    def observe(self, dev: FleetDevice) -> dict[str, str]:
        return self.server.observe(dev.controller_id, self.rollout_id)

    def until(self, dev: FleetDevice, want: dict[str, str]) -> Callable[[], bool]:
        """stop_when for a boot: the server shows `want`; with several devices, also the device
        has polled since `want` first held (so it is known to have got nothing afterwards)."""
        def holds() -> bool:
            try:
                if not scenario.server_matches(want, self.observe(dev)):
                    return False
                if len(self.devices) == 1:
                    return True
                with self.lock:
                    if self.until_since is None:
                        self.until_since = time.time() * 1000  # the server's clock is ours
                    since = self.until_since
                seen = self.server.device(dev.controller_id)["device"].get("last_seen") or 0
                return seen > since
            except FleetError as err:
                log(f"      ! fleet server: {err}")
                return False
        return holds


def start_fleet(sc: Scenario, lay: Layout, build: Path, rdir: Path, server_bin: Path) -> FleetRun:
    spec = sc.fleet
    assert spec is not None  # only called for fleet scenarios
    if not server_bin.is_file():
        raise FleetError(f"{server_bin} missing: build tools/server (ci/e2e/run.sh does)")
    server = FleetServer(server_bin, rdir / "server-data", rdir / "server.log", spec.poll_interval)
    server.start([build / "keys" / "e2e.pub.pem"])
    run = FleetRun(server, 0, spec, [])
    if spec.base is not None:
        server.upload(build / lay.arch / "artifacts" / spec.base)
    artifact = server.upload(build / lay.arch / "artifacts" / spec.artifact)
    for n in range(1, spec.devices + 1):
        cid = f"e2e-{lay.arch}" if spec.devices == 1 else f"e2e-{lay.arch}-{n}"
        token = server.add_device(cid, lay.device_type)
        ddir = rdir if spec.devices == 1 else rdir / cid
        ddir.mkdir(parents=True, exist_ok=True)
        run.devices.append(FleetDevice(cid, token if spec.auth == "target" else server.gateway_token,
                                       Disk(lay, ddir).fresh(), ddir))
    rollout = server.create_rollout(f"{spec.artifact} ({sc.name})", artifact, lay.device_type,
                                    spec.phases, spec.error_threshold)
    run.rollout_id = rollout.id
    log(f"  {lay.arch:6s} fleet server {server.url} (guests: {server.guest_url}): rollout "
        f"{rollout.id} of {spec.artifact} to {', '.join(d.controller_id for d in run.devices)}, "
        f"phases {spec.phases}, error threshold {spec.error_threshold}, {spec.auth} token")
    return run


def boot_once(lay: Layout, disk: Disk, boot: Boot, logfile: Path, accel: str,
              extra_fw_cfg: dict[str, str] | None = None,
              stop_when: Callable[[], bool] | None = None) -> qemu.BootResult:
    """One boot of `disk`. A boot whose kernel panicked before the guest's user space ran (see
    guest.panic_before_init: under TCG on a loaded host, e.g. "IO-APIC + timer doesn't work!")
    is an infrastructure failure: the boot partition and OVMF variables are put back as they
    were and the boot is tried once more, logged as an "infrastructure retry"; the result then
    has `infra_retry` set, and the first try's console is kept as boot-NN.infra-retry.log.
    Whether the second try panicked too is the caller's to judge (`infra_errors`)."""
    rules = None
    if boot.cut_after_writes is not None:
        rules = logfile.with_suffix(".blkdebug.conf")
        rules.write_text(qemu.blkdebug_rules(boot.cut_after_writes))
    cmd = qemu.command(lay, disk.path, disk.vars, accel, boot.net, {
        "action": boot.action, "health": boot.health or "", "env": boot.client_env,
        "end": boot.end or "", **(extra_fw_cfg or {})}, rules)
    timeout = boot.timeout or DEFAULT_TIMEOUT[lay.arch]
    before = disk.boot_state()
    res = qemu.run(cmd, logfile, timeout, boot.kill_on, boot.kill_delay, stop_when)
    panic = guest.panic_before_init(res.console)
    if panic is None or qemu.STOP.is_set():
        return res
    first = logfile.with_name(f"{logfile.stem}.infra-retry{logfile.suffix}")
    logfile.replace(first)
    log(f"  {lay.arch:6s} infrastructure retry of {logfile.name}: the guest's kernel panicked "
        f"before its init ran ({panic!r}); the boot area is put back and the boot tried once "
        f"more (first try: {first})")
    disk.restore_boot_state(before)
    res = qemu.run(cmd, logfile, timeout, boot.kill_on, boot.kill_delay, stop_when)
    res.infra_retry = panic
    return res


def infra_errors(res: qemu.BootResult) -> list[str]:
    """An infrastructure retry whose second try panicked before the guest's init too."""
    again = guest.panic_before_init(res.console)
    if res.infra_retry is None or again is None:
        return []
    return [f"infrastructure: the guest's kernel panicked before its init ran on both tries "
            f"({res.infra_retry!r}, then {again!r})"]


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


def concrete(boot: Boot, points: list[str] | None, http_port: int | None,
             rng: random.Random | None = None) -> Boot:
    """The boot as it runs: its power cut numbered, @HTTP@ replaced by the server's URL, a
    random kill delay drawn from `rng`."""
    if boot.kill_delay_range is not None:
        if rng is None:
            raise ScenarioError("a random kill_delay needs the runner's seed")
        lo, hi = boot.kill_delay_range
        boot = dataclasses.replace(boot, kill_delay=round(rng.uniform(lo, hi), 4),
                                   kill_delay_range=None)
    if boot.cut_after_writes_range is not None:
        if rng is None:
            raise ScenarioError("a random cut_after_writes needs the runner's seed")
        boot = dataclasses.replace(boot, cut_after_writes=rng.randint(*boot.cut_after_writes_range),
                                   cut_after_writes_range=None)
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
             narrated: bool, fleet: FleetRun | None = None,
             dev: FleetDevice | None = None, http: ArtifactServer | None = None) -> BootRecord:
    who = f"{lay.arch:6s}" + (f" {dev.controller_id}" if dev and fleet and len(fleet.devices) > 1
                              else "")
    if narrated and boot.note:
        log(f"  {who} boot {n:2d}: {boot.note}")
    if boot.host_wipe:
        disk.wipe_slot(boot.host_wipe)
    if boot.host_modify:
        at = disk.modify_slot(boot.host_modify)
        log(f"  {who} boot {n:2d}: slot {boot.host_modify}: flipped the byte at {at:#x} (a block "
            "of the filler file)")
    if boot.host_env:
        disk.write_env(boot.host_env)
    if boot.host_damage:
        done = disk.damage_env_copies(boot.host_damage)
        log(f"  {who} boot {n:2d}: bootloader environment: "
            + ", ".join(f"copy {i} {how}" for i, how in sorted(done.items()))
            + f" ({', '.join(f'{w.replace(chr(95), chr(32))} {h}' for w, h in boot.host_damage.items())})")
    extra = stop_when = None
    if fleet is not None and dev is not None:
        extra = fleet.fw_cfg(dev)
        if boot.until:
            stop_when = fleet.until(dev, boot.until)
    if http is not None:
        http.throttle(boot.http_throttle)
        http.take_served()  # what an earlier boot's handlers sent late is not this boot's
    res = boot_once(lay, disk, boot, rdir / f"boot-{n:02d}.log", accel, extra, stop_when)
    served = http.take_served() if http is not None else None
    server = None
    if fleet is not None and dev is not None:
        try:
            server = fleet.observe(dev)
        except FleetError as err:
            log(f"      ! fleet server: {err}")
    errors = infra_errors(res)
    try:
        env = disk.read_env()
    except DiskError as err:
        env = {}
        errors.append(f"bootloader environment: {err}")
    if res.rc not in (0, None) and res.end not in ("killed", "timeout"):
        errors.append(f"qemu exited with {res.rc}: {res.console[-300:]}")
    if res.end == "timeout":
        errors.append(f"timed out after {boot.timeout or DEFAULT_TIMEOUT[lay.arch]:.0f} s")
    if boot.until and res.stop_sent_at is None and res.end not in ("reset", "reboot", "killed"):
        errors.append(f"the server never showed {boot.until}")
    errors += scenario.check(boot.expect, Observed(res.console, res.end, env, disk.slot_holds,
                                                   server, served))
    booted = guest.booted(res.console)
    rec = BootRecord(
        boot=n, action=boot.action, booted="/".join(booted) if booted else "-", end=res.end,
        seconds=round(res.duration, 2),
        init_at=_rounded(res.marker_time(guest.BOOTED)),
        commit_at=_rounded(res.marker_time(guest.COMMITTED)),
        env={k: env.get(k) for k in contract.VARS}, errors=errors,
        device=dev.controller_id if dev else None, server=server, http_served=served,
        infra_retry=res.infra_retry)
    st = guest.status(res.console)
    if st:
        rec.situation = st.get("situation")
        lr = st.get("last-result") or {}
        rec.last_result = f"{lr.get('version')} {lr.get('result')}" if lr else None
    e = rec.env
    # One log call per boot: devices of a fleet scenario boot in parallel threads.
    out = [f"  {who} boot {n:2d} {rec.action[:44]:44s} booted {rec.booted:6s} "
           f"end {res.end:8s} {res.duration:6.1f} s  env slot={e[contract.VAR_SLOT]} "
           f"ua={e[contract.VAR_UPGRADE_AVAILABLE]} bc={e[contract.VAR_BOOTCOUNT]}"
           + (f"  [{rec.last_result}]" if rec.last_result else "")
           + (f"  server: {server['action']}" if server else "")
           + ("  http: " + ", ".join(f"{f} {b} B" for f, b in sorted(served.items()))
              if served else "")
           + ("  (infrastructure retry)" if res.infra_retry else "")
           + ("  OK" if not errors else "  FAIL")]
    if narrated:
        out += [f"        {t:6.1f} s  {line.strip()[:110]}" for t, line in res.lines
                if NARRATE.search(line)]
        if server and server["action"] != "null":
            out.append(f"        server: action {server['action']}"
                       + (f" ({server['reason']})" if server["reason"] != "null" else "")
                       + f", rollout {server['rollout']}"
                       + (f" ({server['pause_reason']})" if server["pause_reason"] != "null"
                          else ""))
    out += [f"      ! {err}" for err in errors]
    if errors:
        out.append(f"      console log: {rdir / f'boot-{n:02d}.log'}")
    log("\n".join(out))
    return rec


def _rounded(t: float | None) -> float | None:
    return round(t, 2) if t is not None else None


def reboot_to_commit(boots: list[BootRecord]) -> float | None:
    """Time from the reboot into the new slot to the commit: the trial boot's commit marker,
    counted from the start of its QEMU (which follows the install boot's reboot at once)."""
    found = None
    for prev, cur in itertools.pairwise(boots):
        installed = (prev.action.startswith("install") or "; install" in prev.action) \
            and prev.end == "reboot"
        # The daemon reboots with `reboot -f` from the guest (no end line: "reset") after it
        # armed the other slot.
        installed |= (guest.DAEMON_ACTION in scenario.actions(prev.action) and prev.end == "reset"
                      and prev.env.get(contract.VAR_UPGRADE_AVAILABLE) == "1"
                      and prev.booted[:1] != prev.env.get(contract.VAR_SLOT))
        if installed and cur.commit_at is not None and cur.booted != prev.booted \
                and cur.device == prev.device:
            found = cur.commit_at
    return found


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


def fleet_summary(fleet: FleetRun) -> dict[str, Any]:
    """The rollout and every device's action at the end (summary.json, checks, the recap)."""
    rollout = fleet.server.rollout(fleet.rollout_id)
    devices = {}
    for dev in fleet.devices:
        seen = fleet.observe(dev)
        devices[dev.controller_id] = {"action": seen["action"], "reason": seen["reason"],
                                      "feedbacks": seen["feedbacks"]}
    return {"rollout": rollout["state"], "pause_reason": rollout.get("pause_reason"),
            "phases": rollout.get("phase_percents"), "artifact": fleet.spec.artifact,
            "phase_counts": [{k: ph.get(k) for k in ("percent", "members", "succeeded", "failed",
                                                     "in_progress")}
                             for ph in rollout.get("phases", [])],
            "downloads": rollout.get("downloads"),
            "devices": devices}


def log_fleet(arch: str, doc: dict[str, Any]) -> None:
    log(f"  {arch:6s} rollout of {doc['artifact']} (phases {doc['phases']}): {doc['rollout']}"
        + (f" ({doc['pause_reason']})" if doc.get("pause_reason") else ""))
    downloads = doc.get("downloads") or {}
    if downloads.get("actions"):
        log(f"  {arch:6s}   served: {downloads.get('delta_bytes', 0)} bytes of delta patches, "
            f"{downloads.get('full_bytes', 0)} of full artifacts, "
            f"{downloads.get('fallbacks', 0)} fallbacks")
    for cid, d in doc["devices"].items():
        got = "polled on, never got the release" if d["action"] == "null" else (
            f"action {d['action']}" + (f": {d['reason']}" if d["reason"] != "null" else ""))
        log(f"  {arch:6s}   {cid}: {got}")


# The runner of one scenario on one architecture (run_scenario with that architecture's layout,
# accelerator and fault points); tests pass a fake one.
RunOne = Callable[[Scenario], ScenarioRecord]
# What runs one architecture's chosen scenarios, handing each record to the callback.
ArchWork = Callable[[str, list[Scenario], Callable[[ScenarioRecord], None]], None]


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
    if arch == "x86_64" and (args.accel == "kvm" or (
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


def run_guarded(arch: str, sc: Scenario, run_one: RunOne) -> ScenarioRecord:
    """run_one(sc); an exception that escapes it (a harness bug) becomes the scenario's failed
    record, with the traceback printed, and the architecture's other scenarios still run."""
    try:
        return run_one(sc)
    except Exception as err:  # noqa: BLE001 - the record says FAIL, the traceback is printed
        log(f"--- {arch} {sc.name}: FAIL: unexpected exception in the runner:\n"
            f"{traceback.format_exc()}")
        return ScenarioRecord(arch, sc.name, False, 0, len(sc.boots), 0.0, None,
                              [f"runner: unexpected {type(err).__name__}: {err} "
                               "(traceback in the log)"])


def run_arch(arch: str, mine: list[Scenario], record: Callable[[ScenarioRecord], None],
             prepare: Callable[[str, list[Scenario]], RunOne]) -> None:
    """The ArchWork of a real run: prepare the architecture, then each scenario, guarded."""
    run_one = prepare(arch, mine)
    for sc in mine:
        record(run_guarded(arch, sc, run_one))


@dataclass
class RunOutcome:
    records: list[ScenarioRecord]  # in the order of the architectures, then as recorded
    problems: list[str]  # worker crashes, missing and duplicate records: each fails the run

    @property
    def ok(self) -> bool:
        return bool(self.records) and not self.problems and all(r.ok for r in self.records)


def run_all(arches: tuple[str, ...], chosen: list[Scenario], jobs: int,
            work: ArchWork) -> RunOutcome:
    """work(arch, its chosen scenarios, record) for every architecture (in parallel threads when
    jobs > 1), so that the run cannot pass by accident: an exception escaping a worker is a
    problem (its traceback printed), and so is every chosen scenario of an architecture without
    exactly one record (named)."""
    per: dict[str, list[ScenarioRecord]] = {a: [] for a in arches}
    lock = threading.Lock()

    def one_arch(arch: str) -> None:
        def record(rec: ScenarioRecord) -> None:
            with lock:
                per[arch].append(rec)
        work(arch, [sc for sc in chosen if arch in sc.arches], record)

    crashes = for_each_arch(arches, jobs, one_arch)
    records = [r for a in arches for r in per[a]]
    expected = [(a, sc.name) for a in arches for sc in chosen if a in sc.arches]
    return RunOutcome(records, crashes + record_problems(expected, records))


def record_problems(expected: list[tuple[str, str]], records: list[ScenarioRecord]) -> list[str]:
    """Every (arch, scenario) expected has exactly one record (as often as it was chosen), and
    nothing else has one."""
    want = Counter(expected)
    got = Counter((r.arch, r.scenario) for r in records)
    problems = [f"no record of {a} {name}" + (f" ({n - got[a, name]} of {n} missing)" if n > 1
                                              else "")
                for (a, name), n in want.items() if got[a, name] < n]
    problems += [f"{got[key] - want[key]} more record(s) of {key[0]} {key[1]} than chosen"
                 if key in want else f"a record of {key[0]} {key[1]}, which was not chosen"
                 for key in got if got[key] > want[key]]
    return problems


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

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


def default_server() -> Path:
    """$RUSTUPDATE_E2E_SERVER, else the debug build of tools/server (its own workspace; the
    build ci/server-test.sh makes and run.sh updates)."""
    if os.environ.get("RUSTUPDATE_E2E_SERVER"):
        return Path(os.environ["RUSTUPDATE_E2E_SERVER"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "tools" / "server" / "target")
    return target / "debug" / "rustupdate-server"


def for_each_arch(arches: tuple[str, ...], jobs: int, work: Callable[[str], None]) -> list[str]:
    """work(arch) for every architecture: in parallel threads (one TCG guest per core) when
    jobs > 1, else one after the other. An exception escaping work(arch) does not end the
    others; its traceback is printed at once, and the returned list (empty: none escaped) says
    which architecture's worker died of what: the caller fails the run with it."""
    crashes: list[str] = []
    lock = threading.Lock()

    def guarded(arch: str) -> None:
        try:
            work(arch)
        except BaseException as err:
            log(f"!!! {arch}: the worker died of an unexpected exception (the run fails):\n"
                f"{traceback.format_exc()}")
            with lock:
                crashes.append(f"{arch}: the worker died of {type(err).__name__}: {err}")
            if not isinstance(err, Exception) and threading.current_thread() is \
                    threading.main_thread():
                raise  # SIGTERM/SIGINT (qemu.stop_on_signals) end a sequential run at once

    if jobs > 1 and len(arches) > 1:
        threads = [threading.Thread(target=guarded, args=(a,), name=f"e2e-{a}") for a in arches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for a in arches:
            guarded(a)
    return crashes


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
            log(f"{sc.name:28s} {'ci ' if sc.ci else '   '}{','.join(sc.arches):14s} "
                f"{len(sc.boots):2d} boots  {sc.description}")
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
