"""The boots of a scenario: one QEMU boot of a disk with the infrastructure retry, the boot as
it runs (power cut numbered, URL filled in, kill delay drawn), one scenario boot with its host
actions, checks and log lines, the fault-point trace, and the reboot-to-commit time."""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from . import contract, guest, qemu, scenario
from .disk import Disk, DiskError
from .fleet_run import FleetDevice, FleetRun
from .fleet_server import FleetError
from .httpd import ArtifactServer
from .layout import Layout
from .records import BootRecord
from .runlog import log
from .scenario import Boot, Observed, ScenarioError

DEFAULT_TIMEOUT = {"x86_64": 120.0, "arm64": 90.0}  # by QEMU machine (scenario.MACHINE)
NARRATE = re.compile(r"^(E2E: (booted|result|hook|health|broken|daemon)|rustupdate: |Kernel panic|"
                     r"\[(INFO|WARN|ERROR) +rustupdate[^\]]*\] (artifact|installing|slot|trial|"
                     r"committed|update|rolling|health|.*interrupted)|"
                     # the daemon's lines, but of its progress only the end
                     r"\[(INFO|WARN|ERROR) +rustupdate[^\]]*(daemon|ddi|server)[^\]]*\] "
                     r"(?!written (?!100%)))")


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
    timeout = boot.timeout or DEFAULT_TIMEOUT[scenario.MACHINE[lay.arch]]
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
        errors.append(f"timed out after "
                      f"{boot.timeout or DEFAULT_TIMEOUT[scenario.MACHINE[lay.arch]]:.0f} s")
    if boot.until and res.stop_sent_at is None and res.end not in ("reset", "reboot", "killed"):
        errors.append(f"the server never showed {boot.until}")
    entries = None
    if disk.esp is not None:
        try:
            entries = disk.entry_files()
        except DiskError as err:
            errors.append(f"entry files: {err}")
    errors += scenario.check(boot.expect, Observed(res.console, res.end, env, disk.slot_holds,
                                                   server, served, entries,
                                                   disk.esp_holds if disk.esp else None))
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
           + (f"  entries {' '.join(n.removeprefix('rustupdate-') for n in entries)}"
              if entries else "")
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
