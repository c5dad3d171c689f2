#!/usr/bin/env bash
# The one-command demo: builds the client, disk images and signed artifacts, then boots them
# under QEMU (real firmware, real bootloaders, real kernels) and shows
#   1. a good update: v1 -> v2 installed into the other slot, trial boot, health checks, commit;
#   2. a broken update: v3 never comes up, the bootloader falls back after 3 trial boots, the
#      client reports it, and v2 is installed and committed afterwards;
#   3. a failing health check: v2 boots but its health check fails, the client rolls back and
#      reboots into v1.
#
#   ci/e2e/demo.sh [--arch arm64|x86_64|all]    (default arm64, the faster boot: about 2-6 s a boot;
#                                                x86_64 with OVMF+GRUB takes about 7-15 s a boot)
# Further arguments go to ci/e2e/run.sh (e.g. --no-deps).
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=arm64
args=()
while (($#)); do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
status=0
started=$(date +%s)
ci/e2e/run.sh --arch "$ARCH" --scenario good-update broken-update health-rollback --narrate "${args[@]}" \
    || status=$?

# A recap in words (each scenario's description), from what the runner recorded.
python3 ci/e2e/runner.py --recap "$started" || true
exit $status
