#!/usr/bin/env python3
"""Builds the end-to-end test disk images and artifacts for one architecture.

    ci/e2e/build.py --arch x86_64|arm64|x86_64-sdboot --client PATH --artifact-tool PATH
                    [--out DIR] [--cache DIR]

No root, no loop devices, no mounts: Debian bookworm packages are fetched with `apt-get download`
through a private APT configuration (host sources, separate lists and cache, the guest's
architecture), unpacked with dpkg-deb, and the file systems are made with mkfs.ext4 -d, mkfs.vfat +
mtools, and written into a GPT disk image (sgdisk) at the partition offsets.

The chains (ARCHES): x86_64 = OVMF + GRUB, arm64 = U-Boot, x86_64-sdboot = OVMF + Debian's
systemd-boot with its boot counting by entry file names (no environment: the ESP holds
loader/loader.conf, one entry per slot and each slot's kernel and initrd under rustupdate/<slot>/;
docs/boot-contract.md, "systemd-boot"; no systemd guests on that chain).

Output in DIR (default build/e2e/<arch>):
    disk.img            pristine GPT disk: boot area, rootfs_a = v1, rootfs_b = v1, data
    disk-systemd.img    the same for the systemd guests (v1-systemd in both slots, see
                        systemd_rootfs.py)
    rootfs-v{1,2,3}.ext4, rootfs-v{1,2}-systemd.ext4
    artifacts/*.rua     also on the data partition under /artifacts
    artifacts/v2.rudelta  the delta patch from the v1 image to v2.rua (install --delta)
    trust/trust-v{1,3}.json  the trust documents (arm64: the images hold v1, v2-trust.rua carries v3)
    layout.json         everything the scenario runner needs (offsets, firmware, versions)
Downloads and unpacked packages are cached in the cache directory (default build/e2e/cache).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import systemd_rootfs
from harness import bls, contract, guest, layout as layout_json
from harness.buildcmd import log, out, run
from harness.debs import Apt, unpack
from harness.disk import FILLER_PATH, MIB, MTOOLS_ENV, EnvFiles, filler_bytes, fw_env_config, sha256_range
from harness.initramfs import build_initramfs, kernel_parts
from harness.layout import Artifact, Firmware, Image, Layout, Partition

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BOOT_FILES = REPO / "meta-rustupdate" / "recipes-bsp" / "rustupdate-boot" / "files"
# rustupdate.toml.in and the example health checks of the layer's rustupdate-conf recipe.
CONF_FILES = REPO / "meta-rustupdate" / "recipes-core" / "rustupdate" / "files"


# The two ways a device's [keys] can be configured (docs/config.md). The arm64 chain runs the
# trust-document configuration in every scenario (and the soak), the x86_64 chains the fixed
# keys, so both are booted in CI without a root file system or disk of their own.
KEYS_FIXED = "fixed"  # trusted-dir = /etc/rustupdate/keys
KEYS_TRUST = "trust"  # trust-document, root-dir, root-threshold; decryption-key
KEYS_MODES = (KEYS_FIXED, KEYS_TRUST)


@dataclass(frozen=True)
class Arch:
    """What differs between the two e2e machines."""
    deb_arch: str  # Debian architecture, also the kernel flavour
    bootloader: str  # "grub" | "uboot" | "systemd-boot"
    device_type: str
    boot_mount: str  # where the guest mounts the boot partition
    boot_mib: int  # partition sizes (MiB)
    kernel_name: str  # /boot/<kernel_name> in each slot
    console: str
    # Kernel arguments of this architecture's guests after KERNEL_ARGS (TIMER_ARGS_X86_64).
    timer_args: str
    modules: tuple[str, ...]  # kernel modules of the initramfs, before their dependencies
    firmware: Firmware
    # [keys] of the device: fixed keys in /etc/rustupdate/keys, or a trust document
    # with its root keys (docs/trust.md) and a decryption key on the data partition
    # (docs/encryption.md), as the layer writes them for RUSTUPDATE_TRUST_DOCUMENT and
    # RUSTUPDATE_DECRYPTION_KEY.
    keys: str = KEYS_FIXED  # one of KEYS_MODES
    slot_mib: int = 96
    image_mib: int = 64  # root file system images: smaller than a slot (the client writes the image)
    data_mib: int = 224

    @property
    def boot_label(self) -> str:
        return contract.BOOT_LABEL[self.bootloader]

    @property
    def trust(self) -> bool:
        return self.keys == KEYS_TRUST


# Kernel arguments of the e2e images besides root=, rustupdate.slot= and console=: quiet boots
# are faster on an emulated UART; panic=-1 turns a crashed init into a reboot (QEMU -no-reboot
# then exits), which is how the broken release "fails to boot".
KERNEL_ARGS = "quiet panic=-1"
# x86_64 under TCG: the kernel's check that the IO-APIC timer interrupt arrives (timer_irq_works()
# in arch/x86/kernel/apic/io_apic.c) busy-waits about ten ticks' worth of TSC cycles and wants
# jiffies to have moved by more than four; on a loaded host the emulated timer's interrupts can
# miss that window, and the kernel panics with "IO-APIC + timer doesn't work!" a second into the
# boot (seen once in a CI soak, issue 19).
# no_timer_check skips that check (timer_irq_works() returns 1), as virtualised guests commonly
# do. Not tsc=reliable: it only disables the clocksource watchdog, which under load may move the
# guest from tsc to hpet (slower, harmless); no run has failed from it. arm64 has neither check
# nor option (the kernel would hand an unknown word to init as an argument).
TIMER_ARGS_X86_64 = "no_timer_check"

ARCHES = {
    "x86_64": Arch(
        deb_arch="amd64", bootloader="grub", device_type="e2e-x86_64", boot_mount="/boot/efi",
        boot_mib=32, kernel_name="vmlinuz", console="ttyS0,115200",
        timer_args=TIMER_ARGS_X86_64,
        modules=("virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4", "vfat",
                 "nls_cp437", "nls_ascii", "nls_utf8", "qemu_fw_cfg"),
        firmware=Firmware(code="/usr/share/OVMF/OVMF_CODE_4M.fd",
                          vars="/usr/share/OVMF/OVMF_VARS_4M.fd")),
    "arm64": Arch(
        deb_arch="arm64", bootloader="uboot", device_type="e2e-arm64", boot_mount="/boot/firmware",
        boot_mib=16, kernel_name="Image", console="ttyAMA0",
        timer_args="",
        modules=("virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic",
                 "ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "qemu_fw_cfg"),
        firmware=Firmware(bios="/usr/lib/u-boot/qemu_arm64/u-boot.bin"),
        keys=KEYS_TRUST),
    # The x86_64 machine with systemd-boot instead of GRUB. The ESP holds both slots' kernels and
    # initrds (UEFI reads no ext4): 2 x (8 MiB + 2 MiB), plus the client's temporary copy of a
    # kernel while it replaces one, plus slack.
    "x86_64-sdboot": Arch(
        deb_arch="amd64", bootloader="systemd-boot", device_type="e2e-x86_64",
        boot_mount="/boot/efi", boot_mib=48, kernel_name="vmlinuz", console="ttyS0,115200",
        timer_args=TIMER_ARGS_X86_64,
        modules=("virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4", "vfat",
                 "nls_cp437", "nls_ascii", "nls_utf8", "qemu_fw_cfg"),
        firmware=Firmware(code="/usr/share/OVMF/OVMF_CODE_4M.fd",
                          vars="/usr/share/OVMF/OVMF_VARS_4M.fd")),
}
# systemd-boot's EFI binary in Debian's systemd-boot-efi, installed as the removable-media path.
SYSTEMD_BOOT_EFI = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
# The initrd's version marker on the systemd-boot chain (read by nothing).
INITRD_VERSION_FILE = "etc/e2e-initrd-version"
BOOTLIMIT = str(contract.DEFAULT_BOOTLIMIT)
VERSIONS = ("v1", "v2", "v3")  # v3 is the broken release
# The systemd guests (systemd_rootfs.py): their own pristine disk, disk-systemd.img, with v1 in
# both slots and only the systemd artifacts on its data partition.
SYSTEMD_VERSIONS = ("v1-systemd", "v2-systemd")
SYSTEMD_ARTIFACT_SUFFIX = "-systemd.rua"
SYSTEMD_IMAGE_MIB = 90  # about 80 MiB of files (arm64, its kernel Image is 32 MiB); slots: 96
DELTA_LEVEL = 19  # zstd level of the delta patches (rustupdate-artifact delta's default)
# The trust-document configuration (KEYS_TRUST), at the layer's paths (rustupdate-conf): the
# image's document, its root public keys and how many of them must sign it.
TRUST_DOCUMENT = "/etc/rustupdate/trust.json"
ROOT_KEYS_DIR = "/etc/rustupdate/root-keys"
ROOT_THRESHOLD = 1
# Where a KEYS_TRUST device keeps its X25519 secret key: on the data partition (the pristine
# disk has it, as a device provisioned at manufacturing would), never in an image.
DATA_MOUNT = "/data"
DECRYPTION_KEY = "rustupdate/device-x25519.pem"  # under DATA_MOUNT
GRUB_MODULES = ("part_gpt fat ext2 normal configfile linux loadenv test echo regexp sleep reboot halt "
                "gzio search serial terminal efi_gop all_video")


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

def render(template: Path, values: dict[str, str], mark: str = "@@") -> str:
    """Replaces every <mark>NAME<mark> (@@NAME@@ in the boot scripts, @NAME@ in rustupdate-conf's
    files, as the layer does); a placeholder without a value is an error."""
    pattern = rf"{mark}([A-Z0-9_]+){mark}"
    text = template.read_text()
    unknown = sorted(set(re.findall(pattern, text)) - set(values))
    if unknown:
        sys.exit(f"{template}: no value for placeholder(s) {', '.join(unknown)}")
    return re.sub(pattern, lambda m: values[m.group(1)], text)


def boot_placeholders(cfg: Arch) -> dict[str, str]:
    """Values of the boot script placeholders for the e2e images (the layer sets its own)."""
    return {
        "CONSOLE": cfg.console,
        "KERNEL_ARGS": " ".join(a for a in (KERNEL_ARGS, cfg.timer_args) if a),
        "KERNEL_IMAGETYPE": cfg.kernel_name,
        "BOOTLIMIT": BOOTLIMIT,
        "SLOT_A_LABEL": contract.slot_label("a"),
        "SLOT_B_LABEL": contract.slot_label("b"),
        "BOOT_LABEL": cfg.boot_label,
        "UBOOT_DEV": "virtio 0",
        "UBOOT_ENV_SIZE": f"{contract.UBOOT_ENV_SIZE:#x}",
    }


def keys_section(cfg: Arch) -> str:
    """The [keys] table as the layer's rustupdate-conf writes it (rustupdate_keys_section): fixed
    keys, or (KEYS_TRUST) RUSTUPDATE_TRUST_DOCUMENT with its root keys and
    RUSTUPDATE_DECRYPTION_KEY set."""
    if not cfg.trust:
        return 'trusted-dir = "/etc/rustupdate/keys"\nthreshold = 1'
    return (f'trust-document = "{TRUST_DOCUMENT}"\nroot-dir = "{ROOT_KEYS_DIR}"\n'
            f'root-threshold = {ROOT_THRESHOLD}\n'
            f'decryption-key = "{DATA_MOUNT}/{DECRYPTION_KEY}"')


def client_config(cfg: Arch, *, health_timeout: int = 20, trial_timeout: int = 900,
                  systemd: bool = False) -> str:
    """The layer's rustupdate.toml.in rendered with the e2e values (as rustupdate-conf does
    with RUSTUPDATE_* variables), so the device configuration the layer ships is the one booted
    here. One line differs in the busybox guests: their init is a shell script that does not
    handle reboot requests, so the client reboots with -f. The systemd guests keep the layer's
    line (an orderly `systemctl reboot`) and set their own health and trial timeouts."""
    if cfg.bootloader == "systemd-boot":
        bootloader = f'type = "systemd-boot"\nesp = "{cfg.boot_mount}"'
    elif cfg.bootloader == "grub":
        bootloader = (f'type = "grub"\ngrubenv = "{cfg.boot_mount}/{contract.GRUBENV_PATH}"\n'
                      f'grubenv-redund = "{cfg.boot_mount}/{contract.GRUBENV_REDUND_PATH}"')
    else:
        bootloader = 'type = "uboot"\nfw-env-config = "/etc/fw_env.config"'
    text = render(CONF_FILES / "rustupdate.toml.in", {
        "DEVICE_TYPE": cfg.device_type,
        "DATA_MOUNTPOINT": "/data",
        "SLOT_A_LABEL": contract.slot_label("a"),
        "SLOT_B_LABEL": contract.slot_label("b"),
        "BOOTLOADER_KEYS": bootloader,
        "BOOTLIMIT": BOOTLIMIT,
        "KEYS": keys_section(cfg),
        "HEALTH_TIMEOUT": str(health_timeout),
        "TRIAL_TIMEOUT": str(trial_timeout),
        "SYSCONFDIR": "/etc",
        "BASE_SBINDIR": "/sbin",
    }, mark="@")
    reboot = 'reboot-command = ["/sbin/reboot"]'
    if reboot not in text:
        sys.exit(f"{CONF_FILES / 'rustupdate.toml.in'}: expected the line {reboot}")
    return text if systemd else text.replace(reboot, 'reboot-command = ["/sbin/reboot", "-f"]')


# ---------------------------------------------------------------------------------------------
# File systems and the disk
# ---------------------------------------------------------------------------------------------

def mkfs_ext4(src: Path, image: Path, mib: int, label: str) -> None:
    image.unlink(missing_ok=True)
    run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", label, "-E", "root_owner=0:0", "-d", src,
         image, f"{mib}M"], stdout=subprocess.DEVNULL)


def mkfs_vfat(files: dict[str, Path], image: Path, mib: int, label: str) -> None:
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(mib * MIB)
    run(["mkfs.vfat", "-n", label.upper(), "-i", "12345678", image], stdout=subprocess.DEVNULL)
    made = set()
    for dest in sorted(files):
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                run(["mmd", "-i", image, f"::/{d}"], env=MTOOLS_ENV)
                made.add(d)
        run(["mcopy", "-i", image, files[dest], f"::/{dest}"], env=MTOOLS_ENV)


def copy_into(disk: Path, image: Path, offset: int) -> None:
    """Writes image into disk at offset, leaving holes for all-zero MiB blocks."""
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        pos = offset
        while True:
            block = src.read(MIB)
            if not block:
                break
            if block.count(0) != len(block):
                dst.seek(pos)
                dst.write(block)
            pos += len(block)


def make_disk(disk: Path, cfg: Arch, boot_img: Path, slot_a: Path, slot_b: Path,
              data_img: Path) -> dict[str, Partition]:
    total = 1 + cfg.boot_mib + 2 * cfg.slot_mib + cfg.data_mib + 1
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(total * MIB)
    boot_type = "0700" if cfg.bootloader == "uboot" else "ef00"
    # Partitions 1-4 in this order (the boot scripts know the slots as partitions 2 and 3).
    a, b, data = contract.slot_label("a"), contract.slot_label("b"), contract.DATA_LABEL
    contents = {cfg.boot_label: boot_img, a: slot_a, b: slot_b, data: data_img}
    # sgdisk -q once wrote no table while exiting 0 (notes): no -q, output discarded, checked below.
    run(["sgdisk", "-o",
         "-n", f"1:2048:+{cfg.boot_mib}M", "-t", f"1:{boot_type}", "-c", f"1:{cfg.boot_label}",
         "-n", f"2:0:+{cfg.slot_mib}M", "-t", "2:8304", "-c", f"2:{a}",
         "-n", f"3:0:+{cfg.slot_mib}M", "-t", "3:8304", "-c", f"3:{b}",
         "-n", "4:0:0", "-t", "4:8300", "-c", f"4:{data}", disk], stdout=subprocess.DEVNULL)
    parts = {}
    for n, (name, img) in enumerate(contents.items(), start=1):
        fields = out(["partx", "-g", "-o", "START,SECTORS", "-n", str(n), disk]).split()
        if len(fields) != 2:
            sys.exit(f"partx found no partition {n} in {disk}: the GPT was not written")
        parts[name] = Partition(n, int(fields[0]) * 512, int(fields[1]) * 512)
        if img.stat().st_size > parts[name].size:
            sys.exit(f"{img} does not fit into partition {name}")
        copy_into(disk, img, parts[name].offset)
    return parts


# ---------------------------------------------------------------------------------------------
# Root file systems and artifacts
# ---------------------------------------------------------------------------------------------

def kernel_options(cfg: Arch, slot: str) -> str:
    """The kernel command line of a slot's systemd-boot entry: what grub.cfg passes."""
    values = boot_placeholders(cfg)
    return (f"root=PARTLABEL={contract.slot_label(slot)} {contract.CMDLINE_SLOT}{slot} "
            f"console={values['CONSOLE']} {values['KERNEL_ARGS']}")


