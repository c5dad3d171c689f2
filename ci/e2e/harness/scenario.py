"""Scenario files (ci/scenarios/*.toml) as typed data, and the one way a boot's expectations
are checked. The file format is documented in ci/e2e/README.md.

`parse` and `check` are pure (no files, no processes); `load` reads a file. Everything is
validated when a scenario is loaded, so a typo fails `runner.py --list` rather than a boot
minutes into a run: unknown keys, environment variables outside the boot contract, slots other
than a/b, ends the guest cannot report, kill_on patterns that do not compile, a daemon without
a fleet server, server states the server does not have.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import bls, contract, guest
from .fleet_server import AUTH_MODES

# A TOML table or JSON object as decoded: checked key by key where it is read.
Table = dict[str, Any]

# The boot chains (build.py's ARCHES): x86_64 = OVMF + GRUB, arm64 = U-Boot, x86_64-sdboot =
# OVMF + systemd-boot (its boot counting by entry file names). A scenario without `arches` runs
# on DEFAULT_ARCHES; the systemd-boot chain runs only the scenarios that name it.
ARCHES = ("x86_64", "arm64", "x86_64-sdboot")
DEFAULT_ARCHES = ("x86_64", "arm64")
# The QEMU machine of each chain (qemu.machine, the default timeouts, KVM).
MACHINE = {"x86_64": "x86_64", "arm64": "arm64", "x86_64-sdboot": "x86_64"}
SDBOOT_ARCHES = ("x86_64-sdboot",)  # the chains with entry files (expect.entries, boot_files)
SENT_ENDS = ("poweroff", "reboot", "cut")  # what a boot tells the guest's init to do at the end
# What ended a boot, as seen by the runner: the init's end line, or "killed" (kill_on), or
# "reset" (the guest rebooted or panicked without an end line).
SEEN_ENDS = SENT_ENDS + ("killed", "reset")
HEALTH_MODES = ("fail", "hang", "unit-fail")  # unit-fail: systemd guests only (see DISKS)
DAMAGE_WHICH = ("in_use", "not_in_use")  # host_damage: which copy of the environment ...
DAMAGE_HOW = ("corrupt", "delete")  # ... and what happens to it
# The pristine disk a scenario starts from (`disk`): the busybox guests (disk.img), or the
# systemd guests (disk-systemd.img: systemd as PID 1 runs the shipped units; the commit is
# rustupdate-commit.service's, so their agent knows only SYSTEMD_ACTIONS; health "unit-fail"
# makes a unit fail for the shipped 20-no-failed-units check).
DISKS = ("busybox", "systemd")
SYSTEMD_ACTIONS = ("install", "idle", "status", "sleep")
# The busybox guests' actions (guest/init's run_action; `trust` runs `rustupdate trust show`).
BUSYBOX_ACTIONS = ("idle", "commit", "rollback", "guard", "trust", "install", guest.DAEMON_ACTION,
                   "status", "sleep")
# The fleet server's names (docs/server.md, crates/rollout): what `until` and `expect.server`
# may name. `reason`, `pause_reason` and `delta_fallback` are compared as substrings, the others
# exactly. `download` is what the server served for the action (harness.fleet_server.download_kind).
ACTION_STATES = ("scheduled", "running", "downloaded", "succeeded", "failed", "cancel-requested",
                 "canceled", "null")  # "null": the device has no action of the rollout
ROLLOUT_STATES = ("created", "running", "paused", "finished", "canceled")
SERVER_KEYS = ("action", "reason", "feedbacks", "rollout", "pause_reason", "download",
               "delta_fallback")
SUBSTRING_KEYS = ("reason", "pause_reason", "delta_fallback")
UNTIL_KEYS = ("action", "rollout")
# The install whose durable-write points `fault = "NAME[#K]"` refers to (traced once per run).
TRACE_ACTION = "install /data/artifacts/v2.rua"


class ScenarioError(Exception):
    pass


@dataclass(frozen=True)
class FaultPoint:
    """`fault = "NAME[#K]"`: the K-th (from 1; negative: from the end) point NAME of the traced
    TRACE_ACTION; its number is known only after the trace."""
    name: str
    occurrence: int = 1

    def resolve(self, points: list[str]) -> int:
        hits = [n for n, p in enumerate(points, start=1) if p == self.name]
        k = self.occurrence
        if not hits or k == 0 or abs(k) > len(hits):
            raise ScenarioError(f"fault point {self.name}#{k} not in the trace "
                                f"({', '.join(sorted(set(points)))})")
        return hits[k - 1] if k > 0 else hits[k]


@dataclass(frozen=True)
class FaultNumber:
    """`fault = N`: the N-th durable write of the boot's client commands (commit and rollback
    points do not depend on the image, so scenarios may number them directly)."""
    number: int


@dataclass(frozen=True)
class Expect:
    """`[boot.expect]`. Every key is optional; values are compared as text ("null" for a status
    key that is missing or null)."""
    slot: str | None = None  # from "E2E: booted slot="
    version: str | None = None  # from "E2E: booted ... version="
    end: str | None = None  # one of SEEN_ENDS
    markers: tuple[str, ...] = ()  # substrings that must be on the console
    absent: tuple[str, ...] = ()  # substrings that must not be
    env: dict[str, str] = field(default_factory=dict)  # contract variables after the boot
    # contract variables that may have either of several values after the boot (a power cut at
    # a random instant: the bootloader's save happened or not)
    env_in: dict[str, tuple[str, ...]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # dotted key of `status --json`
    # dotted key of `status --json` -> a substring of its value (a reason, e.g. "revoked key")
    status_has: dict[str, str] = field(default_factory=dict)
    slot_image: dict[str, str] = field(default_factory=dict)  # slot -> version it holds exactly
    server: dict[str, str] = field(default_factory=dict)  # SERVER_KEYS, after the boot
    # body bytes the runner's HTTP server sent of a file during the boot: at most / at least
    http_max: dict[str, int] = field(default_factory=dict)
    http_min: dict[str, int] = field(default_factory=dict)
    # systemd-boot chains: the rustupdate entry files on the ESP after the boot, exactly (any
    # order), e.g. ("rustupdate-a.conf", "rustupdate-b+2-1.conf")
    entries: tuple[str, ...] = ()
    # systemd-boot chains: slot -> the version whose initrd rustupdate/<slot>/ on the ESP holds
    boot_files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetExpect:
    """`[fleet.expect]` of a multi-device scenario, checked at its end: the rollout's state and
    pause reason (substring), how many devices ended with each action state ("null": got no
    action), and a substring every failed action's reason has."""
    rollout: str | None = None
    pause_reason: str | None = None
    actions: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class Fleet:
    """`[fleet]`: a rustupdate-server on the host for the scenario. Before the first boot the
    runner uploads `base` (a release devices run: the server builds delta patches from it),
    `artifact` and `patch` (a patch of `artifact` a release pipeline made, uploaded as such),
    registers the device(s) and starts a rollout of `artifact` to them."""
    artifact: str  # a file of build/e2e/<arch>/artifacts
    base: str | None = None
    patch: str | None = None
    phases: str = "100"
    error_threshold: str = "1"
    auth: str = "target"  # TargetToken of the registered device, or the tenant's GatewayToken
    poll_interval: int = 2  # the server's config.polling.sleep, seconds
    devices: int = 1  # more than one: devices boot concurrently until `until` (see Scenario)
    expect: FleetExpect | None = None


