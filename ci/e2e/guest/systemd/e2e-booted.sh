#!/bin/sh
# e2e-booted.service (systemd guests): the first line of the guest protocol, printed as soon as
# the local file systems are mounted and before rustupdate-commit.service starts:
# "E2E: booted slot=<rustupdate.slot= of the kernel command line> version=<rootfs version>".
# The busybox guests print it from their init (ci/e2e/guest/init); the runner's boot timing
# ("QEMU start to E2E: booted") compares the two.
slot=
# shellcheck disable=SC2013  # the command line is one line of words
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        rustupdate.slot=*) slot="${arg#rustupdate.slot=}" ;;
    esac
done
echo "E2E: booted slot=$slot version=$(cat /etc/rustupdate-version) uptime=$(cut -d' ' -f1 /proc/uptime) init=systemd"
