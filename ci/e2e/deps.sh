#!/usr/bin/env bash
# Host dependencies of the end-to-end boots (idempotent; quick when everything is present):
# QEMU, firmware and bootloaders, image tools, the reference environment tools, and the Rust
# targets and cross compiler for the static guest clients.
set -euo pipefail
PACKAGES=(
    qemu-system-x86 qemu-system-arm ovmf grub-efi-amd64-bin grub-common u-boot-qemu u-boot-tools
    libubootenv-tool mtools dosfstools e2fsprogs gdisk fdisk util-linux kmod cpio zstd dpkg
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl-tools
)
"$(dirname "$0")/../apt-install.sh" "${PACKAGES[@]}"
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        grep -qx "$t" <<<"$installed" || rustup target add "$t"
    done
fi
