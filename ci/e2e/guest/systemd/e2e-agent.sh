#!/bin/sh
# e2e-agent.service (systemd guests): the e2e protocol of ci/e2e/guest/init after the boot-time
# decision. systemd orders it after rustupdate-commit.service, so the shipped unit has committed
# (or recorded) by now; this script only reports what the unit did. Then it runs the per-boot
# actions the host gives through QEMU's fw_cfg, prints the client's status between markers and
# ends the boot. Its output goes to the console (StandardOutput=tty).
#
# fw_cfg items (all optional): opt/rustupdate/action  ';'-separated: install <path>, status,
#                                                     idle, sleep N (commit is the unit's job)
#                              opt/rustupdate/env     "NAME=VALUE ..." for the client
#                              opt/rustupdate/end     "poweroff" (default; "reboot" after a
#                                                     successful install), "reboot", or "cut"
# (opt/rustupdate/health is read by the health check and by e2e-unit-fail.service.)
PATH=/usr/sbin:/usr/bin:/sbin:/bin
RUST_LOG_STYLE=never
export PATH RUST_LOG_STYLE

fwcfg() {
    f="/sys/firmware/qemu_fw_cfg/by_name/opt/rustupdate/$1/raw"
    [ -r "$f" ] && cat "$f"
}

# What the shipped rustupdate-commit.service did this boot (RemainAfterExit=yes: "active" after
# exit 0, "failed" after an error; exit 3 reboots, so this script does not run then).
unit=rustupdate-commit.service
state=; rc=
for kv in $(systemctl show -p ActiveState -p ExecMainStatus "$unit"); do
    case "$kv" in
        ActiveState=*) state="${kv#*=}" ;;
        ExecMainStatus=*) rc="${kv#*=}" ;;
    esac
done
case "$state" in
    active|failed) echo "E2E: result commit rc=$rc ($unit $state)" ;;
    *) echo "E2E: error: $unit is $state" ;;
esac
# A commit unit that failed (stopped by its TimeoutStartSec while a health check hung) leaves
# the trial to rustupdate-guard.service, which is ordered after it: give the guard its time
# (it reboots) instead of ending the boot under it. Bounded: the runner's boot timeout decides.
if [ "$state" = failed ]; then
    echo "E2E: trial left to the rollback guard"
    sleep 600
fi

failed=$(systemctl list-units --state=failed --no-legend --plain)
if [ -z "$failed" ]; then
    echo "E2E: failed units: none"
else
    echo "$failed" | while read -r line; do echo "E2E: failed unit: $line"; done
fi

client_env=$(fwcfg env)
end=$(fwcfg end)
[ -n "$end" ] || end=poweroff

# The action and the client environment are split into words on purpose.
# shellcheck disable=SC2086
run_action() {
    set -- $1
    cmd="$1"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        ""|idle|status)
            ;;
        install)
            echo "E2E: action install $*"
            env $client_env rustupdate install "$@"
            rc=$?
            echo "E2E: result install $* rc=$rc"
            # A successful install is followed by the reboot into the new slot.
            [ $rc -eq 0 ] && [ "$end" = "poweroff" ] && end=reboot
            ;;
        sleep)
            sleep "$1"
            ;;
        *)
            # commit, guard: the shipped units' job in these guests.
            echo "E2E: error: unknown action '$cmd' in a systemd guest"
            ;;
    esac
}

actions=$(fwcfg action)
IFS_SAVED="$IFS"
IFS=';'
for a in $actions; do
    IFS="$IFS_SAVED"
    run_action "$a"
    IFS=';'
done
IFS="$IFS_SAVED"

if [ "$end" != "cut" ]; then
    echo "E2E: status-begin"
    rustupdate status --json
    echo "E2E: status-end rc=$?"
fi

echo "E2E: end $end"
case "$end" in
    cut)
        # Power cut: no sync, no unmount (busybox's poweroff; /sbin/poweroff is systemctl).
        busybox poweroff -f -n
        ;;
    reboot)
        # --force: without stopping every unit (seconds under TCG), but processes are killed
        # and the file systems unmounted, as the busybox guests' end does. (The client's own
        # reboots use the shipped configuration's /sbin/reboot: an orderly shutdown.)
        systemctl --force reboot
        ;;
    *)
        systemctl --force poweroff
        ;;
esac
