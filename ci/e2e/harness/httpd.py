"""The HTTP server of the network scenarios: serves build/e2e/<arch>/artifacts to the guest
(10.0.2.2 from inside QEMU) on a free loopback port for the length of a scenario.

What the client needs of it and Python's SimpleHTTPRequestHandler does not do: one byte range
per request (`Range: bytes=A-B` or `bytes=A-`, answered 206; the client fetches an artifact's
signed head alone and resumes a patch download that way). What the scenarios check through it:
the body bytes sent per file (`take_served`, per boot: `expect.http_max`/`http_min`), and
files sent slowly (`throttle`, a boot's `http_throttle`: bytes per second), so that a power cut
can land in the middle of a download. Only plain files of the directory itself are served; no
listings, no HEAD, no multipart ranges (bench/lib/range_server.py, a separate process for the
benchmarks, has those but no throttling or per-boot counts).

`parse_range` is pure; `ArtifactServer` wraps a ThreadingHTTPServer (threads are daemons: a
handler still sending to a killed guest does not hold up the run).
"""

from __future__ import annotations

import http.server
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

PIECE = 64 * 1024  # bytes per write (smaller for throttled files: a quarter second's worth)
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class RangeError(Exception):
    """A Range header this server cannot satisfy (answered 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a `Range` header asks of a file of `size` bytes; None for the
    whole file (no header). Only a single `bytes=A-B` or `bytes=A-` range; B is clipped to the
    file's end; a start at or after the end is a RangeError."""
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        raise RangeError(f"unsupported range {header!r}")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        raise RangeError(f"range {header!r} outside a file of {size} bytes")
    return start, min(end, size - 1)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        generation = self.server.generation
        name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        path = self.server.root / name
        if not name or "/" in name or name.startswith(".") or not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        try:
            span = parse_range(self.headers.get("Range"), size)
        except RangeError:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = span if span is not None else (0, size - 1)
        self.send_response(206 if span is not None else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        rate = self.server.throttle.get(name)
        piece = max(1, min(PIECE, rate // 4)) if rate else PIECE
        t0 = time.monotonic()
        sent = 0
        try:
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1
                while left:
                    data = f.read(min(piece, left))
                    if not data:
                        break
                    # Counted before it is sent: whoever has received it sees it counted.
                    self.server.count(generation, name, len(data))
                    try:
                        self.wfile.write(data)
                    except OSError:
                        self.server.count(generation, name, -len(data))
                        raise
                    sent += len(data)
                    left -= len(data)
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
        except ConnectionError:
            pass  # the guest went away (killed, or it took only what it needed)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.throttle: dict[str, int] = {}  # replaced whole, never changed in place
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        # Requests count towards the period they began in: a handler still sending to a guest
        # killed in the last boot does not count in this one.
        self.generation = 0

    def count(self, generation: int, name: str, n: int) -> None:
        with self._lock:
            if generation == self.generation:
                self._served[name] = self._served.get(name, 0) + n

    def take_served(self) -> dict[str, int]:
        with self._lock:
            served, self._served = self._served, {}
            self.generation += 1
        return served


class ArtifactServer:
    """Serves `root` on 127.0.0.1:<free port> in a thread until `stop()`."""

    def __init__(self, root: Path):
        self._srv = _Server(root)
        self.port = self._srv.server_address[1]
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()

    def throttle(self, rates: dict[str, int]) -> None:
        """Files sent at that many bytes per second from the next request on (none: all at
        full speed)."""
        self._srv.throttle = dict(rates)

    def take_served(self) -> dict[str, int]:
        """Body bytes sent per file for the requests made since the last call (or the start)."""
        return self._srv.take_served()

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