def systemd_boot_files(cfg: Arch, efi: Path, kernel: Path, initrd: Path,
                       work: Path) -> dict[str, Path]:
    """The ESP of the systemd-boot chain (docs/boot-contract.md): systemd-boot at the
    removable-media path, loader.conf, the factory entries (a generation 2, b generation 1, both
    blessed) and each slot's kernel and initrd under rustupdate/<slot>/."""
    (work / "loader.conf").write_text(bls.LOADER_CONF_TEXT)
    files = {"EFI/BOOT/BOOTX64.EFI": efi, bls.LOADER_CONF: work / "loader.conf"}
    for slot in contract.SLOTS:
        entry = work / bls.EntryName(slot).file_name()
        entry.write_text(bls.entry_text(slot, bls.FACTORY_GENERATION[slot],
                                        kernel_options(cfg, slot)))
        files[f"{bls.ENTRIES_DIR}/{entry.name}"] = entry
        for name, src in zip(bls.KERNEL_FILES, (kernel, initrd), strict=True):
            files[f"{bls.SLOT_FILES_DIR}/{slot}/{name}"] = src
    return files


def build_rootfs(tree: Path, version: str, cfg: Arch, busybox: Path, applets: list[str],
                 kernel: Path, initrd: Path, client: Path, keys: Keys) -> None:
    shutil.rmtree(tree, ignore_errors=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/rustupdate/keys",
              "etc/rustupdate/health.d", "etc/rustupdate/hooks.d", "proc", "sys", "dev", "tmp",
              "run", "data", "boot", cfg.boot_mount.lstrip("/"), "var", "root", "mnt"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    (tree / "var" / "lock").symlink_to("../run/lock")
    shutil.copy2(busybox, tree / "bin" / "busybox")
    for a in applets:
        # busybox --list-full includes busybox itself and init: skip them (a self-link would
        # replace the binary; /sbin/init is ours).
        if "/" not in a or a.rsplit("/", 1)[-1] in ("busybox", "init", "linuxrc"):
            continue
        link = tree / a
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(tree / "bin" / "busybox", link.parent))
    shutil.copy2(kernel, tree / "boot" / cfg.kernel_name)
    shutil.copy2(initrd, tree / "boot" / "initrd.img")
    shutil.copy2(client, tree / "usr" / "bin" / "rustupdate")
    os.chmod(tree / "usr" / "bin" / "rustupdate", 0o755)
    init = render(HERE / "guest" / "init", {
        "BOOT_LABEL": cfg.boot_label, "BOOT_MOUNT": cfg.boot_mount,
        "BROKEN": "1" if version == "v3" else "0", "STOP_LINE": guest.STOP_LINE})
    (tree / "sbin" / "init").write_text(init)
    os.chmod(tree / "sbin" / "init", 0o755)
    etc = tree / "etc"
    (etc / "rustupdate-version").write_text(version + "\n")
    # The same in every version: the block a delta-fallback scenario modifies in the base slot.
    (tree / FILLER_PATH).parent.mkdir(parents=True, exist_ok=True)
    (tree / FILLER_PATH).write_bytes(filler_bytes())
    (etc / "os-release").write_text(
        f'NAME="rustupdate e2e"\nID=rustupdate-e2e\nVERSION_ID={version}\n'
        f'PRETTY_NAME="rustupdate e2e {version}"\n')
    (etc / "hostname").write_text(f"e2e-{cfg.deb_arch}\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "rustupdate" / "rustupdate.toml").write_text(client_config(cfg))
    if cfg.trust:
        # As rustupdate-conf installs RUSTUPDATE_TRUST_DOCUMENT and RUSTUPDATE_TRUST_ROOT_KEYS;
        # keys/ stays empty (the layer makes it either way): the document names the release keys.
        root_dir = tree / ROOT_KEYS_DIR.lstrip("/")
        root_dir.mkdir(parents=True, exist_ok=True)
        for public, dest in ((keys.trust_image, tree / TRUST_DOCUMENT.lstrip("/")),
                             (keys.root_pub, root_dir / "e2e-root.pem")):
            shutil.copyfile(public, dest)
            os.chmod(dest, 0o644)  # as the layer installs them
    else:
        shutil.copy2(keys.release_pub, etc / "rustupdate" / "keys" / "e2e.pem")
    for src, dst in (("health-e2e", "health.d/50-e2e"), ("hook-e2e", "hooks.d/50-e2e")):
        shutil.copy2(HERE / "guest" / src, etc / "rustupdate" / dst)
        os.chmod(etc / "rustupdate" / dst, 0o755)
    # The layer's example health check that needs no systemd (20-no-failed-units does).
    check = etc / "rustupdate" / "health.d" / "10-data-writable"
    check.write_text(render(CONF_FILES / "health.d" / "10-data-writable",
                            {"DATA_MOUNTPOINT": "/data"}, mark="@"))
    os.chmod(check, 0o755)
    if cfg.bootloader == "uboot":
        (etc / "fw_env.config").write_text(
            "# device offset size: the two copies of a redundant environment on the boot partition\n"
            + fw_env_config(tuple(f"{cfg.boot_mount}/{name}"
                                  for name in contract.ENV_COPIES["uboot"])))


def build_systemd_rootfs(tree: Path, version: str, cfg: Arch, packages: list[Path], busybox: Path,
                         applets: list[str], kernel: Path, initrd: Path, client: Path,
                         keys: Keys) -> None:
    """A systemd guest's root file system (systemd_rootfs.py): the busybox guest's tree (the
    product's files; busybox for the scripts) with Debian's systemd and udev unpacked over it
    (systemd-sysv's /sbin/init and /sbin/reboot replace busybox's), configured, and the client
    configuration of the systemd guests."""
    build_rootfs(tree, version, cfg, busybox, applets, kernel, initrd, client, keys)
    systemd_rootfs.populate(tree, packages)
    systemd_rootfs.configure(tree, boot_label=cfg.boot_label, boot_mount=cfg.boot_mount,
                             data_label=contract.DATA_LABEL, render=render)
    (tree / "etc" / "rustupdate" / "rustupdate.toml").write_text(client_config(
        cfg, health_timeout=systemd_rootfs.HEALTH_TIMEOUT_S,
        trial_timeout=systemd_rootfs.TRIAL_TIMEOUT_S, systemd=True))


def keygen(tool: Path, prefix: Path, *, recipient: bool = False) -> tuple[Path, Path]:
    """An ed25519 signing key pair (or, with recipient, an X25519 one for encrypted artifacts),
    made once: keygen is random, so the keys stay in build/e2e/keys for every later build."""
    key, pub = Path(f"{prefix}.key.pem"), Path(f"{prefix}.pub.pem")
    if not (key.exists() and pub.exists()):
        prefix.parent.mkdir(parents=True, exist_ok=True)
        run([tool, "keygen", *(["--recipient"] if recipient else []), "-o", prefix],
            stdout=subprocess.DEVNULL)
    return key, pub


@dataclass(frozen=True)
class Keys:
    """The e2e keys (build/e2e/keys, shared by every chain) and the trust documents made from
    them for this build."""
    release: Path  # e2e: signs the artifacts; the release key of the image's trust document
    release_pub: Path
    foreign: Path  # trusted by no device
    release2: Path  # release key 2: trusted from trust document version 3 on
    root: Path  # the root key of the trust documents (offline in real life)
    root_pub: Path
    device_x25519: Path  # the arm64 devices' X25519 secret key (on their data partition)
    device_x25519_pub: Path
    other_x25519_pub: Path  # a recipient that is not this device
    trust_image: Path  # trust document version 1: root e2e-root, release e2e (in the images)
    trust_rotated: Path  # version 3: release key 2 added, e2e revoked (v2-trust.rua carries it)


def make_keys(tool: Path, keydir: Path, trustdir: Path) -> Keys:
    """The keys (made once) and the two trust documents (made anew each build into trustdir:
    ed25519 signatures are deterministic, so the same keys give the same documents). Each
    document is checked with `trust inspect` as a device would judge it: version 1 as an image's
    document under the root key, version 3 as the successor of version 1."""
    release, release_pub = keygen(tool, keydir / "e2e")
    foreign, _ = keygen(tool, keydir / "foreign")
    release2, release2_pub = keygen(tool, keydir / "e2e-release2")
    root, root_pub = keygen(tool, keydir / "e2e-root")
    device, device_pub = keygen(tool, keydir / "device-x25519", recipient=True)
    _, other_pub = keygen(tool, keydir / "other-x25519", recipient=True)
    shutil.rmtree(trustdir, ignore_errors=True)
    trustdir.mkdir(parents=True)
    v1, v3 = trustdir / "trust-v1.json", trustdir / "trust-v3.json"
    quiet = {"stdout": subprocess.DEVNULL}
    run([tool, "trust", "init", "-o", v1, "--root-key", root_pub, "--release-key", release_pub],
        **quiet)
    run([tool, "trust", "sign", v1, "--key", root], **quiet)
    run([tool, "trust", "inspect", v1, "--root-anchor", root_pub], **quiet)
    shutil.copy2(v1, v3)
    run([tool, "trust", "add-key", v3, "--release-key", release2_pub], **quiet)  # version 2
    run([tool, "trust", "revoke", v3, "--key", release_pub], **quiet)  # version 3
    run([tool, "trust", "sign", v3, "--key", root], **quiet)
    run([tool, "trust", "inspect", v3, "--previous", v1], **quiet)
    return Keys(release=release, release_pub=release_pub, foreign=foreign, release2=release2,
                root=root, root_pub=root_pub, device_x25519=device, device_x25519_pub=device_pub,
                other_x25519_pub=other_pub, trust_image=v1, trust_rotated=v3)


def build_artifacts(tool: Path, images: dict[str, Path], cfg: Arch, keys: Keys,
                    outdir: Path) -> dict[str, Artifact]:
    """The signed artifacts of the scenarios. Each entry: file name -> what it is."""
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    key = keys.release

    def build(name: str, image: Path, version: str, keyfile: Path, device_type: str,
              *extra: str | Path) -> Path:
        dest = outdir / name
        run([tool, "build", "--image", image, "--name", "e2e-rootfs", "--version", version,
             "--device-type", device_type, "--key", keyfile, "--threads", "2", "--created",
             "1700000000", *extra, "-o", dest], stdout=subprocess.DEVNULL)
        return dest

    made = {}
    # v1.rua: the power-cut soak (soak.py) installs whichever good version the target slot
    # does not hold, so every install really rewrites the slot.
    for v in ("v1", "v2", "v3"):
        build(f"{v}.rua", images[v], v, key, cfg.device_type)
        made[f"{v}.rua"] = Artifact(v, "installs" + (" (broken image)" if v == "v3" else ""))
    build("v2-foreign.rua", images["v2"], "v2", keys.foreign, cfg.device_type)
    made["v2-foreign.rua"] = Artifact("v2", "rejected: signed by an untrusted key")
    build("v2-wrongtype.rua", images["v2"], "v2", key, "some-other-device")
    made["v2-wrongtype.rua"] = Artifact("v2", "rejected: incompatible device type")
    # Tampered: one byte flipped in the middle of the payload (chunk data), after the signature.
    data = bytearray((outdir / "v2.rua").read_bytes())
    data[len(data) // 2] ^= 0x55
    (outdir / "v2-tampered.rua").write_bytes(bytes(data))
    made["v2-tampered.rua"] = Artifact("v2", "rejected: a chunk fails its hash")
    # The delta patch of the delta-* scenarios: rebuilds v2.rua on a device whose active slot
    # holds the v1 image (install --delta).
    run([tool, "delta", "--base", images["v1"], "--target", outdir / "v2.rua", "--level",
         str(DELTA_LEVEL), "-o", outdir / "v2.rudelta"], stdout=subprocess.DEVNULL)
    made["v2.rudelta"] = Artifact("v2", "delta patch: v2.rua rebuilt from the v1 image")
    for v in (v for v in SYSTEMD_VERSIONS[1:] if v in images):
        build(f"{v}.rua", images[v], v, key, cfg.device_type)
        made[f"{v}.rua"] = Artifact(v, "installs (systemd guests, disk-systemd.img only)")
    if cfg.trust:
        made.update(build_trust_artifacts(build, tool, images, cfg, keys))
    return made


def build_trust_artifacts(build: Callable[..., Path], tool: Path, images: dict[str, Path],
                          cfg: Arch, keys: Keys) -> dict[str, Artifact]:
    """The artifacts of trust-revocation and fleet-encrypted(-delta) (KEYS_TRUST devices only).
    The encrypted ones differ from build to build (each has a random content key)."""
    made = {}
    build("v2-trust.rua", images["v2"], "v2", keys.release, cfg.device_type,
          "--trust-document", keys.trust_rotated)
    made["v2-trust.rua"] = Artifact(
        "v2", "installs; carries trust document version 3 (release key 2 added, the e2e key "
        "revoked), in force when v2 commits")
    build("v1-release2.rua", images["v1"], "v1", keys.release2, cfg.device_type)
    made["v1-release2.rua"] = Artifact(
        "v1", "signed by release key 2: rejected under trust document 1, installs under 3")
    encrypted = build("v2-encrypted.rua", images["v2"], "v2", keys.release, cfg.device_type,
                      "--encrypt-to", keys.device_x25519_pub)
    made["v2-encrypted.rua"] = Artifact("v2", "installs: encrypted to the device's X25519 key")
    # Its sealed patch from v1, made as a release pipeline does: the host holds a recipient key
    # (here the device's own) and seals the patch under the release's content key.
    run([tool, "delta", "--base", images["v1"], "--target", encrypted, "--level",
         str(DELTA_LEVEL), "--decryption-key", keys.device_x25519,
         "-o", encrypted.with_name("v2-encrypted.rudelta")], stdout=subprocess.DEVNULL)
    made["v2-encrypted.rudelta"] = Artifact(
        "v2", "sealed delta patch: v2-encrypted.rua rebuilt from the v1 image")
    build("v2-encrypted-other.rua", images["v2"], "v2", keys.release, cfg.device_type,
          "--encrypt-to", keys.other_x25519_pub)
    made["v2-encrypted-other.rua"] = Artifact(
        "v2", "rejected: encrypted to another recipient, not the device")
    return made


# ---------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHES))
    ap.add_argument("--client", required=True, type=Path,
                    help="static rustupdate client binary for the guest (or a stand-in script)")
    ap.add_argument("--artifact-tool", required=True, type=Path, help="host rustupdate-artifact binary")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cache", type=Path, default=REPO / "build" / "e2e" / "cache")
    args = ap.parse_args()
    t0 = time.monotonic()
    cfg = ARCHES[args.arch]
    outdir = (args.out or REPO / "build" / "e2e" / args.arch).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    cache = args.cache.resolve()
    work = outdir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for p in (args.client, args.artifact_tool):
        if not p.is_file():
            sys.exit(f"{p}: not found")

    # Packages: the guest's kernel and busybox, and the host's busybox for the applet list.
    apt = Apt(cache, cfg.deb_arch)
    apt.update()
    kpkg = apt.newest_kernel(cfg.deb_arch)
    kroot = unpack(apt.download(kpkg), cache)
    bbroot = unpack(apt.download("busybox-static"), cache)
    busybox = bbroot / "bin" / "busybox"
    if cfg.deb_arch == "amd64":
        host_busybox = busybox
    else:
        host_apt = Apt(cache, "amd64")
        host_apt.update()
        host_busybox = unpack(host_apt.download("busybox-static"), cache) / "bin" / "busybox"
    applets = out([host_busybox, "--list-full"]).split()

    kver, kernel, modules = kernel_parts(kroot, cfg.modules)
    log(f"kernel {kver}: {kernel.stat().st_size // 1024} KiB, {len(modules)} modules")
    initrd = work / "initrd.img"
    build_initramfs(busybox, applets, modules, initrd)
    log(f"initramfs: {initrd.stat().st_size // 1024} KiB")
    # systemd-boot: each release gets its own initrd (a version marker in it), so that arming a
    # trial copies kernel files onto the ESP, which the client skips for equal files.
    initrds = dict.fromkeys(VERSIONS + SYSTEMD_VERSIONS, initrd)
    if cfg.bootloader == "systemd-boot":
        for v in VERSIONS:
            initrds[v] = work / f"initrd-{v}.img"
            build_initramfs(busybox, applets, modules, initrds[v],
                            {INITRD_VERSION_FILE: f"{v}\n".encode()})

    # Keys (shared by every chain, made once), trust documents and root file systems.
    keys = make_keys(args.artifact_tool, REPO / "build" / "e2e" / "keys", outdir / "trust")
    images = {}
    for v in VERSIONS:
        tree = work / f"rootfs-{v}"
        build_rootfs(tree, v, cfg, busybox, applets, kernel, initrds[v], args.client, keys)
        images[v] = outdir / f"rootfs-{v}.ext4"
        mkfs_ext4(tree, images[v], cfg.image_mib, "rootfs")
    log(f"root file systems: {', '.join(VERSIONS)} ({cfg.image_mib} MiB images)")
    systemd_guests = cfg.bootloader != "systemd-boot"
    debs: list[Path] = []
    packages: dict[str, str] = {}
    for attempt in (1, 2):
        if not systemd_guests:
            break
        try:
            packages = systemd_rootfs.closure(apt.env)
            debs = systemd_rootfs.fetch(packages, apt.env, apt.debs, log)
            break
        except (systemd_rootfs.SystemdRootfsError, subprocess.CalledProcessError) as err:
            # Lists older than the archive (a point release removed a version): refresh once.
            if attempt == 2 or apt.updated:
                sys.exit(f"systemd guests: {err}")
            apt.update(force=True)
    unpacked = [unpack(d, cache) for d in debs]
    for v in SYSTEMD_VERSIONS if systemd_guests else ():
        tree = work / f"rootfs-{v}"
        build_systemd_rootfs(tree, v, cfg, unpacked, busybox, applets, kernel, initrd, args.client,
                             keys)
        images[v] = outdir / f"rootfs-{v}.ext4"
        mkfs_ext4(tree, images[v], SYSTEMD_IMAGE_MIB, "rootfs")
        shutil.rmtree(tree)
    debs_mib = sum(d.stat().st_size for d in debs) // MIB
    if systemd_guests:
        log(f"root file systems: {', '.join(SYSTEMD_VERSIONS)} ({len(packages)} packages, "
            f"{debs_mib} MiB of .debs, {SYSTEMD_IMAGE_MIB} MiB images)")

    artifacts = build_artifacts(args.artifact_tool, images, cfg, keys, outdir / "artifacts")
    log("artifacts: " + ", ".join(f"{n} ({(outdir / 'artifacts' / n).stat().st_size // 1024} KiB)"
                                  for n in artifacts))
    data_imgs = {}
    for guest_kind in ("busybox", "systemd") if systemd_guests else ("busybox",):
        data_tree = work / f"data-{guest_kind}"
        (data_tree / "artifacts").mkdir(parents=True)
        for n in artifacts:
            if n.endswith(SYSTEMD_ARTIFACT_SUFFIX) == (guest_kind == "systemd"):
                os.link(outdir / "artifacts" / n, data_tree / "artifacts" / n)
        if cfg.trust:
            # Provisioned as at manufacturing: the device's secret key, readable by root only.
            secret = data_tree / DECRYPTION_KEY
            secret.parent.mkdir(mode=0o700)
            shutil.copy2(keys.device_x25519, secret)
            os.chmod(secret, 0o600)
        data_imgs[guest_kind] = work / f"data-{guest_kind}.ext4"
        mkfs_ext4(data_tree, data_imgs[guest_kind], cfg.data_mib, "data")
    data_img = data_imgs["busybox"]

    # Boot area: the canonical boot script templates from meta-rustupdate, rendered, and the
    # environment of a device whose slot a is committed.
    values = boot_placeholders(cfg)
    if cfg.bootloader == "systemd-boot":
        env_path = bls.ENTRIES_DIR
        efi = unpack(apt.download("systemd-boot-efi"), cache) / SYSTEMD_BOOT_EFI
        boot_files = systemd_boot_files(cfg, efi, kernel, initrds["v1"], work)
    elif cfg.bootloader == "grub":
        env_path = contract.GRUBENV_PATH
        efi = work / "BOOTX64.EFI"
        run(["grub-mkimage", "-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o", efi] + GRUB_MODULES.split())
        (work / "grub.cfg").write_text(render(BOOT_FILES / "grub.cfg", values))
        boot_files = {"EFI/BOOT/BOOTX64.EFI": efi, "EFI/BOOT/grub.cfg": work / "grub.cfg"}
    else:
        env_path = contract.UBOOT_ENV_PATH
        (work / "boot.cmd").write_text(render(BOOT_FILES / "boot.cmd", values))
        run(["mkimage", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n",
             "rustupdate boot script", "-d", work / "boot.cmd", work / "boot.scr"],
            stdout=subprocess.DEVNULL)
        boot_files = {"boot.scr": work / "boot.scr"}
    if cfg.bootloader != "systemd-boot":
        copies = contract.ENV_COPIES[cfg.bootloader]
        env = EnvFiles(cfg.bootloader, (work / "env-copy0", work / "env-copy1"))
        env.create(contract.committed("a"))
        boot_files.update(zip(copies, env.paths, strict=True))
    for f in (cfg.firmware.code, cfg.firmware.vars, cfg.firmware.bios):
        if f and not Path(f).exists():
            sys.exit(f"{f} missing: run ci/e2e/deps.sh")
    boot_img = work / "boot.vfat"
    mkfs_vfat(boot_files, boot_img, cfg.boot_mib, cfg.boot_label)

    disk = outdir / "disk.img"
    systemd_disk = outdir / "disk-systemd.img"
    systemd_disk.unlink(missing_ok=True)
    systemd_parts = None
    if systemd_guests:
        systemd_parts = make_disk(systemd_disk, cfg, boot_img, images[SYSTEMD_VERSIONS[0]],
                                  images[SYSTEMD_VERSIONS[0]], data_imgs["systemd"])
    layout = Layout(
        arch=args.arch,
        bootloader=cfg.bootloader,
        device_type=cfg.device_type,
        kernel=kver,
        kernel_package=kpkg,
        disk=str(disk),
        partitions=make_disk(disk, cfg, boot_img, images["v1"], images["v1"], data_img),
        env_path=env_path,
        uboot_env_size=contract.UBOOT_ENV_SIZE,
        firmware=cfg.firmware,
        images={v: Image(str(images[v]), images[v].stat().st_size, sha256_range(images[v]))
                for v in images},
        artifacts=artifacts,
        client=str(args.client.resolve()),
        built=time.strftime("%Y-%m-%d %H:%M:%S"),
        guest_disks={"systemd": str(systemd_disk)} if systemd_guests else {},
        initrds={v: sha256_range(initrds[v]) for v in VERSIONS} if not systemd_guests else {},
    )
    if systemd_parts is not None and systemd_parts != layout.partitions:
        sys.exit(f"{systemd_disk}: partitions differ from {disk}'s")
    layout_json.save(layout, outdir / "layout.json")
    shutil.rmtree(work)
    log(f"{args.arch}: {disk} ready in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
