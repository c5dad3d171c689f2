#!/usr/bin/env python3
"""A recording fake of a hawkBit DDI v1 server with one deployment, for finding out what a DDI
client (SWUpdate's suricatta) sends: every request is written to stdout as one JSON line
(method, path, query, headers that matter, body).

It is not a server to test rustupdate-server against; it pins down the client side so the
findings in ci/server-peers/README.md can be re-checked when SWUpdate changes. It answers:
  GET  /{tenant}/controller/v1/{id}                 poll: sleep 00:00:01, deploymentBase, and
                                                    configData until the device has sent it
  PUT  .../configData                               200
  GET  .../deploymentBase/{action}                  one chunk, one artifact, all three hashes
  GET  /download/{name}                             the artifact (Range not supported)
  POST .../deploymentBase/{action}/feedback         200; closed feedback ends the deployment
  GET  .../installedBase/{action}                   the same body as deploymentBase

Usage: ddi_recorder.py --artifact FILE [--port 0] [--port-file FILE]
The chosen port is written to --port-file once the socket listens.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import sys
import threading
from typing import Any

ACTION_ID = 7


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()

    with open(args.artifact, "rb") as f:
        artifact = f.read()
    name = os.path.basename(args.artifact)
    state = {"closed": False, "have_config": False}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the JSON lines are the log
            pass

        def record(self, body: bytes) -> None:
            line: dict[str, Any] = {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "accept": self.headers.get("Accept"),
                "content_type": self.headers.get("Content-Type"),
                "range": self.headers.get("Range"),
                "user_agent": self.headers.get("User-Agent"),
            }
            if body:
                try:
                    line["body"] = json.loads(body)
                except ValueError:
                    line["body_raw"] = body.decode("utf-8", "replace")
            with lock:
                print(json.dumps(line), flush=True)

        def reply(self, code: int, obj: object = None, raw: bytes | None = None,
                  ctype: str = "application/hal+json") -> None:
            data = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def base(self) -> str | None:
            host = self.headers.get("Host")
            m = re.match(r"^(/[^/]+/controller/v1/[^/?]+)", self.path)
            return f"http://{host}{m.group(1)}" if m else None

        def deployment(self) -> dict[str, Any]:
            host = self.headers.get("Host")
            href = f"http://{host}/download/{name}"
            return {
                "id": str(ACTION_ID),
                "deployment": {
                    "download": "forced",
                    "update": "forced",
                    "chunks": [{
                        "part": "os",
                        "version": "1.0.0",
                        "name": "suricatta-test",
                        "artifacts": [{
                            "filename": name,
                            "size": len(artifact),
                            "hashes": {
                                "sha1": hashlib.sha1(artifact).hexdigest(),
                                "md5": hashlib.md5(artifact).hexdigest(),
                                "sha256": hashlib.sha256(artifact).hexdigest(),
                            },
                            "_links": {"download-http": {"href": href},
                                       "md5sum-http": {"href": href + ".MD5SUM"}},
                        }],
                    }],
                },
            }

        def do_GET(self) -> None:
            self.record(b"")
            path = self.path.split("?")[0]
            base = self.base()
            if path == f"/download/{name}":
                return self.reply(200, raw=artifact, ctype="application/octet-stream")
            if base and re.fullmatch(r"/[^/]+/controller/v1/[^/]+", path):
                # Like hawkBit, ask for configData only until the device has sent it: suricatta
                # sends it on every poll that carries the link and installs nothing meanwhile.
                links: dict[str, dict[str, str]] = {}
                if not state["have_config"]:
                    links["configData"] = {"href": base + "/configData"}
                if not state["closed"]:
                    links["deploymentBase"] = {"href": f"{base}/deploymentBase/{ACTION_ID}?c=-1"}
                else:
                    links["installedBase"] = {"href": f"{base}/installedBase/{ACTION_ID}"}
                return self.reply(200, {"config": {"polling": {"sleep": "00:00:01"}}, "_links": links})
            if re.search(r"/(deploymentBase|installedBase)/\d+$", path):
                return self.reply(200, self.deployment())
            return self.reply(404, {"message": "not found"})

        def do_PUT(self) -> None:
            self.record(self.body())
            if self.path.split("?")[0].endswith("/configData"):
                state["have_config"] = True
            return self.reply(200)

        def do_POST(self) -> None:
            body = self.body()
            self.record(body)
            try:
                if json.loads(body)["status"]["execution"] == "closed":
                    state["closed"] = True
            except (ValueError, KeyError, TypeError):
                pass
            return self.reply(200)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as out:
            out.write(str(server.server_address[1]))
        os.rename(args.port_file + ".tmp", args.port_file)
    print(json.dumps({"listening": server.server_address[1]}), file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