@dataclass(frozen=True)
class Boot:
    """One `[[boot]]`: what the host does before the boot, what the guest is told, what is
    expected. `repeat` is expanded by `parse`."""
    note: str = ""
    action: str = "idle"  # ';'-separated guest actions; @HTTP@ = the runner's HTTP server
    net: bool = False
    health: str | None = None  # one of HEALTH_MODES
    client_env: str = ""  # "NAME=VALUE ..." for the client
    end: str | None = None  # one of SENT_ENDS (default: the init's own choice)
    fault: FaultPoint | FaultNumber | None = None  # a power cut there; end defaults to "cut"
    kill_on: str | None = None  # regex on the console: kill QEMU ...
    kill_delay: float = 0.0  # ... this many seconds after it appears
    # kill_delay = [lo, hi]: a random delay, uniform in [lo, hi], drawn per run from the
    # runner's seed (printed; RUSTUPDATE_E2E_SEED repeats a run)
    kill_delay_range: tuple[float, float] | None = None
    # a power cut after this many write requests of the boot reach the disk (QEMU blkdebug: later
    # ones fail); needs kill_on, which ends the boot. [lo, hi]: a random count (seeded as above)
    cut_after_writes: int | None = None
    cut_after_writes_range: tuple[int, int] | None = None
    host_env: dict[str, str] = field(default_factory=dict)  # written into the image before
    # copies of the bootloader environment destroyed before the boot: {"in_use" | "not_in_use":
    # "corrupt" | "delete"} (the copy in use is the one the boot contract's rule picks)
    host_damage: dict[str, str] = field(default_factory=dict)
    host_wipe: str | None = None  # slot whose start is zeroed before the boot
    # slot in which one byte of the filler file's data is flipped before the boot (a modified
    # delta base; Disk.modify_slot)
    host_modify: str | None = None
    # files of the runner's HTTP server sent at this many bytes per second during the boot
    http_throttle: dict[str, int] = field(default_factory=dict)
    timeout: float | None = None  # seconds; None: the architecture's default
    until: dict[str, str] = field(default_factory=dict)  # server state that stops the daemon
    expect: Expect = Expect()

    @property
    def runs_daemon(self) -> bool:
        return guest.DAEMON_ACTION in actions(self.action)

    def with_fault(self, number: int, name: str | None) -> Boot:
        """The boot with its power cut set up: the client stops at point `number`, the guest
        cuts the power, and the client's message about it must be on the console."""
        return dataclasses.replace(
            self, fault=None, end=self.end or "cut",
            client_env=f"{self.client_env} RUSTUPDATE_FAULT_AFTER={number}".strip(),
            expect=dataclasses.replace(
                self.expect, markers=self.expect.markers + (guest.fault_marker(number, name),)))

    def with_http(self, url: str) -> Boot:
        """The boot with @HTTP@ in its action, markers and absent lines replaced by the server's
        URL."""
        def sub(text: str) -> str:
            return text.replace(guest.HTTP_PLACEHOLDER, url)
        return dataclasses.replace(
            self, action=sub(self.action),
            expect=dataclasses.replace(self.expect, markers=tuple(map(sub, self.expect.markers)),
                                       absent=tuple(map(sub, self.expect.absent))))


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    arches: tuple[str, ...]
    boots: tuple[Boot, ...]
    ci_arches: tuple[str, ...]  # where it is part of the default (CI) set; empty: on demand only
    fleet: Fleet | None = None
    disk: str = "busybox"  # one of DISKS

    @property
    def ci(self) -> bool:
        return bool(self.ci_arches)

    @property
    def needs_trace(self) -> bool:
        return any(isinstance(b.fault, FaultPoint) for b in self.boots)

    @property
    def needs_http(self) -> bool:
        return any(b.net for b in self.boots) and self.fleet is None


