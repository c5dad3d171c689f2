"""The host's side of the protocol with the guest's init (guest/init): the fw_cfg items that
carry a boot's instructions in, and the `E2E:` console lines that carry what happened out.
Keep in step with guest/init, which is the other side.
"""

from __future__ import annotations

import json
import re

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


def end(console: str) -> str | None:
    """How the init ended the boot (poweroff, reboot, cut), if it got that far."""
    found = _END.findall(console)
    return found[-1] if found else None


def status(console: str) -> dict | None:
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
        return json.loads(body[start:stop + 1])
    except json.JSONDecodeError:
        return None


def fault_trace(console: str) -> list[tuple[int, str]]:
    return [(int(n), name) for n, name in _TRACE.findall(console)]
