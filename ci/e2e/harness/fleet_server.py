"""The fleet server on the host for the fleet scenarios: a `rustupdate-server` (tools/server,
docs/server.md) with a fresh data directory, listening on 127.0.0.1 only (the guests reach it as
10.0.2.2 through QEMU's user networking), and the few calls of its management API the scenarios
need. Standard library only (urllib); every wait has a deadline.

`server_section` and `observe` are pure; `FleetServer` starts and stops one process, by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import guest

Json = dict[str, Any]  # a JSON object of the management API

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0
TENANT = "DEFAULT"
# Where the guest's init puts the token it gets through fw_cfg (guest/init, tmpfs, mode 0600).
GUEST_TOKEN_FILE = "/run/rustupdate/server-token"
AUTH_MODES = ("target", "gateway")  # TargetToken of a registered device, or the GatewayToken


class FleetError(Exception):
    pass


def server_section(url: str, controller_id: str, auth: str, poll_interval: int) -> str:
    """The client's [server] section for the daemon (appended to the guest's rustupdate.toml)."""
    if auth not in AUTH_MODES:
        raise FleetError(f"auth {auth!r}, expected one of {list(AUTH_MODES)}")
    token_key = "token-file" if auth == "target" else "gateway-token-file"
    return (f'[server]\nurl = "{url}"\ntenant = "{TENANT}"\ncontroller-id = "{controller_id}"\n'
            f'{token_key} = "{GUEST_TOKEN_FILE}"\nallow-insecure-http = true\n'
            f'poll-interval-secs = {poll_interval}\nreboot = "immediate"\n')


# A head of the artifact read for a delta (one Range request) is at most this many bytes.
HEAD_MAX = 64 * 1024


def download_kind(action: Json | None) -> str:
    """What the server served for an action: `delta` (a patch, and of the artifact no more than
    its head), `full` (the artifact only), `delta+full` (a patch, then the artifact: a
    fallback) or `none`."""
    if not action:
        return "none"
    delta, full = int(action.get("delta_bytes") or 0), int(action.get("full_bytes") or 0)
    if delta and full <= HEAD_MAX:
        return "delta"
    if delta:
        return "delta+full"
    return "full" if full else "none"


def observe(device: Json, rollout: Json | None, rollout_id: int | None) -> dict[str, str]:
    """What the scenarios check on the server, as text ("null" when missing): the device's action
    of the rollout (`action`, `reason`), the rollout's state and pause reason, how many
    deployment feedbacks the device sent (`feedbacks`), what was downloaded for the action
    (`download`, see download_kind) and why the device left its delta patch (`delta_fallback`)."""
    action = next((a for a in device.get("actions", []) if a.get("rollout_id") == rollout_id),
                  None)

    def text(v: object) -> str:
        return "null" if v is None else str(v)

    return {
        "action": text(action and action.get("state")),
        "reason": text(action and action.get("reason")),
        "feedbacks": str(len(action.get("feedback", []))) if action else "0",
        "rollout": text(rollout and rollout.get("state")),
        "pause_reason": text(rollout and rollout.get("pause_reason")),
        "download": download_kind(action),
        "delta_fallback": text(action and action.get("delta_fallback")),
    }


def _object(doc: Any, what: str) -> Json:
    if not isinstance(doc, dict):
        raise FleetError(f"the server's {what} is not a JSON object: {doc!r:.200}")
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Rollout:
    id: int
    artifact_id: int
    device_type: str


class FleetServer:
    """One rustupdate-server process with its own data directory; `stop` ends it by pid."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, poll_interval: int):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.poll_interval = poll_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.admin_token = self.gateway_token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def guest_url(self) -> str:
        return guest.http_url(self.port)

    def start(self, trusted_keys: list[Path]) -> None:
        """Starts the server on a free loopback port (another port if someone took it between
        choosing and binding) and waits for /healthz."""
        (self.data_dir / "keys").mkdir(parents=True, exist_ok=True)
        for key in trusted_keys:
            (self.data_dir / "keys" / key.name).write_bytes(key.read_bytes())
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(
                    [str(self.binary), "--data-dir", str(self.data_dir),
                     "--listen", f"127.0.0.1:{self.port}",
                     # Guests reach the loopback server through QEMU's NAT as 10.0.2.2: their
                     # links must point there (the server builds links only from hosts it knows).
                     "--allowed-host", self.guest_url.removeprefix("http://"),
                     "--poll-interval", str(self.poll_interval)],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                    env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")))
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            if self.proc.poll() is None and time.monotonic() < deadline:
                self.admin_token = (self.data_dir / "admin.token").read_text().strip()
                self.gateway_token = (self.data_dir / "gateway.token").read_text().strip()
                return
            log = self.log_path.read_text(errors="replace")
            self.stop()
            if "address already in use" not in log.lower():
                raise FleetError(f"rustupdate-server did not come up (log {self.log_path})")
        raise FleetError("no free port for rustupdate-server")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    # -- management API ------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Json | None = None,
            data: bytes | None = None) -> Any:
        """The decoded JSON answer (checked by the caller), FleetError for anything else."""
        if body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.admin_token}",
            "Content-Type": "application/json" if body is not None else "application/octet-stream"})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as err:
            raise FleetError(f"{method} {path}: {err.code} {err.read()[:300]!r}") from None
        except (urllib.error.URLError, OSError) as err:
            raise FleetError(f"{method} {path}: {err}") from None

    def upload(self, artifact: Path) -> int:
        return int(self.api("POST", "/api/v1/artifacts", data=artifact.read_bytes())["id"])

    def upload_patch(self, artifact_id: int, patch: Path) -> None:
        """A patch of the artifact made by a release pipeline (checked by the server, or, sealed,
        as far as it can without a recipient key)."""
        self.api("POST", f"/api/v1/artifacts/{artifact_id}/patch", data=patch.read_bytes())

    def add_device(self, controller_id: str, device_type: str) -> str:
        """Registers a device; its target token."""
        return str(self.api("POST", "/api/v1/devices", {
            "controller_id": controller_id, "device_type": device_type})["token"])

    def create_rollout(self, name: str, artifact_id: int, device_type: str, phases: str,
                       error_threshold: str) -> Rollout:
        doc = self.api("POST", "/api/v1/rollouts", {
            "name": name, "artifact_id": artifact_id, "device_type": device_type,
            "phases": phases, "success_threshold": 100, "error_threshold": error_threshold,
            "start": True})
        return Rollout(doc["id"], artifact_id, device_type)

    def device(self, controller_id: str) -> Json:
        return _object(self.api("GET", f"/api/v1/devices/{controller_id}"), "device")

    def rollout(self, rollout_id: int) -> Json:
        return _object(self.api("GET", f"/api/v1/rollouts/{rollout_id}"), "rollout")

    def observe(self, controller_id: str, rollout_id: int | None) -> dict[str, str]:
        rollout = self.rollout(rollout_id) if rollout_id is not None else None
        return observe(self.device(controller_id), rollout, rollout_id)
