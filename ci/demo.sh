#!/usr/bin/env bash
# The demo: builds disk images and signed artifacts, boots them under QEMU with real firmware and
# bootloaders, installs a good update (committed), a broken one (rolled back by the bootloader)
# and one whose health check fails (rolled back by the client); then a fleet server on the host
# rolls a broken release out to three devices in phases and pauses it after the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ci/e2e/demo.sh "$@"
