"""Disk images from the host: the bootloader environment through the reference tools
(grub-editenv, mkenvimage, fw_printenv/fw_setenv), FAT files through mtools, slots by offset.
Used by build.py to make the pristine disk and by the runner between boots.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from . import contract
from .layout import Layout

MIB = 1024 * 1024
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")


class DiskError(Exception):
    pass


def sha256_range(path: Path, offset: int = 0, size: int | None = None) -> str:
    """SHA-256 of `size` bytes of a file from `offset` (to the end when size is None)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left is None or left > 0:
            chunk = f.read(4 * MIB if left is None else min(left, 4 * MIB))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    return h.hexdigest()


def copy_sparse(src: Path | str, dest: Path) -> None:
    subprocess.run(["cp", "--sparse=always", str(src), str(dest)], check=True)


def fw_env_config(env_file: str, size: int = contract.UBOOT_ENV_SIZE) -> str:
    """An fw_env.config line for a single-copy environment file (the guest's and the host's)."""
    return f"{env_file} 0x0 {size:#x}\n"


class EnvFile:
    """A bootloader environment file, read and written with the bootloader's reference tools."""

    def __init__(self, bootloader: str, path: Path, size: int = contract.UBOOT_ENV_SIZE):
        if bootloader not in contract.BOOT_LABEL:
            raise DiskError(f"unknown bootloader {bootloader!r}")
        self.bootloader, self.path, self.size = bootloader, path, size

    def _scratch(self, suffix: str, text: str) -> Path:
        """A file next to the environment for a tool's input; the caller removes it."""
        path = self.path.with_name(self.path.name + suffix)
        path.write_text(text)
        return path

    def _uboot(self, args: list, script: Path | None = None) -> subprocess.CompletedProcess:
        config = self._scratch(".fw_env.config", fw_env_config(str(self.path), self.size))
        try:
            return subprocess.run(args[:1] + ["-c", config] + args[1:], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        finally:
            config.unlink()
            if script:
                script.unlink()

    def create(self, values: dict[str, str]) -> None:
        self.path.unlink(missing_ok=True)
        if self.bootloader == "grub":
            subprocess.run(["grub-editenv", self.path, "create"], check=True)
            self.update(values)
        else:
            text = self._scratch(".txt", "".join(f"{k}={v}\n" for k, v in values.items()))
            try:
                subprocess.run(["mkenvimage", "-s", f"{self.size:#x}", "-o", self.path, text],
                               check=True)
            finally:
                text.unlink()

    def read(self) -> dict[str, str]:
        if self.bootloader == "grub":
            res = subprocess.run(["grub-editenv", self.path, "list"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        else:
            res = self._uboot(["fw_printenv"])
        if res.returncode != 0:
            raise DiskError(res.stderr.strip() or f"{res.args[0]} failed")
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    def update(self, values: dict[str, str]) -> None:
        if self.bootloader == "grub":
            subprocess.run(["grub-editenv", self.path, "set"]
                           + [f"{k}={v}" for k, v in values.items()], check=True)
        else:
            script = self._scratch(".set.txt", "".join(f"{k}={v}\n" for k, v in values.items()))
            res = self._uboot(["fw_setenv", "-s", script], script)
            if res.returncode != 0:
                raise DiskError(f"fw_setenv: {res.stderr.strip()}")


def mcopy(image: str, src: str, dest: str) -> None:
    """mtools copy, `::/path` naming a file in the FAT image (`file@@offset` for a partition)."""
    res = subprocess.run(["mcopy", "-n", "-o", "-i", image, src, dest], env=MTOOLS_ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise DiskError(f"mcopy {src} {dest}: {res.stdout.strip()}")


class Disk:
    """A scenario's copy of the disk image (and, for OVMF, of its variable store)."""

    def __init__(self, layout: Layout, directory: Path):
        self.layout = layout
        self.path = directory / "disk.img"
        self.vars = directory / "OVMF_VARS.fd" if layout.firmware.vars else None
        self._fat = f"{self.path}@@{layout.boot_partition.offset}"
        self._env = EnvFile(layout.bootloader, directory / Path(layout.env_path).name,
                            layout.uboot_env_size)

    def fresh(self) -> Disk:
        """Starts over from the pristine disk (sparse) and a fresh OVMF variable store."""
        copy_sparse(self.layout.disk, self.path)
        if self.vars:
            shutil.copyfile(self.layout.firmware.vars, self.vars)
        return self

    def remove(self) -> None:
        for p in (self.path, self.vars, self._env.path):
            if p:
                p.unlink(missing_ok=True)

    def _get_env(self) -> EnvFile:
        self._env.path.unlink(missing_ok=True)
        mcopy(self._fat, f"::/{self.layout.env_path}", str(self._env.path))
        return self._env

    def read_env(self) -> dict[str, str]:
        """The bootloader environment, read by the bootloader's reference tool."""
        return self._get_env().read()

    def write_env(self, values: dict[str, str]) -> None:
        self._get_env().update(values)
        mcopy(self._fat, str(self._env.path), f"::/{self.layout.env_path}")

    def wipe_slot(self, slot: str) -> None:
        """Zeroes the start of a slot (superblock included): its kernel cannot be loaded."""
        with open(self.path, "r+b") as f:
            f.seek(self.layout.slot_partition(slot).offset)
            f.write(bytes(4 * MIB))

    def slot_holds(self, slot: str, version: str) -> bool:
        image = self.layout.images.get(version)
        if image is None:
            raise DiskError(f"no {version} image in the layout ({', '.join(self.layout.images)})")
        offset = self.layout.slot_partition(slot).offset
        return sha256_range(self.path, offset, image.size) == image.sha256