def actions(action: str) -> list[str]:
    """The command words of a boot's `;`-separated actions."""
    return [a.split()[0] for a in action.split(";") if a.strip()]


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

class _Table:
    """A TOML table whose keys are taken one by one; leftovers are unknown keys."""

    def __init__(self, doc: Any, where: str):
        if not isinstance(doc, dict):
            raise ScenarioError(f"{where}: expected a table")
        self.doc, self.where, self.left = doc, where, set(doc)

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = None,
             choices: Collection[Any] | None = None) -> Any:
        if key not in self.doc:
            return default
        self.left.discard(key)
        value = self.doc[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ScenarioError(f"{self.where}: {key} = {value!r} has the wrong type")
        if choices is not None and value not in choices:
            raise ScenarioError(f"{self.where}: {key} = {value!r}, expected one of {list(choices)}")
        return value

    def texts(self, key: str, keys: Collection[str] | None = None,
              values: Collection[str] | None = None) -> dict[str, str]:
        """A table of scalars, as text (TOML's true/1 become "true"/"1")."""
        table = self.take(key, dict, {})
        out = {}
        for k, v in table.items():
            if keys is not None and k not in keys:
                raise ScenarioError(f"{self.where}: {key}.{k}: expected one of {list(keys)}")
            if isinstance(v, (dict, list)):
                raise ScenarioError(f"{self.where}: {key}.{k} is not a scalar")
            out[k] = as_text(v)
            if values is not None and out[k] not in values:
                raise ScenarioError(f"{self.where}: {key}.{k} = {v!r}, expected one of {list(values)}")
        return out

    def byte_counts(self, key: str) -> dict[str, int]:
        """A table of file names of the runner's HTTP server (artifacts/) to byte counts."""
        table = self.take(key, dict, {})
        for k, v in table.items():
            if not re.fullmatch(r"[\w.-]+", k) or k.startswith("."):
                raise ScenarioError(f"{self.where}: {key}.{k}: a file name of the artifacts")
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ScenarioError(f"{self.where}: {key}.{k} = {v!r}: a count of bytes")
        return dict(table)

    def strings(self, key: str) -> tuple[str, ...]:
        items = self.take(key, list, [])
        if not all(isinstance(s, str) for s in items):
            raise ScenarioError(f"{self.where}: {key} must be a list of strings")
        return tuple(items)

    def done(self) -> None:
        if self.left:
            raise ScenarioError(f"{self.where}: unknown keys {sorted(self.left)}")


def as_text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def _fault(spec: int | str | None) -> FaultPoint | FaultNumber | None:
    if spec is None or isinstance(spec, int):
        return None if spec is None else FaultNumber(spec)
    name, _, k = spec.partition("#")
    return FaultPoint(name, int(k) if k else 1)


def _expect(doc: Table, where: str) -> Expect:
    t = _Table(doc, f"{where}: expect")
    exp = Expect(
        slot=t.take("slot", str, choices=contract.SLOTS),
        version=t.take("version", str),
        end=t.take("end", str, choices=SEEN_ENDS),
        markers=t.strings("markers"),
        absent=t.strings("absent"),
        env=t.texts("env", keys=contract.VARS),
        env_in=_env_in(t.take("env_in", dict, {}), where),
        status=t.texts("status"),
        status_has=t.texts("status_has"),
        slot_image=t.texts("slot_image", keys=contract.SLOTS),
        server=t.texts("server", keys=SERVER_KEYS),
        http_max=t.byte_counts("http_max"),
        http_min=t.byte_counts("http_min"),
        entries=t.strings("entries"),
        boot_files=t.texts("boot_files", keys=contract.SLOTS),
    )
    t.done()
    _server_states(exp.server, f"{where}: expect.server")
    for name in exp.entries:
        try:
            if bls.parse_name(name) is None:
                raise bls.BlsError(f"{name!r} is not a rustupdate entry file")
        except bls.BlsError as err:
            raise ScenarioError(f"{where}: expect.entries: {err}") from None
    return exp


def _env_in(table: Table, where: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for k, values in table.items():
        if k not in contract.VARS or not isinstance(values, list) or len(values) < 2:
            raise ScenarioError(f"{where}: expect.env_in.{k}: a contract variable and a list of "
                                "at least two values")
        out[k] = tuple(as_text(v) for v in values)
    return out


def _kill_delay(spec: object, where: str) -> tuple[float, tuple[float, float] | None]:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return float(spec), None
    if (isinstance(spec, list) and len(spec) == 2 and all(isinstance(v, (int, float)) for v in spec)
            and 0 <= spec[0] < spec[1]):
        return 0.0, (float(spec[0]), float(spec[1]))
    raise ScenarioError(f"{where}: kill_delay = {spec!r}: seconds, or [lo, hi] for a random delay")


def _cut_after_writes(spec: object, where: str) -> tuple[int | None, tuple[int, int] | None]:
    if spec is None:
        return None, None
    if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
        return spec, None
    if (isinstance(spec, list) and len(spec) == 2 and all(isinstance(v, int) for v in spec)
            and 0 <= spec[0] < spec[1]):
        return None, (spec[0], spec[1])
    raise ScenarioError(f"{where}: cut_after_writes = {spec!r}: a count >= 0, or [lo, hi]")


def _server_states(table: dict[str, str], where: str) -> None:
    for key, states in (("action", ACTION_STATES), ("rollout", ROLLOUT_STATES)):
        if key in table and table[key] not in states:
            raise ScenarioError(f"{where}.{key} = {table[key]!r}, expected one of {list(states)}")


def _fleet_expect(doc: Table | None, where: str) -> FleetExpect | None:
    if doc is None:
        return None
    t = _Table(doc, f"{where}: fleet.expect")
    exp = FleetExpect(
        rollout=t.take("rollout", str, choices=ROLLOUT_STATES),
        pause_reason=t.take("pause_reason", str),
        actions=t.texts("actions", keys=ACTION_STATES),
        reason=t.take("reason", str),
    )
    t.done()
    if not all(v.isdigit() for v in exp.actions.values()):
        raise ScenarioError(f"{where}: fleet.expect.actions: counts of devices")
    return exp


def _fleet(doc: Table, where: str) -> Fleet:
    t = _Table(doc, f"{where}: fleet")
    fleet = Fleet(
        artifact=t.take("artifact", str, ""),
        base=t.take("base", str),
        patch=t.take("patch", str),
        phases=t.take("phases", str, "100"),
        error_threshold=t.take("error_threshold", str, "1"),
        auth=t.take("auth", str, "target", choices=AUTH_MODES),
        poll_interval=t.take("poll_interval", int, 2),
        devices=t.take("devices", int, 1),
        expect=_fleet_expect(t.take("expect", dict), where),
    )
    t.done()
    if fleet.expect and fleet.devices == 1:
        raise ScenarioError(f"{where}: fleet.expect is for several devices; one device: "
                            "[boot.expect] server")
    for key, name in (("artifact", fleet.artifact), ("base", fleet.base)):
        if name is not None and not re.fullmatch(r"[\w.-]+\.rua", name):
            raise ScenarioError(f"{where}: fleet.{key} = {name!r}: expected a .rua file name")
    if fleet.patch is not None and not re.fullmatch(r"[\w.-]+\.rudelta", fleet.patch):
        raise ScenarioError(f"{where}: fleet.patch = {fleet.patch!r}: expected a .rudelta file name")
    if not re.fullmatch(r"\d+(,\d+)*", fleet.phases):
        raise ScenarioError(f"{where}: fleet.phases = {fleet.phases!r}: expected e.g. \"34,100\"")
    if not re.fullmatch(r"\d+%?", fleet.error_threshold):
        raise ScenarioError(f"{where}: fleet.error_threshold = {fleet.error_threshold!r}")
    if not 1 <= fleet.poll_interval <= 60 or not 1 <= fleet.devices <= 8:
        raise ScenarioError(f"{where}: fleet.poll_interval 1..60 s, fleet.devices 1..8")
    return fleet


def _boot(doc: Table, where: str) -> tuple[Boot, int]:
    t = _Table(doc, where)
    fault = t.take("fault", (str, int))
    if isinstance(fault, str) and not re.fullmatch(r"[a-z]+:[a-z-]+(#-?[1-9][0-9]*)?", fault):
        raise ScenarioError(f"{where}: fault = {fault!r}: expected NAME or NAME#K")
    if isinstance(fault, int) and fault < 1:
        raise ScenarioError(f"{where}: fault = {fault}: points are numbered from 1")
    kill_on = t.take("kill_on", str)
    delay, delay_range = _kill_delay(t.take("kill_delay", (int, float, list), 0.0), where)
    writes, writes_range = _cut_after_writes(t.take("cut_after_writes", (int, list)), where)
    if (writes is not None or writes_range) and kill_on is None:
        raise ScenarioError(f"{where}: cut_after_writes needs kill_on (when to end the boot)")
    if kill_on is not None:
        try:
            re.compile(kill_on)
        except re.error as err:
            raise ScenarioError(f"{where}: kill_on: {err}") from None
    boot = Boot(
        note=t.take("note", str, ""),
        action=t.take("action", str, "idle"),
        net=t.take("net", bool, False),
        health=t.take("health", str, choices=HEALTH_MODES),
        client_env=t.take("client_env", str, ""),
        end=t.take("end", str, choices=SENT_ENDS),
        fault=_fault(fault),
        kill_on=kill_on,
        kill_delay=delay,
        kill_delay_range=delay_range,
        cut_after_writes=writes,
        cut_after_writes_range=writes_range,
        host_env=t.texts("host_env", keys=contract.VARS),
        host_damage=t.texts("host_damage", keys=DAMAGE_WHICH, values=DAMAGE_HOW),
        host_wipe=t.take("host_wipe", str, choices=contract.SLOTS),
        host_modify=t.take("host_modify", str, choices=contract.SLOTS),
        http_throttle=t.byte_counts("http_throttle"),
        timeout=t.take("timeout", float),
        until=t.texts("until", keys=UNTIL_KEYS),
        expect=_expect(t.take("expect", dict, {}), where),
    )
    repeat = t.take("repeat", int, 1)
    t.done()
    if "RUSTUPDATE_FAULT_AFTER" in boot.client_env:
        raise ScenarioError(f"{where}: use fault = N, not RUSTUPDATE_FAULT_AFTER in client_env")
    if 0 in boot.http_throttle.values():
        raise ScenarioError(f"{where}: http_throttle: at least 1 byte per second")
    if (boot.http_throttle or boot.expect.http_max or boot.expect.http_min) and not boot.net:
        raise ScenarioError(f"{where}: http_throttle, expect.http_max and expect.http_min need "
                            "net = true")
    _server_states(boot.until, f"{where}: until")
    if boot.until and not boot.runs_daemon:
        raise ScenarioError(f"{where}: until needs the {guest.DAEMON_ACTION} action")
    if boot.runs_daemon and actions(boot.action)[-1] != guest.DAEMON_ACTION:
        raise ScenarioError(f"{where}: {guest.DAEMON_ACTION} must be the last action")
    return boot, repeat


def parse(doc: Table, name: str, path: Path) -> Scenario:
    t = _Table(doc, str(path))
    description = t.take("description", str, "")
    arches = t.take("arches", list, list(DEFAULT_ARCHES))
    if not arches or any(a not in ARCHES for a in arches):
        raise ScenarioError(f"{path}: arches = {arches!r}, expected some of {list(ARCHES)}")
    # ci = true | false | a list of its arches: CI runs it on those only (a chain-independent
    # check need not boot every chain each run; the others stay on demand).
    ci = t.take("ci", (bool, list), True)
    ci_arches = tuple(arches) if ci is True else tuple(ci) if isinstance(ci, list) else ()
    if any(a not in arches for a in ci_arches):
        raise ScenarioError(f"{path}: ci = {ci!r}, expected true, false or some of {arches}")
    disk = t.take("disk", str, "busybox", choices=DISKS)
    fleet_doc = t.take("fleet", dict)
    fleet = _fleet(fleet_doc, str(path)) if fleet_doc is not None else None
    boots: list[Boot] = []
    for n, doc_boot in enumerate(t.take("boot", list, []), start=1):
        boot, repeat = _boot(doc_boot, f"{path}: boot {n}")
        if fleet is None and (boot.runs_daemon or boot.expect.server):
            raise ScenarioError(f"{path}: boot {n}: the daemon and expect.server need [fleet]")
        if fleet is not None and (boot.http_throttle or boot.expect.http_max
                                  or boot.expect.http_min):
            raise ScenarioError(f"{path}: boot {n}: http_* are about the runner's HTTP server, "
                                "which a fleet scenario does not start")
        if fleet is not None and not boot.net:
            boot = dataclasses.replace(boot, net=True)  # every boot of a fleet device polls
        boots += [boot] * repeat
    t.done()
    if not boots:
        raise ScenarioError(f"{path}: no [[boot]]")
    if fleet is not None and fleet.devices > 1 and (len(boots) != 1 or not boots[0].until):
        raise ScenarioError(f"{path}: with fleet.devices > 1, one [[boot]] with until: every "
                            "device boots it again after each reboot until the server shows until")
    for n, boot in enumerate(boots, start=1):
        if disk == "systemd" and (fleet is not None or any(
                a not in SYSTEMD_ACTIONS for a in actions(boot.action))):
            raise ScenarioError(f"{path}: boot {n}: the systemd guests' agent knows only "
                                f"{list(SYSTEMD_ACTIONS)} and no [fleet]")
        unknown = [a for a in actions(boot.action) if a not in BUSYBOX_ACTIONS]
        if disk != "systemd" and unknown:
            raise ScenarioError(f"{path}: boot {n}: unknown action(s) {unknown}, expected some "
                                f"of {list(BUSYBOX_ACTIONS)}")
        if disk != "systemd" and boot.health == "unit-fail":
            raise ScenarioError(f"{path}: boot {n}: health = \"unit-fail\" needs "
                                "disk = \"systemd\"")
    if any(b.expect.entries or b.expect.boot_files for b in boots) and \
            not set(arches) <= set(SDBOOT_ARCHES):
        raise ScenarioError(f"{path}: expect.entries and expect.boot_files need arches within "
                            f"{list(SDBOOT_ARCHES)} (the chains with entry files)")
    return Scenario(name, path, description, tuple(arches), tuple(boots), ci_arches, fleet, disk)


def load(path: Path) -> Scenario:
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(f"{path}: {err}") from None
    return parse(doc, path.stem, path)


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observed:
    """What one boot left behind."""
    console: str
    end: str  # one of SEEN_ENDS (or "timeout"/"stopped")
    env: dict[str, str]  # the bootloader environment read from the disk after the boot
    slot_holds: Callable[[str, str], bool]  # (slot, version): the slot holds exactly that image
    server: dict[str, str] | None = None  # fleet_server.observe() after the boot, with a fleet server
    http_served: dict[str, int] | None = None  # body bytes per file sent by the HTTP server
    entries: tuple[str, ...] | None = None  # systemd-boot: the entry files on the ESP after it
    # systemd-boot: (slot, version): rustupdate/<slot>/initrd.img on the ESP is that version's
    esp_holds: Callable[[str, str], bool] | None = None


def lookup(doc: object, dotted: str) -> object:
    cur = doc
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def check(expect: Expect, seen: Observed) -> list[str]:
    """The failed expectations, in words (empty: the boot went as expected)."""
    errors = []
    slot, version = guest.booted(seen.console) or (None, None)
    if expect.slot is not None and slot != expect.slot:
        errors.append(f"booted slot {slot!r}, expected {expect.slot!r}")
    if expect.version is not None and version != expect.version:
        errors.append(f"booted version {version!r}, expected {expect.version!r}")
    if expect.end is not None and seen.end != expect.end:
        errors.append(f"boot ended by {seen.end!r}, expected {expect.end!r}")
    errors += [f"marker not on the console: {m!r}" for m in expect.markers if m not in seen.console]
    errors += [f"unexpected on the console: {m!r}" for m in expect.absent if m in seen.console]
    for k, v in expect.env.items():
        if seen.env.get(k) != v:
            errors.append(f"env {k}={seen.env.get(k)!r}, expected {v!r}")
    for k, values in expect.env_in.items():
        if seen.env.get(k) not in values:
            errors.append(f"env {k}={seen.env.get(k)!r}, expected one of {list(values)}")
    if expect.status or expect.status_has:
        st = guest.status(seen.console)
        if st is None:
            errors.append("no status JSON on the console")
        else:
            for k, v in expect.status.items():
                got = as_text(lookup(st, k))
                if got != v:
                    errors.append(f"status {k}={got!r}, expected {v!r}")
            for k, v in expect.status_has.items():
                got = as_text(lookup(st, k))
                if v not in got:
                    errors.append(f"status {k}={got!r}, expected it to contain {v!r}")
    for s, v in expect.slot_image.items():
        if not seen.slot_holds(s, v):
            errors.append(f"slot {s} does not hold the {v} image")
    errors += check_server(expect.server, seen.server)
    errors += check_http(expect, seen.http_served)
    if expect.entries and sorted(expect.entries) != sorted(seen.entries or ()):
        errors.append(f"entry files {sorted(seen.entries or ())}, expected "
                      f"{sorted(expect.entries)}")
    for s, v in expect.boot_files.items():
        if seen.esp_holds is None or not seen.esp_holds(s, v):
            errors.append(f"rustupdate/{s}/ on the ESP does not hold the {v} initrd")
    return errors


def check_http(expect: Expect, served: dict[str, int] | None) -> list[str]:
    if not (expect.http_max or expect.http_min):
        return []
    if served is None:
        return ["no HTTP server to ask"]
    errors = [f"HTTP server sent {served.get(f, 0)} bytes of {f}, expected at most {n}"
              for f, n in expect.http_max.items() if served.get(f, 0) > n]
    errors += [f"HTTP server sent {served.get(f, 0)} bytes of {f}, expected at least {n}"
               for f, n in expect.http_min.items() if served.get(f, 0) < n]
    return errors


def server_matches(want: dict[str, str], got: dict[str, str]) -> bool:
    """`until` and `expect.server`: reasons are substrings, everything else exact."""
    return not check_server(want, got)


def check_server(want: dict[str, str], got: dict[str, str] | None) -> list[str]:
    if not want:
        return []
    if got is None:
        return ["no fleet server to ask"]
    errors = []
    for k, v in want.items():
        ok = v in got.get(k, "null") if k in SUBSTRING_KEYS else got.get(k) == v
        if not ok:
            errors.append(f"server {k}={got.get(k)!r}, expected "
                          + (f"it to contain {v!r}" if k in SUBSTRING_KEYS else repr(v)))
    return errors


def check_fleet(expect: FleetExpect, doc: Table) -> list[str]:
    """A multi-device scenario's end state (the runner's fleet summary) against [fleet.expect]."""
    errors = []
    if expect.rollout is not None and doc.get("rollout") != expect.rollout:
        errors.append(f"rollout {doc.get('rollout')!r}, expected {expect.rollout!r}")
    if expect.pause_reason is not None and expect.pause_reason not in (doc.get("pause_reason") or ""):
        errors.append(f"pause reason {doc.get('pause_reason')!r}, expected it to contain "
                      f"{expect.pause_reason!r}")
    states = [d["action"] for d in doc.get("devices", {}).values()]
    for state, count in expect.actions.items():
        if states.count(state) != int(count):
            errors.append(f"{states.count(state)} devices with action {state}, expected {count}")
    if expect.reason is not None:
        for cid, d in doc.get("devices", {}).items():
            if d["action"] == "failed" and expect.reason not in d["reason"]:
                errors.append(f"{cid}: reason {d['reason']!r}, expected it to contain "
                              f"{expect.reason!r}")
    return errors
