"""The systemd guests' root file systems: Debian bookworm's systemd as PID 1, from .debs.

build.py calls this for the second pristine disk (`disk-systemd.img`, see ci/e2e/README.md,
"systemd guests"). No root-only mounts, no chroot, no maintainer scripts, nothing run for the
guest's architecture, so arm64 builds on an amd64 host without binfmt:

1. `closure`: the packages `apt-get -s install --no-install-recommends` (simulated, with the
   build's private APT configuration and its empty dpkg status) would install for PACKAGES, minus
   LEFT_OUT (only their maintainer scripts need them). Exact versions.
2. `fetch`: missing .debs are downloaded in one `apt-get download pkg=version ...` call into the
   same cache as the kernel's (build/e2e/cache/debs/<arch>), then unpacked once (build.py's
   `unpack`, dpkg-deb -x) and copied into the tree; documentation, locales, gconv modules and
   the hwdb sources are pruned (`populate`).
3. `configure`: what a package manager and `systemctl enable` would have done, and the test
   image's parts: /etc/passwd and /etc/group from the packages' sysusers.d, a fixed machine-id,
   fstab (/data, the boot partition, tmpfs /tmp and /var: the root file system stays read-only),
   the product's units from client/systemd installed unchanged and enabled per their [Install]
   sections, the layer's 20-no-failed-units health check unchanged, and the e2e units and
   drop-ins of ci/e2e/guest/systemd/ (the agent, the booted line, a unit that fails on request,
   the guard timer's short schedule, the product units' output on the console, udev's coldplug
   limited to block devices), and masks (logind, getty, the generators and udev rules not needed).

What it does not do: configure networking (no fleet scenarios on these guests), run logind or
D-Bus (masked: `systemctl` talks to PID 1 over its private socket), or give the guest a login.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUEST = HERE / "guest" / "systemd"
PRODUCT_UNITS = REPO / "client" / "systemd"
HEALTH_CHECKS = REPO / "meta-rustupdate" / "recipes-core" / "rustupdate" / "files" / "health.d"

# What the guest needs: systemd as PID 1 (systemd-sysv: /sbin/init, /sbin/reboot), udev for
# /dev/disk/by-partlabel and the device units the fstab mounts wait for.
PACKAGES = ("systemd", "systemd-sysv", "udev")
# In the closure only for maintainer scripts (adduser, debconf) and the tools those call.
LEFT_OUT = frozenset({"adduser", "debconf", "passwd", "libsemanage-common", "libsemanage2",
                      "libsepol2"})
PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
         "usr/share/lintian", "usr/share/bug", "usr/share/bash-completion", "usr/share/zsh",
         "lib/udev/hwdb.d")  # hwdb.d: only the source of hwdb.bin, which nothing here builds
PRUNE_GLOBS = ("usr/lib/*/gconv",)  # iconv modules: 20 MiB, nothing here converts charsets
# Product units installed unchanged into /lib/systemd/system; the daemon's is installed but not
# enabled (no [server] in these images: it would exit 2 and count as a failed unit).
ENABLED_PRODUCT_UNITS = ("rustupdate-commit.service", "rustupdate-guard.timer")
E2E_UNITS = ("e2e-booted.service", "e2e-agent.service", "e2e-unit-fail.service")
E2E_SCRIPTS = ("e2e-booted", "e2e-agent", "e2e-unit-fail")  # guest/systemd/<name>.sh
# Masked (a link to /dev/null): logind needs D-Bus; a getty on the serial console would
# compete with the runner for it.
MASKED = ("systemd-logind.service", "getty.target", "serial-getty@.service")
# Boot time under TCG (measured, README): every generator and udev rule costs. Kept: the fstab
# generator (the mounts) and the udev rules that make /dev/disk/by-partlabel and the device
# units the mounts wait for; the others are masked (links to /dev/null), as a lean image would
# not ship them. The getty generator is masked too (a serial getty would compete with the runner).
GENERATORS_KEPT = ("systemd-fstab-generator",)
UDEV_RULES_KEPT = ("50-udev-default.rules", "60-block.rules", "60-persistent-storage.rules",
                   "99-systemd.rules")
MACHINE_ID = "e2e0" * 8  # fixed: the root file system is read-only, nothing may create it

# The e2e images' short trial: health.trial-timeout-secs, and the guard timer's schedule in a
# drop-in (the shipped timer says OnBootSec=15min). A trial boot of these guests decides after
# 12-15 s of uptime under TCG, but after up to 30 s while other guests load the machine
# (measured, README); 60 s keep a good trial clear of the guard. The e2e health check's `hang`
# must outlast the guard: health.timeout-secs is far longer.
TRIAL_TIMEOUT_S = 60
GUARD_ON_BOOT_S = TRIAL_TIMEOUT_S + 1
GUARD_INTERVAL_S = 5
# The commit unit's TimeoutStartSec in the e2e images: the guard is ordered after the commit unit,
# so a commit that hangs (the `hang` health check) must be stopped for the guard to run. A good
# trial's commit unit finishes well within it (the whole trial decides by 30 s of uptime).
COMMIT_TIMEOUT_S = 40
HEALTH_TIMEOUT_S = 300


class SystemdRootfsError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------

_INST = re.compile(r"^Inst (\S+) \((\S+) ", re.M)


def parse_simulation(text: str) -> dict[str, str]:
    """package -> version from `apt-get -s install` output ("Inst name (version suite [arch])")."""
    return dict(_INST.findall(text))


def closure(apt_env: dict[str, str]) -> dict[str, str]:
    """The packages (and versions) of PACKAGES with their dependencies, minus LEFT_OUT."""
    res = subprocess.run(["apt-get", "-s", "-q", "install", "--no-install-recommends", *PACKAGES],
                         env=apt_env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemdRootfsError(f"apt-get -s install {' '.join(PACKAGES)}: {res.stderr.strip()}")
    found = parse_simulation(res.stdout)
    missing = [p for p in PACKAGES if p not in found]
    if missing:
        raise SystemdRootfsError(f"apt-get -s install did not resolve {missing}")
    return {p: v for p, v in found.items() if p not in LEFT_OUT}


def deb_name(pkg: str, version: str) -> str:
    """The file name prefix `apt-get download` gives (an epoch's ':' becomes '%3a')."""
    return f"{pkg}_{version.replace(':', '%3a')}_"


def fetch(packages: dict[str, str], apt_env: dict[str, str], debs: Path,
          log: Callable[[str], None]) -> list[Path]:
    """The .deb of every package at exactly its version, downloading the missing ones at once."""
    def have(pkg: str, version: str) -> list[Path]:
        return sorted(debs.glob(deb_name(pkg, version) + "*.deb"))

    missing = [f"{p}={v}" for p, v in packages.items() if not have(p, v)]
    if missing:
        log(f"apt-get download: {len(missing)} packages for the systemd guests")
        subprocess.run(["apt-get", "-q", "download", *missing], env=apt_env, cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
    found = []
    for p, v in packages.items():
        files = have(p, v)
        if not files:
            raise SystemdRootfsError(f"apt-get download {p}={v} left no .deb in {debs}")
        found.append(files[-1])
    return found


def populate(tree: Path, roots: list[Path]) -> None:
    """Copies the unpacked packages into tree (no maintainer scripts) and prunes it."""
    tree.mkdir(parents=True, exist_ok=True)
    for root in roots:
        # --remove-destination: a busybox applet link in the way is replaced, not written through.
        subprocess.run(["cp", "-a", "--remove-destination", f"{root}/.", str(tree)], check=True)
    (tree / ".done").unlink(missing_ok=True)  # build.py's unpack marker
    for rel in PRUNE:
        shutil.rmtree(tree / rel, ignore_errors=True)
    for pattern in PRUNE_GLOBS:
        for p in tree.glob(pattern):
            shutil.rmtree(p)


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------

def sysusers(texts: list[str]) -> tuple[str, str]:
    """(/etc/passwd, /etc/group) for the `u` and `g` lines of sysusers.d files, as
    systemd-sysusers would make them on first boot (dynamic ids from 999 down)."""
    users: dict[str, tuple[int, int, str, str, str]] = {}
    groups: dict[str, int] = {}
    pending_u, pending_g = [], []
    for text in texts:
        for line in text.splitlines():
            words = re.findall(r'"[^"]*"|\S+', line.split("#", 1)[0])
            if len(words) < 3 or words[0] not in ("u", "g"):
                continue
            words = [w.strip('"') for w in words] + ["-"] * 3
            kind, name, ids = words[0], words[1], words[2]
            if kind == "g":
                if ids == "-":
                    pending_g.append(name)
                else:
                    groups.setdefault(name, int(ids))
            else:
                home = words[4] if words[4] != "-" else "/"
                shell = words[5] if words[5] != "-" else "/usr/sbin/nologin"
                if ids == "-":
                    pending_u.append((name, words[3], home, shell))
                    continue
                uid, _, gid = ids.partition(":")
                users.setdefault(name, (int(uid), int(gid or uid), words[3], home, shell))
                if not gid:
                    groups.setdefault(name, int(uid))
    taken = set(groups.values()) | {u[0] for u in users.values()}
    next_id = 999
    for name in pending_g:
        while next_id in taken:
            next_id -= 1
        groups.setdefault(name, next_id)
        taken.add(next_id)
    for name, gecos, home, shell in pending_u:
        while next_id in taken:
            next_id -= 1
        users.setdefault(name, (next_id, next_id, gecos, home, shell))
        groups.setdefault(name, next_id)
        taken.add(next_id)
    passwd = "".join(f"{n}:x:{uid}:{gid}:{'' if g == '-' else g}:{h}:{s}\n"
                     for n, (uid, gid, g, h, s) in sorted(users.items(), key=lambda i: i[1][0]))
    group = "".join(f"{n}:x:{gid}:\n" for n, gid in sorted(groups.items(), key=lambda i: i[1]))
    return passwd, group


def wanted_by(unit_text: str) -> list[str]:
    """The targets of a unit's [Install] WantedBy= lines (what `systemctl enable` links into)."""
    section, found = None, []
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and line.startswith("WantedBy="):
            found += line.split("=", 1)[1].split()
    return found


def enable(tree: Path, unit_dir: str, unit: str) -> None:
    """`systemctl enable` for WantedBy=: a link in /etc/systemd/system/<target>.wants/."""
    targets = wanted_by((tree / unit_dir.lstrip("/") / unit).read_text())
    if not targets:
        raise SystemdRootfsError(f"{unit} has no WantedBy= to enable it with")
    for target in targets:
        wants = tree / "etc" / "systemd" / "system" / f"{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit).unlink(missing_ok=True)
        (wants / unit).symlink_to(f"{unit_dir}/{unit}")


def configure(tree: Path, *, boot_label: str, boot_mount: str, data_label: str,
              render: Callable[[Path, dict[str, str]], str]) -> None:
    """Everything systemd-specific on top of the packages and the product files (build.py's
    install_product): users, machine-id, fstab, units, drop-ins, masks."""
    etc = tree / "etc"
    texts = [p.read_text() for d in ("usr/lib/sysusers.d", "lib/sysusers.d")
             for p in sorted((tree / d).glob("*.conf"))]
    passwd, group = sysusers(texts)
    passwd = passwd.replace(":/root:/bin/bash\n", ":/root:/bin/sh\n")  # busybox sh, no bash
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    (etc / "machine-id").write_text(MACHINE_ID + "\n")
    (etc / "mtab").unlink(missing_ok=True)
    (etc / "mtab").symlink_to("../proc/self/mounts")
    (etc / "fstab").write_text(render(GUEST / "fstab", {
        "DATA_LABEL": data_label, "BOOT_LABEL": boot_label, "BOOT_MOUNT": boot_mount}))

    # The product: units unchanged, enabled as their [Install] sections say; the layer's
    # example health check that needs systemd, unchanged.
    system = tree / "lib" / "systemd" / "system"
    for unit in sorted(PRODUCT_UNITS.iterdir()):
        shutil.copyfile(unit, system / unit.name)
    for name in ENABLED_PRODUCT_UNITS:
        enable(tree, "/lib/systemd/system", name)
    check = etc / "rustupdate" / "health.d" / "20-no-failed-units"
    shutil.copyfile(HEALTH_CHECKS / "20-no-failed-units", check)
    os.chmod(check, 0o755)

    # The test image: e2e units and scripts, drop-ins, masks.
    libexec = tree / "usr" / "libexec" / "e2e"
    libexec.mkdir(parents=True, exist_ok=True)
    for name in E2E_SCRIPTS:
        shutil.copyfile(GUEST / f"{name}.sh", libexec / name)
        os.chmod(libexec / name, 0o755)
    local = etc / "systemd" / "system"
    values = {"BOOT_MOUNT": boot_mount, "TRIAL_TIMEOUT": str(TRIAL_TIMEOUT_S),
              "GUARD_ON_BOOT": f"{GUARD_ON_BOOT_S}s", "GUARD_INTERVAL": f"{GUARD_INTERVAL_S}s",
              "COMMIT_TIMEOUT": f"{COMMIT_TIMEOUT_S}s"}
    for src in sorted((GUEST / "units").rglob("*")):
        if src.is_file():
            dest = local / src.relative_to(GUEST / "units")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(render(src, values))
    for name in E2E_UNITS:
        enable(tree, "/etc/systemd/system", name)
    for name in MASKED:
        (local / name).unlink(missing_ok=True)
        (local / name).symlink_to("/dev/null")
    for kind, shipped, masks, kept in (
            ("generator", "lib/systemd/system-generators", "etc/systemd/system-generators",
             GENERATORS_KEPT),
            ("udev rule", "lib/udev/rules.d", "etc/udev/rules.d", UDEV_RULES_KEPT)):
        names = {p.name for p in (tree / shipped).iterdir()}
        if not set(kept) <= names:
            raise SystemdRootfsError(f"no {kind} {sorted(set(kept) - names)} in /{shipped}")
        (tree / masks).mkdir(parents=True, exist_ok=True)
        for name in sorted(names - set(kept)):
            (tree / masks / name).symlink_to("/dev/null")
