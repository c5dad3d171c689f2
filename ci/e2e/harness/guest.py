"""The host's side of the protocol with the guest's init (guest/init): the fw_cfg items that
carry a boot's instructions in, and the `E2E:` console lines that carry what happened out.
Keep in step with guest/init, which is the other side.
"""

from __future__ import annotations

import json
import re
from typing import Any

FW_CFG_PREFIX = "opt/rustupdate/"
# server: the client's [server] section (appended to its rustupdate.toml for the boot);
# token: the device's TargetToken or the GatewayToken (a 0600 file on a tmpfs).
FW_CFG_ITEMS = ("action", "env", "health", "end", "server", "token")
HOST_FROM_GUEST = "10.0.2.2"  # QEMU user networking
HTTP_PLACEHOLDER = "@HTTP@"
# The `daemon` action starts `rustupdate daemon` in the background and waits for STOP_LINE on
# the console (the runner types it when the server shows what the boot waits for); then the
# init stops the daemon and ends the boot as usual.
DAEMON_ACTION = "daemon"
STOP_LINE = "e2e-stop-daemon"
DAEMON_STARTED = "E2E: daemon started"

BOOTED = "E2E: booted"
_BOOTED = re.compile(r"^E2E: booted slot=(\S*) version=(\S*)", re.M)
_END = re.compile(r"^E2E: end (\w+)", re.M)
_STATUS = re.compile(r"^E2E: status-begin\n(.*?)^E2E: status-end", re.S | re.M)


def result_marker(command: str, rc: int) -> str:
    """The line the guest prints after a client command, e.g. `E2E: result commit rc=0`."""
    return f"E2E: result {command} rc={rc}"


COMMITTED = result_marker("commit", 0)


def fault_marker(number: int, name: str | None = None) -> str:
    """What the client prints when RUSTUPDATE_FAULT_AFTER stops it (client/src/sys/fault.rs)."""
    return f"simulated power cut at fault point {number}" + (f" ({name})" if name else "")


# The boot scripts (meta-rustupdate's grub.cfg and boot.cmd) print this before they load a slot's
# kernel; the last one on a console names the slot whose kernel ran.
_LOADER_SLOT = re.compile(r"^rustupdate: booting slot (\S+) ", re.M)
_PANIC = re.compile(r"Kernel panic - not syncing: (.*)")
# Panics that come from the guest's own files rather than from the emulator: an init ran and
# died (the broken release v3 does this on purpose), or the slot's kernel could not find or mount
# what it should run (a slot without a complete image).
CONTENT_PANICS = ("Attempted to kill init", "No working init found", "Requested init",
                  "VFS: Unable to mount root fs")

_TRACE = re.compile(r"^rustupdate-fault-point (\d+) (\S+)", re.M)  # RUSTUPDATE_FAULT_TRACE=1


def fw_cfg(items: dict[str, str]) -> list[str]:
    """QEMU arguments passing `items` (no empty ones) to the guest's init."""
    args = []
    for name, value in items.items():
        if name not in FW_CFG_ITEMS:
            raise ValueError(f"no fw_cfg item {name!r} in guest/init")
        if value:
            args += ["-fw_cfg", f"name={FW_CFG_PREFIX}{name},string={value.replace(',', ',,')}"]
    return args


def http_url(port: int) -> str:
    return f"http://{HOST_FROM_GUEST}:{port}"


def booted(console: str) -> tuple[str, str] | None:
    """(slot from the kernel command line, root file system version) of the last boot."""
    found = _BOOTED.findall(console)
    return found[-1] if found else None


def loader_slot(console: str) -> str | None:
    """The slot whose kernel the bootloader loaded last (None: it never got that far)."""
    found = _LOADER_SLOT.findall(console)
    return found[-1] if found else None


def panic_before_init(console: str) -> str | None:
    """The panic line if the guest's kernel panicked before any of its user space ran (no
    `E2E:` line before it) for a reason of its own, such as "IO-APIC + timer doesn't work!" of
    an x86_64 guest on a loaded TCG host: an infrastructure failure, not the updater's. None
    for no panic, a panic after user space ran, or a CONTENT_PANICS one."""
    for line in console.splitlines():
        if line.startswith("E2E:"):
            return None
        m = _PANIC.search(line)
        if m:
            reason = m.group(1)
            return None if any(c in reason for c in CONTENT_PANICS) else line.strip()
    return None


def end(console: str) -> str | None:
    """How the init ended the boot (poweroff, reboot, cut), if it got that far."""
    found = _END.findall(console)
    return found[-1] if found else None


def status(console: str) -> dict[str, Any] | None:
    """The client's `status --json` printed between the status markers."""
    m = _STATUS.search(console)
    if not m:
        return None
    # The client's log lines (stderr) may be interleaved; keep the JSON object.
    body = m.group(1)
    start, stop = body.find("{"), body.rfind("}")
    if start < 0:
        return None
    try:
        doc = json.loads(body[start:stop + 1])
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def fault_trace(console: str) -> list[tuple[int, str]]:
    return [(int(n), name) for n, name in _TRACE.findall(console)]
