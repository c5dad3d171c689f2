#!/usr/bin/env python3
"""Loopback static file server for the delta benchmarks, with HTTP range support and a request log.

    range_server.py serve DIR [--log FILE] [--port-file FILE] [--no-range]
    range_server.py summary LOG

`serve` listens on 127.0.0.1 on an ephemeral port, prints the port as the first line of stdout (and
writes it to --port-file, atomically, when given) and serves the files under DIR with GET and HEAD
over HTTP/1.1 (keep-alive). A `Range: bytes=...` header with one range gets 206 and Content-Range;
with several, 206 multipart/byteranges (RFC 7233, ranges sent in the order asked, not merged); an
unsatisfiable one 416; a malformed one is ignored (200). --no-range ignores Range altogether.
Every request appends one JSON line to --log: method, path, status, ranges, bytes (body bytes
written). SIGTERM stops it cleanly. `summary` prints the totals of a log as one JSON object.

It does not list directories, read request bodies (a request that announces one is refused with
400 and the connection closed), follow paths out of DIR, or listen on anything but loopback.
"""
import argparse
import collections
import json
import os
import re
import signal
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

MAX_RANGES = 4096  # ranges honoured in one request; more are answered with the whole file (200)
BLOCK = 1 << 16  # bytes read from a file per write
RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges of a Range header as inclusive (first, last) pairs clamped to `size`.
    None: ignore the header (malformed, not bytes, too many ranges); []: unsatisfiable."""
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    ranges = []
    for spec in specs.split(","):
        m = RANGE_SPEC.match(spec)
        if not m or (not m.group(1) and not m.group(2)):
            return None
        if m.group(1):
            first = int(m.group(1))
            last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if m.group(2) and int(m.group(2)) < first:
                return None
        else:  # suffix range: the last N bytes
            first, last = max(size - int(m.group(2)), 0), size - 1
        if first < size and last >= first:
            ranges.append((first, last))
    return ranges if len(ranges) <= MAX_RANGES else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server_version = "rustupdate-bench-range-server"
    server: "Server"
    status: int | None

    def do_GET(self) -> None:
        self.serve(body=True)

    def do_HEAD(self) -> None:
        self.serve(body=False)

    def log_message(self, format: str, *args: Any) -> None:  # the JSON log replaces the stderr access log
        pass

    def serve(self, body: bool) -> None:
        self.status, self.nranges, self.sent = None, 0, 0
        try:
            self.respond(body)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up mid-body (zckdl does)
            self.close_connection = True
        finally:  # bytes = what was handed to the socket before that
            self.server.record(self.command, self.path, self.status, self.nranges, self.sent)

    def respond(self, body: bool) -> None:
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") \
                or "Transfer-Encoding" in self.headers:
            self.close_connection = True
            return self.error(400)
        path = self.resolve()
        if path is None:
            return self.error(404)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = None if self.server.no_range else self.headers.get("Range")
            ranges = parse_ranges(header, size) if header else None
            if ranges is None:
                self.head(200, size, "application/octet-stream")
                if body:
                    self.copy(f, 0, size - 1)
                return
            if not ranges:
                return self.error(416, {"Content-Range": f"bytes */{size}"})
            if len(ranges) == 1:
                first, last = ranges[0]
                self.head(206, last - first + 1, "application/octet-stream",
                          {"Content-Range": f"bytes {first}-{last}/{size}"})
                self.nranges = 1
                if body:
                    self.copy(f, first, last)
                return
            boundary = os.urandom(12).hex()
            parts = [(f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n").encode() for a, b in ranges]
            parts[0] = parts[0][2:]  # the first delimiter starts the body, the others a new line
            tail = f"\r\n--{boundary}--\r\n".encode()
            length = sum(len(p) for p in parts) + sum(b - a + 1 for a, b in ranges) + len(tail)
            self.head(206, length, f"multipart/byteranges; boundary={boundary}")
            self.nranges = len(ranges)
            if body:
                for part, (first, last) in zip(parts, ranges, strict=True):
                    self.write(part)
                    self.copy(f, first, last)
                self.write(tail)

    def resolve(self) -> str | None:
        """The regular file under the root that the request path names, or None."""
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = os.path.realpath(os.path.join(self.server.root, rel))
        if os.path.commonpath([path, self.server.root]) != self.server.root or not os.path.isfile(path):
            return None
        return path

    def head(self, status: int, length: int, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "none" if self.server.no_range else "bytes")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def error(self, status: int, extra: dict[str, str] | None = None) -> None:
        self.head(status, 0, "text/plain", extra)

    def copy(self, f: BinaryIO, first: int, last: int) -> None:
        f.seek(first)
        left = last - first + 1
        while left > 0:
            data = f.read(min(BLOCK, left))
            if not data:
                raise OSError("file shrank while being served")
            self.write(data)
            left -= len(data)

    def write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.sent += len(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a SIGTERM does not wait for clients that keep connections open

    def __init__(self, root: str, log: str | None, no_range: bool) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root, self.no_range = os.path.realpath(root), no_range
        self.log = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115 - while serving
        self.lock = threading.Lock()

    def record(self, method: str, path: str, status: int | None, ranges: int, sent: int) -> None:
        line = json.dumps({"method": method, "path": path, "status": status, "ranges": ranges, "bytes": sent})
        with self.lock:
            if self.log:
                self.log.write(line + "\n")
                self.log.flush()

    def close_log(self) -> None:  # handler threads may still be finishing requests
        with self.lock:
            if self.log:
                self.log.close()
                self.log = None


def serve(args: argparse.Namespace) -> None:
    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)  # before the port is published: a caller may stop us at once
    server = Server(args.dir, args.log, args.no_range)
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.close_log()


def summary(args: argparse.Namespace) -> None:
    with open(args.log, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    print(json.dumps({"requests": len(entries), "bytes": sum(e["bytes"] for e in entries),
                      "ranges": sum(e["ranges"] for e in entries),
                      "status": collections.Counter(str(e["status"]) for e in entries)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("serve", help="serve DIR on 127.0.0.1")
    p.add_argument("dir")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--port-file", help="also write the chosen port to this file")
    p.add_argument("--no-range", action="store_true", help="ignore Range headers (always 200)")
    p.set_defaults(run=serve)
    p = sub.add_parser("summary", help="print the totals of a request log as JSON")
    p.add_argument("log")
    p.set_defaults(run=summary)
    args = parser.parse_args()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
