#!/bin/sh
# e2e-unit-fail.service (systemd guests): fails when the host sets fw_cfg opt/rustupdate/health
# to "unit-fail", so that the layer's shipped health check 20-no-failed-units finds a failed
# unit on the trial boot (the unit is ordered before rustupdate-commit.service). Otherwise it
# succeeds and leaves nothing behind.
mode=$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/rustupdate/health/raw 2>/dev/null)
if [ "$mode" = "unit-fail" ]; then
    echo "E2E: unit e2e-unit-fail.service fails (health=unit-fail)"
    exit 1
fi
exit 0
