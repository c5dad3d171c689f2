"""Debian packages for the e2e images without root: apt-get download through a private APT
configuration per Debian architecture (the host's sources, separate lists, cache and status,
refreshed once a day or when a download fails), unpacked with dpkg-deb into the cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .buildcmd import log, out, run


class Apt:
    """apt-get/apt-cache with a private configuration for one Debian architecture."""

    def __init__(self, cache: Path, deb_arch: str):
        self.root = cache / f"apt-{deb_arch}"
        self.debs = cache / "debs" / deb_arch
        for d in ("lists/partial", "cache/archives/partial", "state"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.debs.mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        self.conf = self.root / "apt.conf"
        self.conf.write_text(
            f'APT::Architecture "{deb_arch}";\n'
            f'APT::Architectures {{ "{deb_arch}"; }};\n'
            f'Dir::State "{self.root}/state";\n'
            f'Dir::State::lists "{self.root}/lists";\n'
            f'Dir::State::status "{self.root}/status";\n'
            f'Dir::Cache "{self.root}/cache";\n'
            'Acquire::Languages "none";\n'
            'APT::Get::List-Cleanup "0";\n'
            + ('APT::Sandbox::User "root";\n' if os.getuid() == 0 else "")
        )
        self.env = dict(os.environ, APT_CONFIG=str(self.conf), DEBIAN_FRONTEND="noninteractive")
        self.updated = False

    def update(self, force: bool = False) -> None:
        stamp = self.root / "updated.stamp"
        if not force and stamp.exists() and time.time() - stamp.stat().st_mtime < 24 * 3600:
            return
        log(f"apt-get update ({self.root.name})")
        run(["apt-get", "-q", "update"], env=self.env, stdout=subprocess.DEVNULL)
        stamp.touch()
        self.updated = True

    def pkgnames(self, prefix: str) -> list[str]:
        return out(["apt-cache", "pkgnames", prefix], env=self.env).split()

    def download(self, pkg: str) -> Path:
        """The .deb of pkg's candidate version, downloaded once into the cache."""
        have = sorted(self.debs.glob(f"{pkg}_*.deb"))
        if have:
            return have[-1]
        log(f"apt-get download {pkg}")
        try:
            run(["apt-get", "-q", "download", pkg], env=self.env, cwd=self.debs,
                stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            if self.updated:
                raise
            self.update(force=True)
            run(["apt-get", "-q", "download", pkg], env=self.env, cwd=self.debs,
                stdout=subprocess.DEVNULL)
        have = sorted(self.debs.glob(f"{pkg}_*.deb"))
        if not have:
            sys.exit(f"apt-get download {pkg} produced no .deb in {self.debs}")
        return have[-1]

    def newest_kernel(self, flavour: str) -> str:
        """linux-image-6.1.0-<N>-<flavour> with the highest N the archive has (never hard-coded)."""
        pat = re.compile(rf"^linux-image-6\.1\.0-(\d+)-{re.escape(flavour)}$")
        found = [(int(m.group(1)), n) for n in self.pkgnames("linux-image-6.1.0-")
                 if (m := pat.match(n))]
        if not found:
            sys.exit(f"no linux-image-6.1.0-*-{flavour} in the package lists")
        return max(found)[1]


def unpack(deb: Path, cache: Path) -> Path:
    """dpkg-deb -x into the cache (once per .deb file)."""
    dest = cache / "unpacked" / deb.stem
    if (dest / ".done").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    log(f"unpacking {deb.name}")
    run(["dpkg-deb", "-x", deb, dest])
    (dest / ".done").touch()
    return dest
