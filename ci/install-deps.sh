#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need (idempotent; fast when present).
set -euo pipefail
PACKAGES=(
    build-essential pkg-config openssl zstd e2fsprogs shellcheck
    libubootenv-tool u-boot-tools grub-common   # reference tools for the environment cross-checks
    systemd-boot                                # bootctl: cross-checks the entries (bls)
    util-linux-extra                            # fincore: what a read brought into the page cache
)
"$(dirname "$0")/apt-install.sh" "${PACKAGES[@]}"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
