"""A fleet scenario's server and rollout while the scenario runs: the server started with the
e2e key, the artifact uploaded, the devices registered with their disks, the rollout started; what
each device's boot gets through fw_cfg, when a boot's `until` holds, and the rollout's end state
for summary.json and the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import scenario
from .disk import Disk
from .fleet_server import FleetError, FleetServer, server_section
from .layout import Layout
from .runlog import log
from .scenario import Scenario


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
    if spec.patch is not None:
        server.upload_patch(artifact, build / lay.arch / "artifacts" / spec.patch)
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
