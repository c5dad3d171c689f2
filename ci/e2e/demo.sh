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
python3 - build/e2e/results/summary.json "$started" <<'PY' || true
import json
import os
import sys
import tomllib

summary, started = sys.argv[1], int(sys.argv[2])
if not os.path.exists(summary) or os.path.getmtime(summary) < started:
    sys.exit("\nno scenario ran (see the errors above)")
print("\n=== what happened ===")
for run in json.load(open(summary)):
    with open(f"ci/scenarios/{run['scenario']}.toml", "rb") as f:
        story = tomllib.load(f).get("description", "") if run["ok"] else "did not go as expected"
    last = run["boot_details"][-1] if run.get("boot_details") else {}
    line = (f"{run['arch']:7} {run['scenario']:16} {'PASS' if run['ok'] else 'FAIL'}  {story}; "
            f"{run['boots']} boots in {run['wall_seconds']} s, now running {last.get('booted', '?')}")
    if run.get("reboot_to_commit_seconds") is not None:
        line += f"; downtime (reboot into the new slot -> committed) {run['reboot_to_commit_seconds']} s"
    print(line)
    for failure in run.get("failures", []):
        print(f"        {failure}")
print("Console logs: build/e2e/results/<arch>/<scenario>/boot-NN.log")
PY
exit $status
