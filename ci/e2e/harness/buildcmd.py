"""build.py's log line and how its steps run commands (argument lists of words and paths,
checked unless told otherwise)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(f"[build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# A command line: words and paths (run() makes them text).
Cmd = Sequence[str | Path]


def run(cmd: Cmd, **kw: Any) -> subprocess.CompletedProcess[Any]:
    check = kw.pop("check", True)
    return subprocess.run([str(c) for c in cmd], check=check, **kw)


def out(cmd: Cmd, **kw: Any) -> str:
    text: str = run(cmd, stdout=subprocess.PIPE, text=True, **kw).stdout
    return text
