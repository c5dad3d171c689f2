#!/usr/bin/env python3
"""The devices and the measurements of bench/fleet-delta.sh (read its header first).

Talks to one rustupdate-server on loopback: the management API with the admin token, the device
API with the gateway token (devices register on first contact, as rustupdate's daemon does with
`gateway-token-file`). Standard library only; every request has a timeout, every wait a deadline.

Usage: fleet_delta.py --url URL --data-dir DIR --base V1.rua --target V2.rua --base-image V1.ext4
                      --tool RUSTUPDATE_ARTIFACT --devices N --threads N --poll-rate N --out FILE
                      [--enforce]
Exit 0 (with --enforce: every goal met), 1 failure or a missed goal, 2 usage.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TENANT = "DEFAULT"
DEVICE_TYPE = "bench-board"
TIMEOUT_S = 60
HEAD_BYTES = 4096  # what rustupdate's daemon asks for first: the artifact's signed head
PATCH_WAIT_S = 1800
READ_CHUNK = 1 << 20
# Goals of issue 21 (docs/bandwidth.md).
MAX_SERVED_RATIO = 1.15
MAX_BUILD_RATIO = 1.5
MAX_POLL_P99_MS = 50.0
FALLBACK_WHY = "segment 1: the rebuilt chunk table does not match the signed one (modified slot)"


class BenchError(Exception):
    pass


@dataclass
class Client:
    """One keep-alive connection to the server; not shared between threads."""

    host: str
    port: int
    conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, headers: dict[str, str],
                body: bytes | None = None, sink: bool = False) -> tuple[int, bytes, int]:
        """(status, body or b"" when sunk, bytes received)."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                if not sink:
                    data = response.read()
                    return response.status, data, len(data)
                got = 0
                while chunk := response.read(READ_CHUNK):
                    got += len(chunk)
                return response.status, b"", got
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise BenchError("unreachable")


@dataclass
class Api:
    url: str
    admin: str
    gateway: str

    @property
    def hostport(self) -> tuple[str, int]:
        parsed = urllib.parse.urlsplit(self.url)
        return parsed.hostname or "127.0.0.1", parsed.port or 80

    def client(self) -> Client:
        return Client(*self.hostport)

    def admin_call(self, client: Client, method: str, path: str, doc: object = None,
                   raw: bytes | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.admin}"}
        body = raw
        if doc is not None:
            body = json.dumps(doc).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        status, data, _ = client.request(method, path, headers, body)
        if status >= 300:
            raise BenchError(f"{method} {path}: {status} {data[:300]!r}")
        return json.loads(data or b"null")

    def device_call(self, client: Client, device: str, method: str, rest: str,
                    doc: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"GatewayToken {self.gateway}"}
        body = None
        if doc is not None:
            body = json.dumps(doc).encode()
            headers["Content-Type"] = "application/json"
        path = f"/{TENANT}/controller/v1/{device}{rest}"
        status, data, _ = client.request(method, path, headers, body)
        return status, (json.loads(data) if data.startswith(b"{") else None)

    def download(self, client: Client, href: str, range_len: int | None = None) -> int:
        parsed = urllib.parse.urlsplit(href)
        headers = {"Authorization": f"GatewayToken {self.gateway}"}
        if range_len is not None:
            headers["Range"] = f"bytes=0-{range_len - 1}"
        status, _, got = client.request("GET", parsed.path, headers, sink=True)
        if status not in (200, 206):
            raise BenchError(f"GET {parsed.path}: {status}")
        return got


@dataclass
class Device:
    name: str
    kind: str  # "v1", "older" or "modified"
    image_sha256: str


@dataclass
class Outcome:
    patch: int = 0
    full: int = 0
    fallbacks: int = 0
    errors: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fleet(n: int, v1_sha: str) -> list[Device]:
    """90 % on v1, 9 % on an older release the server holds no artifact of, 1 % on v1 with a
    modified slot (they report v1: a device cannot know its slot was changed)."""
    older = hashlib.sha256(b"an older release the server does not hold").hexdigest()
    out = []
    for i in range(n):
        slot = i % 100
        kind = "v1" if slot < 90 else ("older" if slot < 99 else "modified")
        out.append(Device(f"fd-{i:05d}", kind, older if kind == "older" else v1_sha))
    return out


def report(api: Api, client: Client, device: Device) -> None:
    status, _ = api.device_call(client, device.name, "PUT", "/configData", {
        "mode": "replace",
        "data": {"device_type": DEVICE_TYPE, "accepts_delta": "known-base",
                 "running_image_sha256": device.image_sha256}})
    if status != 200:
        raise BenchError(f"{device.name}: configData answered {status}")


def for_each_device(api: Api, threads: int, devices: list[Device],
                    job: Callable[[Api, Client, Device], T]) -> list[T]:
    """job(api, client, device) for every device on `threads` threads, one connection each."""
    local = threading.local()

    def run(device: Device) -> T:
        if not hasattr(local, "client"):
            local.client = api.client()
        return job(api, local.client, device)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, devices))


