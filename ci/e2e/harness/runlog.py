"""The run's log: whole lines on stdout, flushed at once, one writer at a time (the
architectures, and the devices of a fleet scenario, run in threads)."""

from __future__ import annotations

import threading

_LOG = threading.Lock()


def log(msg: str) -> None:
    with _LOG:
        print(msg, flush=True)
