"""gooseBit's management API as an operator uses it (python3 stdlib only).

Endpoints (gooseBit 0.2.x, read from its source: goosebit/__init__.py, goosebit/api/v1/…):
  POST /setup   form username+password: creates the first user with permissions ["*"]
  POST /login   form username+password -> {"access_token": JWT, "token_type": "bearer"}
  every /api/v1 call: Authorization: Bearer JWT
  GET  /api/v1/devices            all devices (DeviceSchema: id, sw_version, hardware, last_state,
                                  update_mode, progress, assigned_software, last_seen, …)
  GET  /api/v1/devices/{id}/log   {"log": last_log, "progress": progress}
  PATCH /api/v1/devices           {"devices": [id], "software": "<software id>"} -> update mode Assigned
  GET  /api/v1/software           {"software": [{id, name, version, size, hash, compatibility}]}
  PUT  /api/v1/software           multipart "file" (or form "url"): parsed as .swu / RAUC only
Not used: GET /api/v1/devices/{id} registers an unknown id as a device as a side effect (it goes
through the DDI device lookup) and answers 500 in 0.2.12 when the device has assigned software
(compatibility not prefetched), so devices are read from the list.

Usage: gb_api.py URL setup USER PASSWORD            -> prints the bearer token (setup + login)
       gb_api.py URL --token T devices              -> JSON list
       gb_api.py URL --token T device ID            -> JSON of one device (exit 1 if absent)
       gb_api.py URL --token T log ID               -> JSON
       gb_api.py URL --token T software             -> JSON
       gb_api.py URL --token T upload FILE          -> prints "HTTP_STATUS BODY" (exit 0 either way)
       gb_api.py URL --token T assign ID SOFTWARE_ID
       gb_api.py URL --token T expect ID [--state S] [--sw-version V | --no-sw-version]
                 [--progress N] [--log-contains TEXT]… [--never-state S]…
           exit 0 when all hold, 1 (printing what differs) when not yet, 2 when the device is in a
           --never-state (a wait for the others would be in vain)
"""

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

TIMEOUT_S = 10


class Api:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: bytes | None = None,
             ctype: str | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method: str, path: str, obj: object = None) -> Any:
        body = None if obj is None else json.dumps(obj).encode()
        status, data = self.call(method, path, body, "application/json" if body else None)
        if status != 200:
            sys.exit(f"gb_api.py: {method} {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data)

    def form(self, path: str, fields: dict[str, str]) -> Any:
        body = urllib.parse.urlencode(fields).encode()
        status, data = self.call("POST", path, body, "application/x-www-form-urlencoded")
        if status != 200:
            sys.exit(f"gb_api.py: POST {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data)

    def device(self, dev_id: str) -> dict[str, Any] | None:
        for d in self.json("GET", "/api/v1/devices")["devices"]:
            if isinstance(d, dict) and d.get("id") == dev_id:
                return d
        return None


def multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def expect(api: Api, a: argparse.Namespace) -> int:
    d = api.device(a.id)
    if d is None:
        print(f"device {a.id} not in gooseBit's device list")
        return 1
    if d["last_state"] in a.never_state:
        print(f"device {a.id} is in state {d['last_state']}: {json.dumps(d)}")
        return 2
    wrong = []
    if a.state is not None and d["last_state"] != a.state:
        wrong.append(f"last_state {d['last_state']!r}, want {a.state!r}")
    if a.sw_version is not None and d["sw_version"] != a.sw_version:
        wrong.append(f"sw_version {d['sw_version']!r}, want {a.sw_version!r}")
    if a.no_sw_version and d["sw_version"] is not None:
        wrong.append(f"sw_version {d['sw_version']!r}, want none")
    if a.progress is not None and d["progress"] != a.progress:
        wrong.append(f"progress {d['progress']!r}, want {a.progress}")
    if a.log_contains:
        log = api.json("GET", f"/api/v1/devices/{urllib.parse.quote(a.id)}/log")["log"] or ""
        for text in a.log_contains:
            if text not in log:
                wrong.append(f"log lacks {text!r} (log: {log[-400:]!r})")
    if wrong:
        print(f"device {a.id}: " + "; ".join(wrong))
        return 1
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument("--token")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("user")
    s.add_argument("password")
    sub.add_parser("devices")
    sub.add_parser("software")
    for name in ("device", "log"):
        sub.add_parser(name).add_argument("id")
    s = sub.add_parser("upload")
    s.add_argument("file")
    s = sub.add_parser("assign")
    s.add_argument("id")
    s.add_argument("software_id")
    s = sub.add_parser("expect")
    s.add_argument("id")
    s.add_argument("--state")
    s.add_argument("--sw-version")
    s.add_argument("--no-sw-version", action="store_true")
    s.add_argument("--progress", type=int)
    s.add_argument("--log-contains", action="append", default=[])
    s.add_argument("--never-state", action="append", default=[])
    a = p.parse_args()
    api = Api(a.url, a.token)

    if a.cmd == "setup":
        api.form("/setup", {"username": a.user, "password": a.password})
        print(api.form("/login", {"username": a.user, "password": a.password})["access_token"])
    elif a.cmd == "devices":
        print(json.dumps(api.json("GET", "/api/v1/devices")["devices"]))
    elif a.cmd == "software":
        print(json.dumps(api.json("GET", "/api/v1/software")["software"]))
    elif a.cmd == "device":
        d = api.device(a.id)
        if d is None:
            print(f"gb_api.py: device {a.id} not in gooseBit's device list", file=sys.stderr)
            return 1
        print(json.dumps(d))
    elif a.cmd == "log":
        print(json.dumps(api.json("GET", f"/api/v1/devices/{urllib.parse.quote(a.id)}/log")))
    elif a.cmd == "upload":
        with open(a.file, "rb") as f:
            body, ctype = multipart("file", a.file.rsplit("/", 1)[-1], f.read())
        status, data = api.call("PUT", "/api/v1/software", body, ctype)
        print(status, data.decode(errors="replace"))
    elif a.cmd == "assign":
        api.json("PATCH", "/api/v1/devices", {"devices": [a.id], "software": a.software_id})
    elif a.cmd == "expect":
        return expect(api, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
