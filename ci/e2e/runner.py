#!/usr/bin/env python3
"""Runs the declarative end-to-end scenarios (ci/scenarios/*.toml) under QEMU.

    ci/e2e/runner.py [--arch x86_64|arm64|all] [--scenario NAME ...] [--build DIR] [--keep-going]

Each scenario starts from a fresh copy of the pristine disk made by build.py and boots it several
times. Every boot is one QEMU process (-no-reboot: a guest reboot or power-off ends it); the
per-boot action reaches the guest's init through fw_cfg. Between boots the runner reads (and, when
a scenario says so, writes) the bootloader environment inside the disk image with mtools and the
reference tools (grub-editenv, fw_printenv/fw_setenv), and checks the expectations of the boot.
Console logs: <build>/results/<arch>/<scenario>/boot-NN.log; summary: <build>/results/summary.json.

Scenario file format: ci/e2e/README.md.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCENARIOS = REPO / "ci" / "scenarios"
ALL_ARCHES = ("x86_64", "arm64")
DEFAULT_TIMEOUT = {"x86_64": 120.0, "arm64": 90.0}
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")
STOP = threading.Event()  # set on SIGTERM/SIGINT: every runner thread kills its QEMU and stops

BOOT_KEYS = {"action", "health", "client_env", "end", "net", "timeout", "repeat", "host_env",
             "kill_on", "kill_delay", "expect", "note", "fault", "host_wipe"}
# The install whose durable-write points `fault = "NAME[#K]"` refers to (traced once per run).
TRACE_ACTION = "install /data/artifacts/v2.rua"
EXPECT_KEYS = {"slot", "version", "markers", "absent", "env", "status", "end", "slot_image"}


def log(msg: str) -> None:
    print(msg, flush=True)


class ScenarioError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Scenario files
# ---------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    path: Path
    description: str
    arches: list[str]
    boots: list[dict]
    always: bool


def load_scenario(path: Path) -> Scenario:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    unknown = set(doc) - {"description", "arches", "boot", "ci"}
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    boots = []
    for n, b in enumerate(doc.get("boot", []), start=1):
        bad = set(b) - BOOT_KEYS
        if bad:
            raise ScenarioError(f"{path}: boot {n}: unknown keys {sorted(bad)}")
        bad = set(b.get("expect", {})) - EXPECT_KEYS
        if bad:
            raise ScenarioError(f"{path}: boot {n}: unknown expect keys {sorted(bad)}")
        for _ in range(int(b.get("repeat", 1))):
            boots.append(b)
    if not boots:
        raise ScenarioError(f"{path}: no [[boot]]")
    arches = doc.get("arches", list(ALL_ARCHES))
    return Scenario(path.stem, path, doc.get("description", ""), arches, boots,
                    bool(doc.get("ci", True)))


# ---------------------------------------------------------------------------------------------
# The disk image seen from the host
# ---------------------------------------------------------------------------------------------

class Disk:
    def __init__(self, path: Path, layout: dict, tmp: Path):
        self.path = path
        self.layout = layout
        self.tmp = tmp
        boot = layout["partitions"][layout["boot_label"]]
        self.fat = f"{path}@@{boot['offset']}"
        self.env_path = layout["env_path"]

    def _get(self) -> Path:
        local = self.tmp / Path(self.env_path).name
        local.unlink(missing_ok=True)
        res = subprocess.run(["mcopy", "-n", "-i", self.fat, f"::/{self.env_path}", local],
                             env=MTOOLS_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        if res.returncode != 0:
            raise ScenarioError(f"cannot read {self.env_path} from the boot partition: "
                                f"{res.stdout.strip()}")
        return local

    def _put(self, local: Path) -> None:
        subprocess.run(["mcopy", "-o", "-i", self.fat, local, f"::/{self.env_path}"], check=True,
                       env=MTOOLS_ENV, stderr=subprocess.PIPE)

    def _fw_config(self, local: Path) -> Path:
        cfg = self.tmp / "fw_env.config"
        cfg.write_text(f"{local} 0x0 {self.layout['uboot_env_size']}\n")
        return cfg

    def read_env(self) -> dict[str, str]:
        """The bootloader environment, read by the reference tool of the bootloader."""
        try:
            local = self._get()
        except ScenarioError as err:
            return {"__error__": str(err)}
        if self.layout["bootloader"] == "grub":
            text = subprocess.run(["grub-editenv", local, "list"], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout
        else:
            res = subprocess.run(["fw_printenv", "-c", self._fw_config(local)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if res.returncode != 0:
                return {"__error__": res.stderr.strip() or "fw_printenv failed"}
            text = res.stdout
        env = {}
        for line in text.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
        return env

    def write_env(self, values: dict[str, str]) -> None:
        local = self._get()
        if self.layout["bootloader"] == "grub":
            subprocess.run(["grub-editenv", local, "set"] + [f"{k}={v}" for k, v in values.items()],
                           check=True)
        else:
            script = self.tmp / "fw_setenv.txt"
            script.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            subprocess.run(["fw_setenv", "-c", self._fw_config(local), "-s", script], check=True)
        self._put(local)

    def wipe_slot(self, slot: str) -> None:
        """Zeroes the start of a slot (superblock included): its kernel cannot be loaded."""
        part = self.layout["partitions"][f"rootfs_{slot}"]
        with open(self.path, "r+b") as f:
            f.seek(part["offset"])
            f.write(bytes(4 << 20))

    def slot_sha256(self, slot: str, size: int) -> str:
        part = self.layout["partitions"][f"rootfs_{slot}"]
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            f.seek(part["offset"])
            left = size
            while left:
                chunk = f.read(min(left, 4 << 20))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
        return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# One QEMU boot
# ---------------------------------------------------------------------------------------------

@dataclass
class BootResult:
    log: str = ""
    lines: list[tuple[float, str]] = field(default_factory=list)
    duration: float = 0.0
    end: str = ""            # poweroff | reboot | cut | reset | killed | timeout
    killed_at: float | None = None
    rc: int | None = None

    def marker_time(self, text: str) -> float | None:
        for t, line in self.lines:
            if text in line:
                return t
        return None


def fw_cfg_string(name: str, value: str) -> list[str]:
    return ["-fw_cfg", f"name=opt/rustupdate/{name},string={value.replace(',', ',,')}"]


def qemu_command(layout: dict, disk: Path, vars_fd: Path | None, boot: dict, accel: str,
                 http_port: int | None) -> list[str]:
    arch = layout["arch"]
    common = ["-m", "512", "-smp", "1", "-display", "none", "-serial", "stdio", "-monitor", "none",
              "-no-reboot", "-accel", accel,
              # Fixed PCI addresses: the same device paths on every boot whether or not a NIC is
              # present (OVMF keeps boot options by device path in its variable store).
              "-drive", f"if=none,id=disk0,format=raw,file={disk}",
              "-device", "virtio-blk-pci,drive=disk0,addr=0x4"]
    if arch == "x86_64":
        fw = layout["firmware"]
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-vga", "none",
               "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={fw['code']}",
               "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}"] + common
    else:
        cmd = ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57",
               "-bios", layout["firmware"]["bios"]] + common
    if boot.get("net"):
        # No option ROM and no PXE: the firmware must not try to boot from the network.
        cmd += ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=,addr=0x3"]
        if arch == "x86_64":
            cmd += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
                    "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
    else:
        cmd += ["-nic", "none"]
    action = boot.get("action", "idle")
    if http_port is not None:
        action = action.replace("@HTTP@", f"http://10.0.2.2:{http_port}")
    cmd += fw_cfg_string("action", action)
    if boot.get("health"):
        cmd += fw_cfg_string("health", boot["health"])
    if boot.get("client_env"):
        cmd += fw_cfg_string("env", boot["client_env"])
    if boot.get("end"):
        cmd += fw_cfg_string("end", boot["end"])
    return cmd


def run_qemu(cmd: list[str], logfile: Path, timeout: float, arch: str,
             kill_on: str | None, kill_delay: float) -> BootResult:
    res = BootResult()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    buf = bytearray()
    pending = b""
    lines: list[tuple[float, str]] = []
    lock = threading.Lock()

    def reader() -> None:
        nonlocal pending
        fd = proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic() - t0
            with lock:
                buf.extend(chunk)
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    lines.append((now, raw.decode("utf-8", "replace").replace("\r", "")))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    uboot_interrupted = False
    kill_deadline = None
    try:
        while True:
            if proc.poll() is not None:
                break
            if STOP.is_set():
                res.end = "stopped"
                break
            now = time.monotonic() - t0
            if now > timeout:
                res.end = "timeout"
                break
            with lock:
                text = bytes(buf)
            if arch == "arm64" and not uboot_interrupted and b"Hit any key to stop autoboot" in text:
                # Skip U-Boot's bootdelay: stop autoboot and run the same boot command at once.
                uboot_interrupted = True
                proc.stdin.write(b" ")
                proc.stdin.flush()
                time.sleep(0.2)
                proc.stdin.write(b"run bootcmd\n")
                proc.stdin.flush()
            if kill_on and kill_deadline is None and re.search(kill_on.encode(), text):
                kill_deadline = now + kill_delay
            if kill_deadline is not None and now >= kill_deadline:
                res.end = "killed"
                res.killed_at = now
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        th.join(timeout=5)
        try:
            proc.stdin.close()
        except OSError:
            pass
    res.duration = time.monotonic() - t0
    res.rc = proc.returncode
    with lock:
        if pending:
            lines.append((res.duration, pending.decode("utf-8", "replace").replace("\r", "")))
        res.lines = list(lines)
    res.log = "\n".join(line for _, line in res.lines)
    if not res.end:
        m = re.findall(r"^E2E: end (\w+)", res.log, re.M)
        res.end = m[-1] if m else "reset"
    logfile.write_text("".join(f"{t:7.2f} {line}\n" for t, line in res.lines) +
                       f"# qemu exit code {res.rc}, end {res.end}, {res.duration:.2f} s\n"
                       f"# {' '.join(cmd)}\n")
    return res


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------

def status_json(log: str) -> dict | None:
    m = re.search(r"^E2E: status-begin\n(.*?)^E2E: status-end", log, re.S | re.M)
    if not m:
        return None
    # The client's log lines (stderr) may be interleaved; keep the JSON object.
    body = m.group(1)
    start, end = body.find("{"), body.rfind("}")
    if start < 0:
        return None
    try:
        return json.loads(body[start:end + 1])
    except json.JSONDecodeError:
        return None


def lookup(doc, dotted: str):
    cur = doc
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def as_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def check_boot(expect: dict, res: BootResult, env: dict[str, str], disk: Disk,
               layout: dict, http_port: int | None) -> list[str]:
    errors = []
    if http_port is not None:
        url = f"http://10.0.2.2:{http_port}"
        expect = dict(expect, markers=[m.replace("@HTTP@", url) for m in expect.get("markers", [])])
    booted = re.findall(r"^E2E: booted slot=(\S*) version=(\S*)", res.log, re.M)
    slot, version = booted[-1] if booted else (None, None)
    if "slot" in expect and slot != expect["slot"]:
        errors.append(f"booted slot {slot!r}, expected {expect['slot']!r}")
    if "version" in expect and version != expect["version"]:
        errors.append(f"booted version {version!r}, expected {expect['version']!r}")
    for marker in expect.get("markers", []):
        if marker not in res.log:
            errors.append(f"marker not on the console: {marker!r}")
    for marker in expect.get("absent", []):
        if marker in res.log:
            errors.append(f"unexpected on the console: {marker!r}")
    if "end" in expect and res.end != expect["end"]:
        errors.append(f"boot ended by {res.end!r}, expected {expect['end']!r}")
    for k, v in expect.get("env", {}).items():
        if env.get(k) != str(v):
            errors.append(f"env {k}={env.get(k)!r}, expected {str(v)!r}")
    if "status" in expect:
        st = status_json(res.log)
        if st is None:
            errors.append("no status JSON on the console")
        else:
            for k, v in expect["status"].items():
                got = as_text(lookup(st, k))
                if got != as_text(v):
                    errors.append(f"status {k}={got!r}, expected {as_text(v)!r}")
    for s, v in expect.get("slot_image", {}).items():
        img = layout["images"][v]
        if disk.slot_sha256(s, img["size"]) != img["sha256"]:
            errors.append(f"slot {s} does not hold the {v} image")
    return errors


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
# Scenario
# ---------------------------------------------------------------------------------------------

NARRATE = re.compile(r"^(E2E: (booted|result|hook|health|broken)|rustupdate: |Kernel panic|"
                     r"\[(INFO|WARN|ERROR) +rustupdate[^\]]*\] (artifact|installing|slot|trial|"
                     r"committed|update|rolling|health|.*interrupted))")


def narrate(res: BootResult) -> None:
    """Demo mode: the console lines that tell the story of a boot."""
    for t, line in res.lines:
        if NARRATE.search(line):
            log(f"        {t:6.1f} s  {line.strip()[:110]}")


def trace_install_points(layout: dict, results: Path, accel: str) -> list[str]:
    """The client's durable-write points during TRACE_ACTION from the pristine disk, in order.

    Their numbers depend on the image (zero runs are not written), so scenarios name them and
    the runner counts them here with RUSTUPDATE_FAULT_TRACE=1 (one boot per architecture)."""
    arch = layout["arch"]
    rdir = results / arch / "fault-trace"
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    disk = rdir / "disk.img"
    subprocess.run(["cp", "--sparse=always", layout["disk"], disk], check=True)
    vars_fd = None
    if arch == "x86_64":
        vars_fd = rdir / "OVMF_VARS.fd"
        shutil.copyfile(layout["firmware"]["vars"], vars_fd)
    boot = {"action": TRACE_ACTION, "client_env": "RUSTUPDATE_FAULT_TRACE=1"}
    res = run_qemu(qemu_command(layout, disk, vars_fd, boot, accel, None), rdir / "boot-01.log",
                   DEFAULT_TIMEOUT[arch], arch, None, 0)
    disk.unlink(missing_ok=True)
    points = [(int(n), name) for n, name in
              re.findall(r"^rustupdate-fault-point (\d+) (\S+)", res.log, re.M)]
    if not points or [n for n, _ in points] != list(range(1, len(points) + 1)):
        raise ScenarioError(f"no usable fault-point trace (see {rdir / 'boot-01.log'})")
    (rdir / "points.txt").write_text("".join(f"{n} {name}\n" for n, name in points))
    log(f"--- {arch} fault points of '{TRACE_ACTION}': {len(points)} ("
        + ", ".join(f"{n} {name}" for n, name in points if name != "image:write") + ")")
    return [name for _, name in points]


def resolve_fault(spec: str, points: list[str]) -> int:
    """'NAME' or 'NAME#K' (K-th occurrence, from 1; negative counts from the end) -> number."""
    name, _, k = spec.partition("#")
    hits = [i + 1 for i, p in enumerate(points) if p == name]
    idx = int(k) if k else 1
    if not hits or idx == 0 or abs(idx) > len(hits):
        raise ScenarioError(f"fault point {spec!r} not in the trace ({', '.join(sorted(set(points)))})")
    return hits[idx - 1] if idx > 0 else hits[idx]


def run_scenario(sc: Scenario, layout: dict, build: Path, results: Path, accel: str,
                 narrated: bool = False, points: list[str] | None = None) -> dict:
    arch = layout["arch"]
    rdir = results / arch / sc.name
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    disk_path = rdir / "disk.img"
    t0 = time.monotonic()
    subprocess.run(["cp", "--sparse=always", layout["disk"], disk_path], check=True)
    vars_fd = None
    if arch == "x86_64":
        vars_fd = rdir / "OVMF_VARS.fd"
        shutil.copyfile(layout["firmware"]["vars"], vars_fd)
    tmp = Path(tempfile.mkdtemp(prefix="env-", dir=rdir))
    disk = Disk(disk_path, layout, tmp)
    http_srv = http_port = None
    if any(b.get("net") for b in sc.boots):
        http_srv, http_port = start_http(build / arch / "artifacts")
    boots = []
    failures: list[str] = []
    log(f"--- {arch} {sc.name}: {sc.description}")
    try:
        for n, boot in enumerate(sc.boots, start=1):
            if failures:
                break
            if STOP.is_set():
                failures.append("stopped")
                break
            if narrated and boot.get("note"):
                log(f"  {arch:6s} boot {n:2d}: {boot['note']}")
            if boot.get("host_wipe"):
                disk.wipe_slot(boot["host_wipe"])
            if boot.get("host_env"):
                disk.write_env({k: str(v) for k, v in boot["host_env"].items()})
            fault_marker = None
            if boot.get("fault"):
                n_fault = resolve_fault(boot["fault"], points or [])
                name = boot["fault"].partition("#")[0]
                fault_marker = f"simulated power cut at fault point {n_fault} ({name})"
                boot = dict(boot, end=boot.get("end", "cut"),
                            client_env=f"{boot.get('client_env', '')} "
                                       f"RUSTUPDATE_FAULT_AFTER={n_fault}".strip())
            timeout = float(boot.get("timeout", DEFAULT_TIMEOUT[arch]))
            cmd = qemu_command(layout, disk_path, vars_fd, boot, accel, http_port)
            res = run_qemu(cmd, rdir / f"boot-{n:02d}.log", timeout, arch, boot.get("kill_on"),
                           float(boot.get("kill_delay", 0)))
            env = disk.read_env()
            errors = []
            if res.rc not in (0, None) and res.end not in ("killed", "timeout"):
                errors.append(f"qemu exited with {res.rc}: {res.log[-300:]}")
            if res.end == "timeout":
                errors.append(f"timed out after {timeout:.0f} s")
            if fault_marker and fault_marker not in res.log:
                errors.append(f"marker not on the console: {fault_marker!r}")
            if "__error__" in env:
                errors.append(f"bootloader environment: {env['__error__']}")
            errors += check_boot(boot.get("expect", {}), res, env, disk, layout, http_port)
            booted = re.findall(r"^E2E: booted slot=(\S*) version=(\S*)", res.log, re.M)
            t_init = res.marker_time("E2E: booted")
            t_commit = res.marker_time("E2E: result commit rc=0")
            info = {
                "boot": n, "action": boot.get("action", "idle"),
                "booted": f"{booted[-1][0]}/{booted[-1][1]}" if booted else "-",
                "end": res.end, "seconds": round(res.duration, 2),
                "init_at": round(t_init, 2) if t_init is not None else None,
                "commit_at": round(t_commit, 2) if t_commit is not None else None,
                "env": {k: env.get(k) for k in ("rustupdate_slot", "upgrade_available",
                                                 "bootcount", "bootlimit")},
                "errors": errors,
            }
            st = status_json(res.log)
            if st:
                info["situation"] = st.get("situation")
                lr = st.get("last-result") or {}
                info["last_result"] = f"{lr.get('version')} {lr.get('result')}" if lr else None
            boots.append(info)
            e = info["env"]
            log(f"  {arch:6s} boot {n:2d} {info['action'][:44]:44s} booted {info['booted']:6s} "
                f"end {res.end:8s} {res.duration:6.1f} s  env slot={e['rustupdate_slot']} "
                f"ua={e['upgrade_available']} bc={e['bootcount']}"
                + (f"  [{info.get('last_result')}]" if info.get("last_result") else "")
                + ("  OK" if not errors else "  FAIL"))
            if narrated:
                narrate(res)
            for err in errors:
                log(f"      ! {err}")
            if errors:
                failures += [f"boot {n}: {err}" for err in errors]
                log(f"      console log: {rdir / f'boot-{n:02d}.log'}")
    except (ScenarioError, subprocess.CalledProcessError, OSError) as err:
        failures.append(f"runner: {err}")
        log(f"      ! runner: {err}")
    finally:
        if http_srv is not None:
            http_srv.shutdown()
            http_srv.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.monotonic() - t0
    # Time from the reboot into the new slot to the commit: the trial boot's commit marker,
    # counted from the start of its QEMU (which follows the install boot's reboot at once).
    to_commit = None
    for prev, cur in zip(boots, boots[1:]):
        if (prev["action"].startswith("install") or "; install" in prev["action"]) \
                and prev["end"] == "reboot" and cur["commit_at"] is not None \
                and cur["booted"] != prev["booted"]:
            to_commit = cur["commit_at"]
    ok = not failures
    if ok:
        # The disk of a passing scenario is not needed any more (logs are kept).
        disk_path.unlink(missing_ok=True)
        if vars_fd:
            vars_fd.unlink(missing_ok=True)
    summary = {"arch": arch, "scenario": sc.name, "ok": ok, "boots": len(boots),
               "planned_boots": len(sc.boots), "wall_seconds": round(wall, 1),
               "reboot_to_commit_seconds": to_commit, "failures": failures, "boot_details": boots}
    log(f"--- {arch} {sc.name}: {'PASS' if ok else 'FAIL'} ({len(boots)} boots, {wall:.1f} s"
        + (f", reboot into new slot -> committed {to_commit:.1f} s" if to_commit else "") + ")")
    return summary


def kvm_usable(layout: dict, scratch: Path) -> bool:
    """KVM only if the CPU has VT-x/AMD-V, /dev/kvm opens, and OVMF gets as far as its boot
    manager under KVM within 20 s (a short probe); TCG otherwise (see README)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError:
        return False
    scratch.mkdir(parents=True, exist_ok=True)
    vars_fd = scratch / "kvm-probe-vars.fd"
    shutil.copyfile(layout["firmware"]["vars"], vars_fd)
    cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "kvm", "-m", "256", "-display", "none",
           "-vga", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none",
           "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={layout['firmware']['code']}",
           "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}"]
    res = run_qemu(cmd + ["-boot", "menu=off"], scratch / "kvm-probe.log", 20.0, "x86_64",
                   "BdsDxe", 0.0)
    ok = "BdsDxe" in res.log
    log(f"--- x86_64: KVM probe {'passed: using KVM' if ok else 'failed: using TCG'}")
    return ok


