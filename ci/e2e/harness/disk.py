"""Disk images from the host: the bootloader environment through the reference tools
(grub-editenv, mkenvimage, fw_printenv/fw_setenv) or, for systemd-boot, the entry files read
and written with mtools under the rules of `harness.bls`; FAT files through mtools, slots by
offset. Used by build.py to make the pristine disk and by the runner between boots.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import bls, contract
from .layout import Layout

MIB = 1024 * 1024
SYSTEMD_BOOT = "systemd-boot"  # layout.bootloader of the chain without an environment
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")
FS_BLOCK = 4096  # block size of the root file systems (build.py: mkfs.ext4 -b 4096)
# A file of pseudo-random bytes in every root file system (build.py), the same in every version,
# that nothing reads: a delta patch copies its blocks from the base, so a byte flipped in it
# (Disk.modify_slot) turns a slot into a modified base without breaking the slot's boot.
FILLER_PATH = "usr/share/e2e/filler.bin"
FILLER_SIZE = 256 * 1024


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


def filler_bytes(size: int = FILLER_SIZE) -> bytes:
    """The filler's content: SHA-256 in counter mode (no zero runs, no repeated blocks)."""
    return b"".join(hashlib.sha256(b"rustupdate e2e filler %d" % i).digest()
                    for i in range(-(-size // 32)))[:size]


def find_block(data: bytes, block: bytes, align: int = FS_BLOCK) -> int | None:
    """Offset of the first copy of `block` in `data` that starts at a multiple of `align`."""
    at = data.find(block)
    while at >= 0 and at % align:
        at = data.find(block, at + 1)
    return at if at >= 0 else None


def copy_sparse(src: Path | str, dest: Path) -> None:
    subprocess.run(["cp", "--sparse=always", str(src), str(dest)], check=True)


def fw_env_config(env_files: tuple[str, ...], size: int = contract.UBOOT_ENV_SIZE) -> str:
    """fw_env.config for environment files: one line per copy (two: libubootenv's redundant
    environment, as the guests and the boot script use it)."""
    return "".join(f"{f} 0x0 {size:#x}\n" for f in env_files)


def _grub_next_seq(seq: str) -> str:
    return contract.SEQ_VALUES[(contract.SEQ_VALUES.index(seq) + 1) % len(contract.SEQ_VALUES)]


class EnvFiles:
    """The two copies of a bootloader environment as files, read and written with the reference
    tools: U-Boot through a two-line fw_env.config (fw_printenv/fw_setenv pick the current copy
    and write the other one themselves), GRUB through grub-editenv per copy, with the copy rule
    of docs/boot-contract.md (a complete copy has rustupdate_seq first and rustupdate_seq_end last,
    equal; of two, the one a step ahead (0 -> 1 -> 2 -> 0) is current; a tie: copy 0)."""

    def __init__(self, bootloader: str, paths: tuple[Path, Path],
                 size: int = contract.UBOOT_ENV_SIZE):
        if bootloader not in contract.BOOT_LABEL:
            raise DiskError(f"unknown bootloader {bootloader!r}")
        self.bootloader, self.paths, self.size = bootloader, paths, size

    def _scratch(self, suffix: str, text: str) -> Path:
        """A file next to the environment for a tool's input; the caller removes it."""
        path = self.paths[0].with_name(self.paths[0].name + suffix)
        path.write_text(text)
        return path

    def _uboot(self, args: list[str | Path],
               script: Path | None = None) -> subprocess.CompletedProcess[str]:
        for path in self.paths:
            if not path.exists():  # a deleted copy is an invalid one to libubootenv
                path.write_bytes(bytes(self.size))
        config = self._scratch(".fw_env.config",
                               fw_env_config(tuple(str(p) for p in self.paths), self.size))
        try:
            return subprocess.run([*args[:1], "-c", config, *args[1:]], check=False,
                                  capture_output=True, text=True)
        finally:
            config.unlink()
            if script:
                script.unlink()

    def create(self, values: dict[str, str]) -> None:
        """Both copies, equal (copy 0 is current)."""
        for path in self.paths:
            path.unlink(missing_ok=True)
            if self.bootloader == "grub":
                self._grub_write(path, contract.SEQ_VALUES[0], values)
            else:
                text = self._scratch(".txt", "".join(f"{k}={v}\n" for k, v in values.items()))
                try:
                    subprocess.run(["mkenvimage", "-r", "-s", f"{self.size:#x}", "-o", path, text],
                                   check=True)
                finally:
                    text.unlink()

    def _grub_write(self, path: Path, seq: str, values: dict[str, str]) -> None:
        """A new block: the sequence number first and last, the variables between."""
        path.unlink(missing_ok=True)
        subprocess.run(["grub-editenv", path, "create"], check=True)
        body = {k: v for k, v in values.items() if k not in (contract.VAR_SEQ, contract.VAR_SEQ_END)}
        subprocess.run(["grub-editenv", str(path), "set", f"{contract.VAR_SEQ}={seq}",
                        *(f"{k}={v}" for k, v in body.items()),
                        f"{contract.VAR_SEQ_END}={seq}"], check=True)

    def _grub_copy(self, path: Path) -> dict[str, str] | None:
        """A GRUB copy's variables if it is complete, else None."""
        if not path.exists():
            return None
        res = subprocess.run(["grub-editenv", path, "list"], capture_output=True, text=True,
                             check=False)
        if res.returncode != 0:
            return None
        values = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
        seq = values.get(contract.VAR_SEQ)
        if seq not in contract.SEQ_VALUES or values.get(contract.VAR_SEQ_END) != seq:
            return None
        return values

    def _grub_current(self) -> tuple[int, dict[str, str]]:
        c0, c1 = (self._grub_copy(p) for p in self.paths)
        if c0 is None and c1 is None:
            raise DiskError(f"no valid copy of the GRUB environment ({', '.join(map(str, self.paths))})")
        if c1 is None:
            assert c0 is not None  # not both None (above)
            return 0, c0
        if c0 is None or c1[contract.VAR_SEQ] == _grub_next_seq(c0[contract.VAR_SEQ]):
            return 1, c1
        return 0, c0

    def current_index(self) -> int:
        """Which copy is in use (DiskError when none is valid). U-Boot: libubootenv's rule for
        incremental flags (a valid CRC; the higher flags byte, 0x00 beating 0xff; a tie: copy 0),
        with the CRC checked here; GRUB: the sequence-number rule."""
        if self.bootloader == "grub":
            return self._grub_current()[0]
        valid: list[bool] = []
        flags: list[int] = []
        for path in self.paths:
            data = path.read_bytes() if path.exists() else b""
            ok = len(data) == self.size and int.from_bytes(data[:4], "little") == zlib.crc32(data[5:])
            valid.append(ok)
            flags.append(data[4] if ok else -1)  # -1: not read (the copy is invalid)
        if not any(valid):
            raise DiskError("no valid copy of the U-Boot environment")
        if not all(valid):
            return valid.index(True)
        f0, f1 = flags
        if (f0, f1) == (0xFF, 0x00):
            return 1
        if (f0, f1) == (0x00, 0xFF):
            return 0
        return 1 if f1 > f0 else 0

    def read(self) -> dict[str, str]:
        """The current copy's variables; DiskError when no copy is valid."""
        if self.bootloader == "grub":
            return self._grub_current()[1]
        res = self._uboot(["fw_printenv"])
        if res.returncode != 0:
            raise DiskError(res.stderr.strip() or "fw_printenv failed")
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    def update(self, values: dict[str, str]) -> None:
        """Writes the current variables with `values` changed to the copy not in use."""
        if self.bootloader == "grub":
            index, current = self._grub_current()
            self._grub_write(self.paths[1 - index], _grub_next_seq(current[contract.VAR_SEQ]),
                             {**current, **values})
        else:
            script = self._scratch(".set.txt", "".join(f"{k}={v}\n" for k, v in values.items()))
            res = self._uboot(["fw_setenv", "-s", script], script)
            if res.returncode != 0:
                raise DiskError(f"fw_setenv: {res.stderr.strip()}")


def mcopy(image: str, src: str, dest: str) -> None:
    """mtools copy, `::/path` naming a file in the FAT image (`file@@offset` for a partition)."""
    res = subprocess.run(["mcopy", "-n", "-o", "-i", image, src, dest], env=MTOOLS_ENV, check=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise DiskError(f"mcopy {src} {dest}: {res.stdout.strip()}")


def _mtools(args: list[str], what: str) -> str:
    res = subprocess.run(args, env=MTOOLS_ENV, check=False, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise DiskError(f"{what}: {res.stdout.strip()}")
    return res.stdout


class EspEntries:
    """systemd-boot's entry files on a FAT ESP (`image@@offset`), through mtools: read as
    `bls.Entry` values (with their contents) and changed by `bls` operations, each one mtools
    call, as the client changes them one file operation at a time."""

    def __init__(self, fat: str, scratch: Path, bootlimit: int = contract.DEFAULT_BOOTLIMIT):
        self.fat, self.scratch, self.bootlimit = fat, scratch, bootlimit

    def exists(self, path: str) -> bool:
        res = subprocess.run(["mdir", "-b", "-i", self.fat, f"::/{path.lstrip('/')}"],
                             env=MTOOLS_ENV, check=False, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        return res.returncode == 0

    def file_names(self) -> list[str]:
        """The names of the files in loader/entries."""
        listing = _mtools(["mdir", "-b", "-i", self.fat, f"::/{bls.ENTRIES_DIR}"],
                          f"listing {bls.ENTRIES_DIR}")
        return sorted(line.rstrip("/").rsplit("/", 1)[-1] for line in listing.splitlines()
                      if line.strip())

    def read_file(self, path: str) -> bytes:
        out = self.scratch / ".esp-read"
        try:
            mcopy(self.fat, f"::/{path.lstrip('/')}", str(out))
            return out.read_bytes()
        finally:
            out.unlink(missing_ok=True)

    def read(self) -> dict[bls.EntryName, tuple[bls.Entry, str]]:
        """Every rustupdate entry: its name, the entry (generation, loadable) and its content."""
        found = {}
        for file_name in self.file_names():
            try:
                name = bls.parse_name(file_name)
                if name is None:
                    continue
                content = self.read_file(f"{bls.ENTRIES_DIR}/{file_name}").decode()
                loader = bls.loader_path(content)
                entry = bls.Entry(name, bls.generation(content, file_name),
                                  loader is not None and self.exists(loader))
            except (bls.BlsError, UnicodeDecodeError) as err:
                raise DiskError(f"{bls.ENTRIES_DIR}/{file_name}: {err}") from None
            found[name] = (entry, content)
        return found

    def entries(self) -> list[bls.Entry]:
        return [e for e, _ in self.read().values()]

    def values(self) -> dict[str, str]:
        """The contract's four values as the entries say them (DiskError: nothing to boot)."""
        try:
            return bls.values(self.entries(), self.bootlimit)
        except bls.BlsError as err:
            raise DiskError(str(err)) from None

    def carry_out(self, ops: list[bls.Op]) -> None:
        found = self.read()
        for op in ops:
            if isinstance(op, bls.Write):
                tmp = self.scratch / op.name.file_name()
                tmp.write_text(bls.with_generation(found[op.source][1], op.generation))
                try:
                    mcopy(self.fat, str(tmp), f"::/{bls.ENTRIES_DIR}/{op.name.file_name()}")
                finally:
                    tmp.unlink()
            elif isinstance(op, bls.Rename):
                _mtools(["mren", "-i", self.fat, f"::/{bls.ENTRIES_DIR}/{op.old.file_name()}",
                         op.new.file_name()], f"renaming {op.old.file_name()}")
            else:
                _mtools(["mdel", "-i", self.fat, f"::/{bls.ENTRIES_DIR}/{op.name.file_name()}"],
                        f"removing {op.name.file_name()}")

    def update(self, change: dict[str, str]) -> list[bls.Op]:
        """Gives the entries the contract values `change` (bls.host_writes); returns the ops."""
        try:
            ops = bls.host_writes(self.entries(), change, self.bootlimit)
        except bls.BlsError as err:
            raise DiskError(str(err)) from None
        self.carry_out(ops)
        return ops


@dataclass(frozen=True)
class BootState:
    """The bytes `Disk.boot_state` saves and `Disk.restore_boot_state` puts back."""
    boot_area: bytes
    ovmf_vars: bytes | None


class Disk:
    """A scenario's copy of the disk image (and, for OVMF, of its variable store)."""

    def __init__(self, layout: Layout, directory: Path):
        self.layout = layout
        self.path = directory / "disk.img"
        self.vars = directory / "OVMF_VARS.fd" if layout.firmware.vars else None
        self._fat = f"{self.path}@@{layout.boot_partition.offset}"
        # systemd-boot: no environment, the entry files carry the contract's values.
        self.esp = EspEntries(self._fat, directory) if layout.bootloader == SYSTEMD_BOOT else None
        self._copies = contract.ENV_COPIES.get(layout.bootloader, ())
        self._env = None if self.esp is not None else EnvFiles(
            layout.bootloader, (directory / "env-copy0", directory / "env-copy1"),
            layout.uboot_env_size)

    def fresh(self) -> Disk:
        """Starts over from the pristine disk (sparse) and a fresh OVMF variable store."""
        copy_sparse(self.layout.disk, self.path)
        if self.vars and self.layout.firmware.vars:
            shutil.copyfile(self.layout.firmware.vars, self.vars)
        return self

    def remove(self) -> None:
        for p in (self.path, self.vars, *(self._env.paths if self._env else ())):
            if p:
                p.unlink(missing_ok=True)

    def _get_env(self) -> EnvFiles:
        """Both copies out of the FAT boot partition (a missing copy stays missing)."""
        if self._env is None:
            raise DiskError("systemd-boot keeps no environment copies (entry files instead)")
        for name, path in zip(self._copies, self._env.paths, strict=True):
            path.unlink(missing_ok=True)
            if self.env_copy_exists(self._copies.index(name)):
                mcopy(self._fat, f"::/{name}", str(path))
        return self._env

    def env_copy_exists(self, index: int) -> bool:
        if self.esp is not None:
            raise DiskError("systemd-boot keeps no environment copies (entry files instead)")
        res = subprocess.run(["mdir", "-b", "-i", self._fat, f"::/{self._copies[index]}"], check=False,
                             env=MTOOLS_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return res.returncode == 0

    def read_env(self) -> dict[str, str]:
        """The bootloader environment's current copy, read by the reference tools (DiskError
        when no copy is valid); for systemd-boot the contract's values of the entries."""
        if self.esp is not None:
            return self.esp.values()
        return self._get_env().read()

    def write_env(self, values: dict[str, str]) -> None:
        """Changes variables as the client would: the copy not in use is written (systemd-boot:
        the entries are written, renamed and removed as bls.host_writes says)."""
        if self.esp is not None:
            self.esp.update(values)
            return
        env = self._get_env()
        env.update(values)
        for name, path in zip(self._copies, env.paths, strict=True):
            mcopy(self._fat, str(path), f"::/{name}")

    def damage_env_copies(self, damage: dict[str, str]) -> dict[int, str]:
        """Destroys copies of the environment with `damage_env`, named by which is in use before
        any is touched: {"in_use" | "not_in_use": "corrupt" | "delete"}. Returns {index: how}."""
        in_use = self._get_env().current_index()
        chosen = {(in_use if which == "in_use" else 1 - in_use): how
                  for which, how in damage.items()}
        for index, how in chosen.items():
            self.damage_env(index, how)
        return chosen

    def damage_env(self, index: int, how: str) -> None:
        """Destroys copy `index` of the environment: "corrupt" overwrites it with noise of the same
        size (a torn or bit-rotten write: CRC or block header broken), "delete" removes the file."""
        name = self._copies[index]
        if how == "delete":
            res = subprocess.run(["mdel", "-i", self._fat, f"::/{name}"], env=MTOOLS_ENV, check=False,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if res.returncode != 0:
                raise DiskError(f"mdel {name}: {res.stdout.strip()}")
        elif how == "corrupt":
            path = self._get_env().paths[index]
            path.unlink(missing_ok=True)
            mcopy(self._fat, f"::/{name}", str(path))
            size = path.stat().st_size
            path.write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32) + bytes(size % 32))
            mcopy(self._fat, str(path), f"::/{name}")
        else:
            raise DiskError(f"unknown damage {how!r} (corrupt or delete)")

    def boot_state(self) -> BootState:
        """What a boot's firmware and bootloader may write before the guest's kernel runs: the
        boot partition (the environment's copies) and the OVMF variable store."""
        part = self.layout.boot_partition
        with open(self.path, "rb") as f:
            f.seek(part.offset)
            area = f.read(part.size)
        return BootState(area, self.vars.read_bytes() if self.vars else None)

    def restore_boot_state(self, state: BootState) -> None:
        """Puts back a `boot_state()`: a boot whose kernel died before its user space ran
        (nothing else on the disk was written) is undone, so that a retry repeats it exactly."""
        with open(self.path, "r+b") as f:
            f.seek(self.layout.boot_partition.offset)
            f.write(state.boot_area)
        if self.vars and state.ovmf_vars is not None:
            self.vars.write_bytes(state.ovmf_vars)

    def wipe_slot(self, slot: str) -> None:
        """Zeroes the start of a slot (superblock included): its kernel cannot be loaded."""
        with open(self.path, "r+b") as f:
            f.seek(self.layout.slot_partition(slot).offset)
            f.write(bytes(4 * MIB))

    def modify_slot(self, slot: str) -> int:
        """Flips one byte in the middle of the filler's data in a slot (a block every version
        shares, so delta patches copy it from the base). Returns the byte's offset in the slot."""
        part = self.layout.slot_partition(slot)
        block_start = FILLER_SIZE // 2 // FS_BLOCK * FS_BLOCK
        block = filler_bytes()[block_start:block_start + FS_BLOCK]
        with open(self.path, "r+b") as f:
            f.seek(part.offset)
            found = find_block(f.read(part.size), block)
            if found is None:
                raise DiskError(f"slot {slot}: no block of /{FILLER_PATH} found (rebuild the "
                                "images with ci/e2e/run.sh)")
            at = found + FS_BLOCK // 2
            f.seek(part.offset + at)
            byte = f.read(1)[0]
            f.seek(part.offset + at)
            f.write(bytes([byte ^ 0xFF]))
        return at

    def entry_files(self) -> tuple[str, ...] | None:
        """systemd-boot: the rustupdate entry files on the ESP (None for the other chains)."""
        if self.esp is None:
            return None
        names = [n for n in self.esp.file_names() if n.startswith(bls.ENTRY_PREFIX)]
        return tuple(sorted(names))

    def esp_holds(self, slot: str, version: str) -> bool:
        """systemd-boot: rustupdate/<slot>/initrd.img on the ESP is `version`'s initrd."""
        want = self.layout.initrds.get(version)
        if self.esp is None or want is None:
            raise DiskError(f"no initrd of {version} in the layout (systemd-boot chains only)")
        path = f"{bls.SLOT_FILES_DIR}/{slot}/{bls.KERNEL_FILES[1]}"
        if not self.esp.exists(path):
            return False
        return hashlib.sha256(self.esp.read_file(path)).hexdigest() == want

    def slot_holds(self, slot: str, version: str) -> bool:
        image = self.layout.images.get(version)
        if image is None:
            raise DiskError(f"no {version} image in the layout ({', '.join(self.layout.images)})")
        offset = self.layout.slot_partition(slot).offset
        return sha256_range(self.path, offset, image.size) == image.sha256
