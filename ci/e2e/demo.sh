#!/usr/bin/env bash
# The one-command demo: builds the client, disk images and signed artifacts, then boots them
# under QEMU (real firmware, real bootloaders, real kernels) and shows
#   1. a good update: v1 -> v2 installed into the other slot, trial boot, health checks, commit;
#   2. a broken update: v3 never comes up, the bootloader falls back after 3 trial boots, the
#      client reports it, and v2 is installed and committed afterwards;
#   3. a failing health check: v2 boots but its health check fails, the client rolls back and
#      reboots into v1;
#   4. a fleet: rustupdate-server on the host (127.0.0.1, the guests reach it as 10.0.2.2) and
#      three devices running `rustupdate daemon` at once; the broken v3 is rolled out in phases
#      33,100 with an error threshold of 1: the first phase's device falls back in the
#      bootloader and reports it, the server pauses the rollout, the other two never get v3;
#   5. deltas through the fleet: a device on v1 reports the image it runs, the server builds the
#      v1 -> v2 patch by itself, the daemon installs v2 from it and commits; the recap shows the
#      bytes the server served (the patch and the artifact's head, not the artifact).
#
#   ci/e2e/demo.sh [--arch arm64|x86_64|all] [--no-fleet]
#       (default arm64, the faster boot: about 2-6 s a boot; x86_64 with OVMF+GRUB takes about
#       7-15 s a boot; health-rollback and the fleet part are arm64 only, so x86_64 shows the good
#       and the broken update; --no-fleet skips the fleet part and building the server)
# Further arguments go to ci/e2e/run.sh (e.g. --no-deps).
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=arm64
SCENARIOS=(good-update broken-update health-rollback fleet-phased-rollout fleet-delta)
args=()
while (($#)); do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --no-fleet) SCENARIOS=("${SCENARIOS[@]:0:3}"); shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
status=0
started=$(date +%s)
ci/e2e/run.sh --arch "$ARCH" --scenario "${SCENARIOS[@]}" --narrate "${args[@]}" || status=$?

# A recap in words (each scenario's description), from what the runner recorded.
python3 ci/e2e/runner.py --recap "$started" || true
echo "demo: $(( $(date +%s) - started )) s"
exit $status
