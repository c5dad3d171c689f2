"""One QEMU boot: the command line for an architecture's machine and firmware, and a run that
records the timestamped console, answers U-Boot's autoboot prompt, types the guest's stop line
when a host condition holds (the fleet server's state), kills QEMU on a console pattern or a
timeout, and always kills it by its pid in the end (also on STOP).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

from . import guest
from .layout import Layout

STOP = threading.Event()  # set on SIGTERM/SIGINT: every running boot kills its QEMU and returns
UBOOT_PROMPT = b"Hit any key to stop autoboot"


def stop_on_signals() -> None:
    """SIGTERM and SIGINT end the process (exit 128 + signal) after setting STOP: the running
    boot's QEMU is killed by run()'s finally, and no new boot starts."""
    def stop(signum: int, _frame: FrameType | None) -> NoReturn:
        STOP.set()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def machine(layout: Layout, vars_fd: Path | None, accel: str, memory: int = 512) -> list[str]:
    """QEMU, machine, firmware and console of an architecture, without disks or NICs."""
    common = ["-m", str(memory), "-smp", "1", "-display", "none", "-serial", "stdio",
              "-monitor", "none", "-no-reboot", "-accel", accel]
    if layout.firmware.code:  # OVMF: the x86_64 machine (GRUB or systemd-boot)
        return ["qemu-system-x86_64", "-machine", "q35", "-vga", "none",
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={layout.firmware.code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}"] + common
    return ["qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57",
            "-bios", str(layout.firmware.bios)] + common


def blkdebug_rules(writes_ok: int) -> str:
    """QEMU blkdebug rules for a power cut after `writes_ok` write requests: those reach the disk
    image, the next one and every later one fail with EIO (nothing more lands, as after a cut;
    the runner then kills QEMU). Each write moves a state counter one step; the error rule
    matches from state writes_ok + 1 on."""
    rules = [f'[set-state]\nstate = "{i}"\nevent = "write_aio"\nnew_state = "{i + 1}"\n'
             for i in range(1, writes_ok + 1)]
    rules.append(f'[inject-error]\nstate = "{writes_ok + 1}"\nevent = "write_aio"\nerrno = "5"\n')
    return "\n".join(rules)


def command(layout: Layout, disk: Path, vars_fd: Path | None, accel: str, net: bool,
            fw_cfg: dict[str, str], write_rules: Path | None = None) -> list[str]:
    """A boot of the e2e disk, with the guest's instructions in fw_cfg; with `write_rules`, the
    disk goes through QEMU's blkdebug driver with those rules (`blkdebug_rules`)."""
    if write_rules is None:
        drive = f"if=none,id=disk0,format=raw,file={disk}"
    else:
        drive = (f"if=none,id=disk0,format=raw,file.driver=blkdebug,file.config={write_rules},"
                 f"file.image.filename={disk}")
    cmd = machine(layout, vars_fd, accel) + [
        # Fixed PCI addresses: the same device paths on every boot whether or not a NIC is
        # present (OVMF keeps boot options by device path in its variable store).
        "-drive", drive,
        "-device", "virtio-blk-pci,drive=disk0,addr=0x4"]
    if net:
        # No option ROM and no PXE: the firmware must not try to boot from the network.
        cmd += ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=,addr=0x3"]
        if layout.firmware.code:
            cmd += ["-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
                    "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
    else:
        cmd += ["-nic", "none"]
    return cmd + guest.fw_cfg(fw_cfg)


@dataclass
class BootResult:
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds, console line)
    duration: float = 0.0
    end: str = ""  # poweroff | reboot | cut | reset | killed | timeout | stopped
    killed_at: float | None = None
    stop_sent_at: float | None = None  # when the stop line was typed (stop_when held)
    rc: int | None = None
    # The first try's panic line when its kernel panicked before the guest's user space ran and
    # the boot was tried once more (runner.boot_once): an infrastructure retry.
    infra_retry: str | None = None

    @property
    def console(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def marker_time(self, text: str) -> float | None:
        return next((t for t, line in self.lines if text in line), None)


STOP_POLL_S = 0.5  # how often stop_when is asked (it may ask a server)


def run(cmd: list[str], logfile: Path, timeout: float, kill_on: str | None = None,
        kill_delay: float = 0.0, stop_when: Callable[[], bool] | None = None) -> BootResult:
    """Runs QEMU until it exits, `kill_on` appeared `kill_delay` s ago, `timeout` or STOP.
    Once the guest's daemon runs and `stop_when()` holds, the guest's stop line is typed on the
    console (once); the guest then ends the boot itself."""
    res = BootResult()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    buf = bytearray()
    pending = b""
    lines: list[tuple[float, str]] = []
    lock = threading.Lock()
    # Both pipes exist: Popen was given stdin=PIPE and stdout=PIPE.
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def reader() -> None:
        nonlocal pending
        fd = stdout.fileno()
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
                lines.extend((now, raw.decode("utf-8", "replace").replace("\r", ""))
                             for raw in complete)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    uboot_interrupted = False
    kill_deadline = None
    kill_re = re.compile(kill_on.encode()) if kill_on else None
    next_stop_poll = 0.0
    try:
        while proc.poll() is None:
            if STOP.is_set():
                res.end = "stopped"
                break
            now = time.monotonic() - t0
            if now > timeout:
                res.end = "timeout"
                break
            with lock:
                text = bytes(buf)
            if not uboot_interrupted and UBOOT_PROMPT in text:
                # Skip U-Boot's bootdelay: stop autoboot and run the same boot command at once.
                uboot_interrupted = True
                stdin.write(b" ")
                stdin.flush()
                time.sleep(0.2)
                stdin.write(b"run bootcmd\n")
                stdin.flush()
            if kill_re and kill_deadline is None and kill_re.search(text):
                kill_deadline = now + kill_delay
            if kill_deadline is not None and now >= kill_deadline:
                res.end = "killed"
                res.killed_at = now
                break
            if (stop_when is not None and res.stop_sent_at is None and now >= next_stop_poll
                    and guest.DAEMON_STARTED.encode() in text):
                next_stop_poll = now + STOP_POLL_S
                if stop_when():
                    res.stop_sent_at = now
                    stdin.write(guest.STOP_LINE.encode() + b"\n")
                    stdin.flush()
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        th.join(timeout=5)
        with contextlib.suppress(OSError):
            stdin.close()
    res.duration = time.monotonic() - t0
    res.rc = proc.returncode
    with lock:
        if pending:
            lines.append((res.duration, pending.decode("utf-8", "replace").replace("\r", "")))
        res.lines = list(lines)
    if not res.end:
        res.end = guest.end(res.console) or "reset"
    logfile.write_text("".join(f"{t:7.2f} {line}\n" for t, line in res.lines) +
                       f"# qemu exit code {res.rc}, end {res.end}, {res.duration:.2f} s\n"
                       f"# {' '.join(map(str, cmd))}\n")
    return res


def kvm_usable(layout: Layout, scratch: Path) -> bool:
    """KVM only if the CPU has VT-x/AMD-V, /dev/kvm opens, and OVMF gets as far as its boot
    manager under KVM within 20 s (a short probe); TCG otherwise (see README)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M):
        return False
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    scratch.mkdir(parents=True, exist_ok=True)
    vars_fd = scratch / "kvm-probe-vars.fd"
    if layout.firmware.vars is None:
        return False
    vars_fd.write_bytes(Path(layout.firmware.vars).read_bytes())
    cmd = machine(layout, vars_fd, "kvm", memory=256) + ["-nic", "none", "-boot", "menu=off"]
    return "BdsDxe" in run(cmd, scratch / "kvm-probe.log", 20.0, "BdsDxe").console
