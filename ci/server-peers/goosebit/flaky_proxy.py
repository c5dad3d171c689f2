"""A misbehaving HTTP proxy for backoff tests (python3 stdlib only, loopback only).

Forwards every request to UPSTREAM, except that the first requests get the faults listed in
--faults, one per request in order:
  500   answer "500 Internal Server Error" (the request never reaches the upstream)
  drop  read the request, then close the connection without any answer
  reset read the request, then reset the connection (RST: SO_LINGER 0)
The Host header is passed on unchanged, so links the upstream builds from it (gooseBit's
deploymentBase and download hrefs) point back at the proxy.

Every request is logged as one JSON line to --log, flushed at once:
  {"n": 1, "t": <monotonic s>, "method": "GET", "path": "/DEFAULT/…", "action": "500|drop|reset|forward",
   "status": <status sent or null>, "body": <request body, only JSON bodies up to 64 KiB>}
On start the chosen port is written to --port-file (written to a temp name and renamed, so a
reader never sees a partial number).

Usage: flaky_proxy.py --upstream http://127.0.0.1:PORT --faults 500,drop,500,reset
                      --log requests.jsonl --port-file port [--port 0]
"""

import argparse
import contextlib
import http.client
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from typing import Any

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade",
}
FAULTS = ("500", "drop", "reset")
UPSTREAM_TIMEOUT_S = 30
MAX_LOGGED_BODY = 64 << 10


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True)
    p.add_argument("--faults", default="", help="comma-separated: 500, drop, reset")
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    for f in args.faults:
        if f not in FAULTS:
            p.error(f"unknown fault {f!r} (known: {', '.join(FAULTS)})")
    return args


class State:
    def __init__(self, faults: list[str], log_path: str, upstream: str) -> None:
        self.faults = faults
        self.count = 0
        self.lock = threading.Lock()
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - open while serving
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            sys.exit(f"flaky_proxy.py: upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream = (u.hostname, u.port or 80)

    def next_request(self) -> tuple[int, str]:
        """Numbers the request and picks its action."""
        with self.lock:
            self.count += 1
            n = self.count
        action = self.faults[n - 1] if n <= len(self.faults) else "forward"
        return n, action

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the daemon's HTTP agent expects
    state: State  # set on the class before serving

    def log_message(self, format: str, *args: Any) -> None:  # the JSON log is the record
        pass

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_any(self) -> None:
        n, action = self.state.next_request()
        t = time.monotonic()
        body = self.read_body()
        entry = {"n": n, "t": t, "method": self.command, "path": self.path, "action": action, "status": None}
        if body and "json" in self.headers.get("Content-Type", "") and len(body) <= MAX_LOGGED_BODY:
            entry["body"] = body.decode("utf-8", errors="replace")
        try:
            if action == "500":
                payload = b'{"detail":"injected by flaky_proxy.py"}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                entry["status"] = 500
            elif action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif action == "reset":
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                entry["status"] = self.forward(body)
        finally:
            self.state.record(entry)

    def forward(self, body: bytes) -> int:
        conn = http.client.HTTPConnection(*self.state.upstream, timeout=UPSTREAM_TIMEOUT_S)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return resp.status
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_PATCH = do_DELETE = handle_any


def main() -> int:
    args = parse_args()
    Handler.state = State(args.faults, args.log, args.upstream)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(tmp, args.port_file)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
