#!/usr/bin/env python3
"""Assignment lines of meta-rustupdate that bitbake would not parse, found without bitbake.

oelint-adv reads a line like `A ??= ""${@...}"` without complaint, but bitbake stops at it
("unparsed line"), and with it every build that includes the layer: a stray quote once went
unnoticed this way until a local parse (ci/layer-parse-check.sh). This checks every variable
assignment (backslash continuations joined): its value must be one quoted string, the quote
it starts with closing it at the end and appearing nowhere in between.

Usage: ci/layer-syntax.py [FILE...]   (default: every .bb, .bbappend, .bbclass, .inc and .conf
of meta-rustupdate); exits 1 and names each line when any is wrong.
"""
import re
import sys
from pathlib import Path

LAYER = Path(__file__).resolve().parent.parent / "meta-rustupdate"
SUFFIXES = {".bb", ".bbappend", ".bbclass", ".inc", ".conf"}
ASSIGNMENT = re.compile(
    r"^(export\s+)?[A-Za-z0-9\-_+.${}/~:]+(\[[A-Za-z0-9\-_+.@/]+\])?\s*"
    r"(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(?P<value>.*)$")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), 1):
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        out.append((start, "".join(parts)))
        parts = []
    return out


def problems(path: Path) -> list[str]:
    found = []
    for number, line in logical_lines(path.read_text(encoding="utf-8")):
        match = ASSIGNMENT.match(line)
        if not match:
            continue
        value = match.group("value")
        quote = value[:1]
        if quote not in ("'", '"'):
            found.append(f"{path}:{number}: the value is not quoted: {line[:90]}")
        elif len(value) < 2 or not value.endswith(quote) or quote in value[1:-1]:
            found.append(f"{path}:{number}: unbalanced {quote} quotes: {line[:90]}")
    return found


def main() -> int:
    files = [Path(a) for a in sys.argv[1:]] or sorted(
        p for p in LAYER.rglob("*") if p.suffix in SUFFIXES)
    found = [line for path in files for line in problems(path)]
    for line in found:
        print(line)
    print(f"layer-syntax: {len(files)} files, {len(found)} line(s) bitbake would not parse")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
