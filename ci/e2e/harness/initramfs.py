"""The kernel and the initramfs of the e2e images: the kernel's version, image and modules in
load order from an unpacked linux-image .deb, and a newc cpio initramfs (busybox, the modules,
guest/initramfs-init) written directly, so device nodes need no root."""

from __future__ import annotations

import gzip
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .buildcmd import run

INITRAMFS_INIT = Path(__file__).resolve().parent.parent / "guest" / "initramfs-init"


def kernel_parts(kroot: Path, modules: Sequence[str]) -> tuple[str, Path, list[Path]]:
    """(version, kernel image, module files in load order) from an unpacked linux-image .deb."""
    versions = sorted(p.name for p in (kroot / "lib" / "modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        sys.exit(f"expected one kernel in {kroot}/lib/modules, found {versions}")
    ver = versions[0]
    if not (kroot / "lib" / "modules" / ver / "modules.dep").exists():
        run(["depmod", "-b", kroot, ver])  # the .deb ships no modules.dep
    ordered: list[Path] = []
    for mod in modules:
        res = run(["modprobe", "-d", kroot, "-S", ver, "--show-depends", mod],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if res.returncode != 0:
            sys.exit(f"modprobe --show-depends {mod}: {res.stderr.strip()}")
        for line in res.stdout.splitlines():
            words = line.split()
            if words and words[0] == "insmod":
                p = Path(words[1])
                if p not in ordered:
                    ordered.append(p)
    image = kroot / "boot" / f"vmlinuz-{ver}"
    return ver, image, ordered


class Cpio:
    """A newc cpio archive written directly (device nodes and owners without root)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, body: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nameb = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(body), 0, 0,
                  rdev[0], rdev[1], len(nameb), 0]
        self.ino += 1
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields) + nameb
        self.data += b"\0" * (-len(self.data) % 4)
        self.data += body
        self.data += b"\0" * (-len(self.data) % 4)

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, body: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, body)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.data) + b"\0" * (-len(self.data) % 512)


def build_initramfs(busybox: Path, applets: list[str], modules: list[Path], dest: Path,
                    extra: dict[str, bytes] | None = None) -> None:
    """The initramfs; `extra` adds files (path -> content), e.g. a version marker that makes
    each release's initrd differ."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox.read_bytes(), 0o755)
    for a in applets:
        name = a.rsplit("/", 1)[-1]
        if name not in ("busybox", "init", "linuxrc"):
            c.symlink(f"bin/{name}", "busybox")
    names = []
    for m in modules:
        c.file(f"lib/modules/{m.name}", m.read_bytes())
        names.append(m.name)
    c.file("modules.list", ("\n".join(names) + "\n").encode())
    c.file("init", INITRAMFS_INIT.read_bytes(), 0o755)
    for name, body in sorted((extra or {}).items()):
        c.file(name, body)
    dest.write_bytes(gzip.compress(c.finish(), compresslevel=6, mtime=0))
