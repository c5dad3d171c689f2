"""The systemd-boot chain's boot contract on the host: entry file names and contents, which slot
systemd-boot boots, the contract's four values read from the entries, and the writes that give
the entries chosen values (`host_env` of a scenario). Pure: no files, no processes (the ESP is
read and written with mtools by `harness.disk`).

It mirrors docs/boot-contract.md, "systemd-boot (UEFI): boot counting by entry file names"
(in Rust: `rustupdate_bootenv::bls` and the client's `sys::boot_entries`), written from the
document, not from the Rust code, so that the two can disagree and a test can notice; selftest.py
checks the name parser against `bootctl list` of a real ESP directory where bootctl runs.

Not here: type #2 entries (unified kernel images), `LoaderEntryDefault`/`LoaderEntryOneShot`
(the contract says they stay unset), entries of other operating systems (not candidates:
`default rustupdate-*`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from . import contract

ENTRIES_DIR = "loader/entries"
LOADER_CONF = "loader/loader.conf"
ENTRY_PREFIX = "rustupdate-"
ENTRY_SUFFIX = ".conf"
SORT_KEY = "rustupdate"
SLOT_FILES_DIR = "rustupdate"  # rustupdate/<slot>/{vmlinuz,initrd.img} on the ESP
KERNEL_FILES = ("vmlinuz", "initrd.img")
LOADER_CONF_TEXT = f"timeout 0\neditor no\ndefault {ENTRY_PREFIX}*\n"
# The factory image: slot a boots (the higher generation), both blessed.
FACTORY_GENERATION = {"a": 2, "b": 1}
_NAME = re.compile(r"rustupdate-([^+]*?)(?:\+(\d+)(?:-(\d+))?)?\.conf")


class BlsError(Exception):
    """Entries that do not follow the contract, or values the entries cannot express."""


@dataclass(frozen=True)
class EntryName:
    """`rustupdate-<slot>[+LEFT[-DONE]].conf`: no counter (left None) is a blessed entry, left 0
    a bad one."""
    slot: str
    left: int | None = None
    done: int = 0

    @property
    def counted(self) -> bool:
        return self.left is not None

    @property
    def bad(self) -> bool:
        return self.left == 0

    def file_name(self) -> str:
        counter = "" if self.left is None else f"+{self.left}" + (f"-{self.done}" if self.done else "")
        return f"{ENTRY_PREFIX}{self.slot}{counter}{ENTRY_SUFFIX}"


def parse_name(file_name: str) -> EntryName | None:
    """The entry name of a file in loader/entries; None for files that are not this layer's
    entries (another prefix, a temporary file); BlsError for a malformed `rustupdate-*.conf`."""
    if not (file_name.startswith(ENTRY_PREFIX) and file_name.endswith(ENTRY_SUFFIX)):
        return None
    m = _NAME.fullmatch(file_name)
    if m is None or m.group(1) not in contract.SLOTS:
        raise BlsError(f"entry file {file_name!r} is not rustupdate-<a|b>[+LEFT[-DONE]].conf")
    left = None if m.group(2) is None else int(m.group(2))
    return EntryName(m.group(1), left, int(m.group(3) or 0))


def entry_lines(content: str) -> list[tuple[str, str]]:
    """(key, value) of an entry's lines, comments and blank lines left out."""
    out = []
    for raw in content.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.replace("\t", " ").partition(" ")
            out.append((key, value.strip()))
    return out


def generation(content: str, file_name: str = "entry") -> int:
    """The entry's `version` line: a decimal generation."""
    versions = [v for k, v in entry_lines(content) if k == "version"]
    if len(versions) != 1 or not versions[0].isdigit():
        raise BlsError(f"{file_name}: expected one decimal version line, found {versions}")
    return int(versions[0])


def loader_path(content: str) -> str | None:
    """The file systemd-boot loads for the entry (`linux`, or `efi`), as an ESP path."""
    return next((v for k, v in entry_lines(content) if k in ("linux", "efi")), None)


def boot_files(content: str) -> list[str]:
    """Every file the entry loads (linux/efi, initrd)."""
    return [v for k, v in entry_lines(content) if k in ("linux", "efi", "initrd")]


def with_generation(content: str, gen: int) -> str:
    """The entry with its version line set to `gen` (the other lines as they were)."""
    lines = content.splitlines()
    for i, line in enumerate(lines):
        if entry_lines(line)[:1] and entry_lines(line)[0][0] == "version":
            lines[i] = f"version {gen}"
    return "\n".join(lines) + "\n"


def entry_text(slot: str, gen: int, options: str) -> str:
    """An entry as the image writes it (docs/boot-contract.md)."""
    d = f"/{SLOT_FILES_DIR}/{slot}"
    return (f"title rustupdate slot {slot}\nsort-key {SORT_KEY}\nversion {gen}\n"
            f"linux {d}/{KERNEL_FILES[0]}\ninitrd {d}/{KERNEL_FILES[1]}\noptions {options}\n")


@dataclass(frozen=True)
class Entry:
    name: EntryName
    generation: int
    loadable: bool = True  # its linux (or efi) file exists on the ESP


def _cmp(a: int | str | bool, b: int | str | bool) -> int:
    return int(a > b) - int(a < b)  # type: ignore[operator]


def _boot_order(x: Entry, y: Entry) -> int:
    """systemd-boot's order (negative: x boots before y): no tries left last, then the version
    downwards, then the file name (without the counter: the slot) downwards, then, both counted,
    more tries left first, then fewer tries done first."""
    first = (_cmp(x.name.bad, y.name.bad) or _cmp(y.generation, x.generation)
             or _cmp(y.name.slot, x.name.slot))
    if first or x.name.left is None or y.name.left is None:
        return first
    return _cmp(y.name.left, x.name.left) or _cmp(x.name.done, y.name.done)