def time_polls(api: Api, devices: list[Device], rate: float, stop: threading.Event,
               latencies: list[float]) -> None:
    """Polls random devices at `rate` per second until `stop`; latencies in ms."""
    client = api.client()
    rng = random.Random(7)
    period = 1.0 / rate
    due = time.monotonic()
    while not stop.is_set():
        device = rng.choice(devices)
        t0 = time.monotonic()
        status, _ = api.device_call(client, device.name, "GET", "")
        if status == 200:
            latencies.append((time.monotonic() - t0) * 1000)
        due += period
        time.sleep(max(0.0, due - time.monotonic()))


def link_of(artifact: dict[str, Any]) -> str:
    href: str = artifact["_links"]["download-http"]["href"]
    return href


def deploy(api: Api, client: Client, device: Device) -> Outcome:
    """One device's deployment, as rustupdate's daemon does it; what it downloaded."""
    out = Outcome()
    deadline = time.monotonic() + 120
    href = None
    while href is None:
        status, base = api.device_call(client, device.name, "GET", "")
        link = (base or {}).get("_links", {}).get("deploymentBase") if status == 200 else None
        if link:
            href = link["href"]
        elif time.monotonic() > deadline:
            out.errors.append(f"{device.name}: never offered the deployment")
            return out
        else:
            time.sleep(1)
    action = href.rsplit("/", 1)[1].split("?")[0]
    status, doc = api.device_call(client, device.name, "GET", f"/deploymentBase/{action}")
    if status != 200 or doc is None:
        out.errors.append(f"{device.name}: deploymentBase answered {status}")
        return out
    artifacts = doc["deployment"]["chunks"][0]["artifacts"]
    full = next(a for a in artifacts if a["filename"].endswith(".rua"))
    patch = next((a for a in artifacts if a["filename"].endswith(".rudelta")), None)
    feedback = f"/deploymentBase/{action}/feedback"
    if patch is not None:
        out.full += api.download(client, link_of(full), HEAD_BYTES)
        out.patch += api.download(client, link_of(patch))
    if patch is None or device.kind == "modified":
        if patch is not None:
            out.fallbacks += 1
            api.device_call(client, device.name, "POST", feedback, {"status": {
                "execution": "proceeding", "result": {"finished": "none"},
                "details": [f"delta fallback: {FALLBACK_WHY}"]}})
        out.full += api.download(client, link_of(full))
    status, _ = api.device_call(client, device.name, "POST", feedback, {"status": {
        "execution": "closed", "result": {"finished": "success"}, "details": ["committed"]}})
    if status != 200:
        out.errors.append(f"{device.name}: final feedback answered {status}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir)
    api = Api(args.url, (data_dir / "admin.token").read_text().strip(),
              (data_dir / "gateway.token").read_text().strip())
    admin = api.client()
    base = api.admin_call(admin, "POST", "/api/v1/artifacts", raw=Path(args.base).read_bytes())
    v1_sha = sha256_file(Path(args.base_image))
    if base.get("image_sha256") != v1_sha:
        raise BenchError(f"v1.rua's image is {base.get('image_sha256')}, the image file {v1_sha}")
    devices = fleet(args.devices, v1_sha)
    t0 = time.monotonic()
    for_each_device(api, args.threads, devices, report)
    print(f"== {len(devices)} devices registered in {time.monotonic() - t0:.1f} s", file=sys.stderr)

    # 1. The target arrives; the server builds the patch while devices poll.
    stop = threading.Event()
    latencies: list[float] = []
    poller = threading.Thread(target=time_polls,
                              args=(api, devices, args.poll_rate, stop, latencies))
    poller.start()
    target = api.admin_call(admin, "POST", "/api/v1/artifacts",
                            raw=Path(args.target).read_bytes())
    deadline = time.monotonic() + PATCH_WAIT_S
    while True:
        patches = api.admin_call(admin, "GET", f"/api/v1/artifacts/{target['id']}/deltas")
        if patches and all(p["state"] not in ("queued", "building") for p in patches):
            break
        if time.monotonic() > deadline:
            stop.set()
            raise BenchError(f"the patch was not built within {PATCH_WAIT_S} s: {patches}")
        time.sleep(0.2)
    stop.set()
    poller.join()
    if len(patches) != 1 or patches[0]["state"] != "ready":
        raise BenchError(f"expected one ready patch: {patches}")
    patch = patches[0]
    server_build_s = (patch["finished_at"] - patch["started_at"]) / 1000
    print(f"== the server built the patch in {server_build_s:.2f} s ({patch['size']} bytes); "
          f"{len(latencies)} polls meanwhile", file=sys.stderr)

    # 2. The host tool, the same patch.
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        subprocess.run([args.tool, "delta", "--base", args.base, "--target", args.target,
                        "--level", "19", "-o", f"{tmp}/v2.rudelta"], check=True,
                       stdout=subprocess.DEVNULL)
        tool_s = time.monotonic() - t0
        tool_bytes = Path(f"{tmp}/v2.rudelta").stat().st_size
    print(f"== the host tool made it in {tool_s:.2f} s ({tool_bytes} bytes)", file=sys.stderr)

    # 3. The rollout.
    rollout = api.admin_call(admin, "POST", "/api/v1/rollouts", {
        "name": "fleet-delta", "artifact_id": target["id"], "device_type": DEVICE_TYPE,
        "phases": "100", "success_threshold": 100, "error_threshold": "100%", "start": True})
    t0 = time.monotonic()
    outcomes = for_each_device(api, args.threads, devices, deploy)
    rollout_s = time.monotonic() - t0
    errors = [e for o in outcomes for e in o.errors]
    status = api.admin_call(admin, "GET", f"/api/v1/rollouts/{rollout['id']}")
    downloads = status["downloads"]
    succeeded = sum(p["succeeded"] for p in status["phases"])
    failed = sum(p["failed"] for p in status["phases"])

    full_size = target["size"]
    on_v1 = sum(1 for d in devices if d.kind == "v1")
    ideal = on_v1 * (patch["size"] + HEAD_BYTES) + (len(devices) - on_v1) * full_size
    served = downloads["full_bytes"] + downloads["delta_bytes"]
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 100 else max(latencies)
    return {
        "devices": len(devices), "on_v1": on_v1,
        "on_older": sum(1 for d in devices if d.kind == "older"),
        "modified": sum(1 for d in devices if d.kind == "modified"),
        "artifact_bytes": full_size, "patch_bytes": patch["size"], "tool_patch_bytes": tool_bytes,
        "served_bytes": served, "served_delta_bytes": downloads["delta_bytes"],
        "served_full_bytes": downloads["full_bytes"], "ideal_bytes": ideal,
        "full_only_bytes": len(devices) * full_size,
        "served_over_ideal": served / ideal,
        "served_over_full_only": served / (len(devices) * full_size),
        "fallbacks": downloads["fallbacks"], "fallback_reasons": downloads["fallback_reasons"],
        "server_build_s": server_build_s, "tool_build_s": tool_s,
        "build_ratio": server_build_s / tool_s,
        "polls_while_building": len(latencies), "poll_p99_ms": p99,
        "poll_p50_ms": statistics.median(latencies) if latencies else None,
        "rollout_s": rollout_s, "rollout_state": status["state"],
        "succeeded": succeeded, "failed": failed, "device_errors": errors[:20],
        "client_counted_patch_bytes": sum(o.patch for o in outcomes),
        "client_counted_full_bytes": sum(o.full for o in outcomes),
    }


def verdicts(r: dict[str, Any]) -> list[tuple[bool, str]]:
    return [
        (r["served_over_ideal"] <= MAX_SERVED_RATIO,
         f"bytes served <= {MAX_SERVED_RATIO}x the ideal: {r['served_bytes']:,} of "
         f"{r['ideal_bytes']:,} = {r['served_over_ideal']:.3f}x (full-only rollout: "
         f"{r['full_only_bytes']:,}, served {r['served_over_full_only'] * 100:.1f} % of it)"),
        (r["build_ratio"] <= MAX_BUILD_RATIO,
         f"server patch build <= {MAX_BUILD_RATIO}x the host tool: {r['server_build_s']:.2f} s vs "
         f"{r['tool_build_s']:.2f} s = {r['build_ratio']:.2f}x"),
        (r["poll_p99_ms"] < MAX_POLL_P99_MS,
         f"poll p99 < {MAX_POLL_P99_MS:.0f} ms while the patch builds: {r['poll_p99_ms']:.2f} ms "
         f"over {r['polls_while_building']} polls"),
        (r["failed"] == 0 and r["succeeded"] == r["devices"] and not r["device_errors"],
         f"every device succeeded: {r['succeeded']} of {r['devices']}, {r['failed']} failed, "
         f"{r['fallbacks']} fell back"),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name in ("url", "data-dir", "base", "target", "base-image", "tool", "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--poll-rate", type=float, required=True)
    p.add_argument("--enforce", action="store_true")
    args = p.parse_args()
    if args.devices < 100 or args.threads < 1 or args.poll_rate <= 0:
        p.error("--devices >= 100, --threads >= 1, --poll-rate > 0")
    try:
        result = run(args)
    except (BenchError, OSError, subprocess.CalledProcessError, KeyError) as err:
        print(f"fleet_delta.py: {err}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for key in ("devices", "on_v1", "on_older", "modified", "artifact_bytes", "patch_bytes",
                "tool_patch_bytes", "served_delta_bytes", "served_full_bytes", "served_bytes",
                "ideal_bytes", "full_only_bytes", "fallbacks", "rollout_s", "rollout_state"):
        print(f"{key:22} {result[key]}")
    missed = 0
    for ok, text in verdicts(result):
        print(f"  [{'met' if ok else 'MISSED'}] {text}")
        missed += not ok
    return 1 if (args.enforce and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