def main() -> int:
    # A terminated runner still kills its QEMU (run_qemu's finally) and stops the HTTP server.
    def stop(signum, _frame):
        STOP.set()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="all", choices=ALL_ARCHES + ("all",))
    ap.add_argument("--scenario", nargs="*", default=[], help="scenario names (default: every ci one)")
    ap.add_argument("--build", type=Path, default=REPO / "build" / "e2e")
    ap.add_argument("--accel", default="auto", choices=("auto", "tcg", "kvm"),
                    help="x86_64 guests only; arm64 guests always use TCG")
    ap.add_argument("--jobs", type=int, default=1, help="architectures run in parallel (1 or 2)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--narrate", action="store_true",
                    help="demo mode: print the notes and the telling console lines of every boot")
    args = ap.parse_args()

    scenarios = {p.stem: load_scenario(p) for p in sorted(SCENARIOS.glob("*.toml"))}
    if args.list:
        for sc in scenarios.values():
            log(f"{sc.name:28s} {'ci ' if sc.always else '   '}{','.join(sc.arches):14s} "
                f"{len(sc.boots):2d} boots  {sc.description}")
        return 0
    for n in args.scenario:
        if n.endswith(".toml") and Path(n).is_file():  # an ad-hoc scenario file
            scenarios[Path(n).stem] = load_scenario(Path(n))
            args.scenario[args.scenario.index(n)] = Path(n).stem
    if args.scenario:
        missing = [n for n in args.scenario if n not in scenarios]
        if missing:
            log(f"unknown scenario(s): {', '.join(missing)}; known: {', '.join(scenarios)}")
            return 2
        chosen = [scenarios[n] for n in args.scenario]
    else:
        chosen = [sc for sc in scenarios.values() if sc.always]
    arches = ALL_ARCHES if args.arch == "all" else (args.arch,)
    results = args.build / "results"
    results.mkdir(parents=True, exist_ok=True)

    def run_arch(arch: str, out: list) -> None:
        layout_path = args.build / arch / "layout.json"
        if not layout_path.exists():
            log(f"{layout_path} missing: build first (ci/e2e/run.sh)")
            out.append({"arch": arch, "scenario": "(build)", "ok": False, "boots": 0,
                        "wall_seconds": 0, "failures": ["not built"]})
            return
        layout = json.loads(layout_path.read_text())
        accel = "tcg"
        if arch == "x86_64" and (args.accel == "kvm" or (
                args.accel == "auto" and kvm_usable(layout, results / arch))):
            accel = "kvm"
        mine = [sc for sc in chosen if arch in sc.arches]
        points = None
        if any(b.get("fault") for sc in mine for b in sc.boots):
            try:
                points = trace_install_points(layout, results, accel)
            except ScenarioError as err:
                log(f"--- {arch}: {err}")
        for sc in mine:
            out.append(run_scenario(sc, layout, args.build, results, accel, args.narrate, points))

    t0 = time.monotonic()
    summaries: list[dict] = []
    if args.jobs > 1 and len(arches) > 1:
        per: dict[str, list] = {a: [] for a in arches}
        threads = [threading.Thread(target=run_arch, args=(a, per[a])) for a in arches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for a in arches:
            summaries += per[a]
    else:
        for a in arches:
            run_arch(a, summaries)
    wall = time.monotonic() - t0

    (results / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n")
    log("\n=== end-to-end summary ===")
    log(f"{'arch':7s} {'scenario':28s} {'result':6s} {'boots':>5s} {'wall s':>7s} {'s/boot':>6s} "
        f"{'reboot->commit s':>16s}")
    for s in summaries:
        per_boot = s["wall_seconds"] / s["boots"] if s.get("boots") else 0
        rc = s.get("reboot_to_commit_seconds")
        log(f"{s['arch']:7s} {s['scenario']:28s} {'PASS' if s['ok'] else 'FAIL':6s} "
            f"{s.get('boots', 0):5d} {s['wall_seconds']:7.1f} {per_boot:6.1f} "
            f"{(f'{rc:.1f}' if rc else '-'):>16s}")
    passed = sum(1 for s in summaries if s["ok"])
    failed = len(summaries) - passed
    log(f"total wall time {wall:.1f} s")
    log(f"e2e: {passed} passed, {failed} failed")
    return 0 if failed == 0 and summaries else 1


if __name__ == "__main__":
    sys.exit(main())