def in_boot_order(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=functools.cmp_to_key(_boot_order))


def booted(entries: list[Entry]) -> Entry | None:
    """The entry systemd-boot boots: the first loadable one in its order (None: nothing)."""
    loadable = in_boot_order([e for e in entries if e.loadable])
    return loadable[0] if loadable else None


def values(entries: list[Entry], bootlimit: int = contract.DEFAULT_BOOTLIMIT) -> dict[str, str]:
    """The contract's four values: the slot of the entry that boots; a trial while it has a
    counter, bootcount its DONE, bootlimit LEFT + DONE (`bootlimit` without a counter)."""
    first = booted(entries)
    if first is None:
        raise BlsError(f"no loadable {ENTRY_PREFIX}* entry: systemd-boot has nothing to boot "
                       f"({', '.join(e.name.file_name() for e in entries) or 'no entries'})")
    n = first.name
    if n.left is None:
        return contract.committed(n.slot, bootlimit)
    return {contract.VAR_SLOT: n.slot, contract.VAR_UPGRADE_AVAILABLE: "1",
            contract.VAR_BOOTCOUNT: str(n.done), contract.VAR_BOOTLIMIT: str(n.left + n.done)}


def boot(entries: list[Entry]) -> tuple[Entry | None, list[Entry]]:
    """What one boot does to the entries: the entry that boots, and the entries afterwards (a
    counted entry with tries left is renamed first: +LEFT-DONE -> +(LEFT-1)-(DONE+1))."""
    first = booted(entries)
    if first is None or first.name.left is None:
        return first, list(entries)
    n = first.name
    assert n.left is not None and n.left > 0  # a loadable first entry with a counter has tries
    counted = Entry(EntryName(n.slot, n.left - 1, n.done + 1), first.generation, first.loadable)
    return counted, [counted if e == first else e for e in entries]


# ---------------------------------------------------------------------------------------------
# The host's writes
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Write:
    """A new entry file: the content of `source` with the version line set to `generation`."""
    name: EntryName
    generation: int
    source: EntryName


@dataclass(frozen=True)
class Rename:
    old: EntryName
    new: EntryName


@dataclass(frozen=True)
class Remove:
    name: EntryName


Op = Write | Rename | Remove


def _best_of(entries: list[Entry], slot: str) -> Entry:
    mine = in_boot_order([e for e in entries if e.name.slot == slot])
    if not mine:
        raise BlsError(f"no entry for slot {slot}")
    return mine[0]


def host_writes(entries: list[Entry], change: dict[str, str],
                bootlimit: int = contract.DEFAULT_BOOTLIMIT) -> list[Op]:
    """The entry operations that give the entries the contract values `change` (the others as
    they read now), as the client writes them (docs/boot-contract.md):
    upgrade_available=1: a trial of the slot, its entry written anew as
    `+<bootlimit - bootcount>[-<bootcount>]` with the highest generation + 1, its other files
    removed; upgrade_available=0: the slot blessed (its entry renamed without a counter), its
    other files removed, and the other slot's entry made bad (`+0[-DONE]`) if it would still
    boot first. Nothing when the entries read so already."""
    now = values(entries, bootlimit)
    want = {**now, **change}
    if want == now:
        return []
    slot = want[contract.VAR_SLOT]
    if slot not in contract.SLOTS:
        raise BlsError(f"slot {slot!r}")
    current = _best_of(entries, slot)
    if want[contract.VAR_UPGRADE_AVAILABLE] == "1":
        done, limit = int(want[contract.VAR_BOOTCOUNT]), int(want[contract.VAR_BOOTLIMIT])
        if not 0 <= done < limit:
            raise BlsError(f"a trial with bootcount {done} and bootlimit {limit} has no tries left")
        name = EntryName(slot, limit - done, done)
        ops: list[Op] = [Write(name, max(e.generation for e in entries) + 1, current.name)]
        return ops + [Remove(e.name) for e in entries if e.name.slot == slot and e.name != name]
    if want[contract.VAR_UPGRADE_AVAILABLE] != "0" or want[contract.VAR_BOOTCOUNT] != "0" \
            or want[contract.VAR_BOOTLIMIT] != str(bootlimit):
        raise BlsError(f"entries cannot express {want} (outside a trial: bootcount 0, "
                       f"bootlimit {bootlimit})")
    blessed = Entry(EntryName(slot), current.generation, current.loadable)
    ops = [Rename(current.name, blessed.name)] if current.name.counted else []
    ops += [Remove(e.name) for e in entries
            if e.name.slot == slot and e.name not in (current.name, blessed.name)]
    for e in entries:
        if e.name.slot != slot and _boot_order(e, blessed) < 0:
            ops.append(Rename(e.name, EntryName(e.name.slot, 0, e.name.done)))
    return ops


def apply(entries: list[Entry], ops: list[Op]) -> list[Entry]:
    """The entries after `ops` (what the host's writes leave; for tests and dry runs)."""
    out = list(entries)
    for op in ops:
        if isinstance(op, Write):
            src = next(e for e in out if e.name == op.source)
            out = [e for e in out if e.name != op.name] + [Entry(op.name, op.generation,
                                                                 src.loadable)]
        elif isinstance(op, Rename):
            old = next(e for e in out if e.name == op.old)
            out = [Entry(op.new, old.generation, old.loadable) if e == old else e
                   for e in out if e.name != op.new]
        else:
            out = [e for e in out if e.name != op.name]
    return out
