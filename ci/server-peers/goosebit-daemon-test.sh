#!/usr/bin/env bash
# The rustupdate client daemon against gooseBit (PyPI `goosebit`, a hawkBit DDI server we did not
# write), on loopback, with a device simulated on files (issue 10).
#
#   0. build rustupdate and rustupdate-artifact (debug); install grub-common and gooseBit
#      (ci/server-peers/goosebit/goosebit.sh: the venv and version bench/fleet-load.sh uses); start
#      gooseBit with a fresh data dir and a recording proxy (ci/server-peers/goosebit/flaky_proxy.py,
#      no faults) in front of it, so every request the daemon makes is on record;
#   1. create gooseBit's admin user (POST /setup, POST /login); sign artifacts 2.0.0 and 3.0.0
#      with a fresh key; gooseBit refuses a .rua upload (422, it parses .swu and RAUC headers
#      only: asserted), so ci/server-peers/goosebit/add_software.py registers them with gooseBit's own
#      create_software_update (version and compatibility given instead of parsed);
#   2. the device: slot files a (image 1.0.0) and b, a GRUB environment block made with
#      grub-editenv, a kernel command line file, a reboot script that leaves a marker, the public
#      key, a client config with [server] pointing at the proxy (no device token: gooseBit's
#      device auth is off by default);
#   (a) `check-update`: the device registers; gooseBit lists it as Registered; the configData it
#      sent carries the attributes (gooseBit itself keeps only hw_boardname, hw_revision and
#      sw_version of them, so the attributes are checked in the proxy's record);
#   (b) assign 2.0.0; `check-update` installs it into slot b (bytes compared with the image), arms
#      the trial (grubenv), reboots (marker), gooseBit shows Running; the simulated bootloader
#      boots b, `commit` commits, `check-update` reports closed/success: gooseBit shows Finished,
#      progress 100, sw_version 2.0.0; one more cycle installs nothing again;
#   (c) assign 3.0.0 with a health check that fails: install into a, boot a, `commit` rolls back
#      (reboot, boot b), `check-update` reports closed/failure; gooseBit shows Error and the
#      reason in the device log;
#   (d) cancel: gooseBit has no cancelAction at all (asserted on its source, so a gooseBit that
#      gains it fails here and the test must grow a cancel case);
#   (e) `check-update` with the server unreachable exits 1; `daemon` behind a proxy that answers
#      500 / drops / resets the first requests: the retries back off exponentially (gaps from the
#      proxy's record), the daemon gets through, and it does not poll faster than the server's
#      sleep afterwards (requests counted over the window).
#
# Usage: ci/server-peers/goosebit-daemon-test.sh
#   FLEET_KEEP=1: keep the scratch directory; GOOSEBIT_VERSION: another gooseBit (default 0.2.12)
# Exit codes: 0 passed, 1 failed (logs printed, scratch directory kept), 2 usage.
set -euo pipefail
[[ $# -eq 0 ]] || { sed -n '/^# Usage:/,/^# Exit codes/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=goosebit/goosebit.sh
source "$FLEET_DIR/goosebit/goosebit.sh"
# device_config: the simulated device's rustupdate.toml (shared with the benchmarks).
# shellcheck source=../../bench/lib/device-config.sh
source "$REPO_DIR/bench/lib/device-config.sh"

readonly DEVICE_ID=goosebit-ci-1
readonly DEVICE_TYPE=test-board
readonly SLOT_SIZE=$((6 << 20)) IMAGE_SIZE=$((4 << 20))
readonly POLL_SECS=3                       # gooseBit's polling.sleep for registered devices
readonly BUILD_TIMEOUT_S=1800
readonly CLIENT_TIMEOUT_S=60               # one check-update / commit run
readonly BACKOFF_FAULTS=500,drop,500,reset # the first requests of the daemon run
readonly BACKOFF_BASE_S=2 MAX_BACKOFF_S=20 # the client's documented base; our config's cap
readonly BACKOFF_MIN_RATIO=1.3             # "doubling with jitter": each gap >= 1.3 x the one before
readonly DAEMON_DEADLINE_S=90
readonly GB=$FLEET_DIR/goosebit
readonly CLIENT=$REPO_DIR/target/debug/rustupdate
readonly ARTIFACT_TOOL=$REPO_DIR/target/debug/rustupdate-artifact
STARTED=$SECONDS
SUMMARY=()

pass() { SUMMARY+=("PASS $*"); log "PASS $*"; }

"$REPO_DIR/ci/apt-install.sh" grub-common curl python3
fleet_init goosebit-daemon

log "building rustupdate and rustupdate-artifact (debug)"
(cd "$REPO_DIR" && timeout "$BUILD_TIMEOUT_S" cargo build -q -p rustupdate-artifact -p rustupdate) \
    >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; fleet_fail "cargo build failed"; }

goosebit_install
goosebit_start "$WORK/goosebit" "$(printf '00:00:%02d' "$POLL_SECS")"
mapfile -t GOOSEBIT_ENV < <(goosebit_env "$WORK/goosebit" "$(printf '00:00:%02d' "$POLL_SECS")")

# --- proxies --------------------------------------------------------------------------------

# start_proxy NAME FAULTS -> sets PROXY_URL; log in $WORK/NAME.jsonl
start_proxy() {
    local name=$1 faults=$2 deadline pid
    rm -f "$WORK/$name.port"
    python3 "$GB/flaky_proxy.py" --upstream "$GOOSEBIT_URL" --faults "$faults" \
        --log "$WORK/$name.jsonl" --port-file "$WORK/$name.port" >"$WORK/$name.log" 2>&1 </dev/null &
    pid=$!
    FLEET_PIDS+=("$pid")
    fleet_add_log "$WORK/$name.log"
    deadline=$((SECONDS + 10))
    until [[ -s $WORK/$name.port ]]; do
        kill -0 "$pid" 2>/dev/null || fleet_fail "proxy $name exited (log: $WORK/$name.log)"
        ((SECONDS < deadline)) || fleet_fail "proxy $name wrote no port within 10s"
        sleep 0.05
    done
    PROXY_URL=http://127.0.0.1:$(cat "$WORK/$name.port")
}
start_proxy record ""
readonly RECORD=$WORK/record.jsonl DEVICE_URL=$PROXY_URL
log "recording proxy at $DEVICE_URL"
plog() { python3 "$GB/proxy_log.py" "$@"; }
mark() { plog "$RECORD" last; }   # number of the last request the device made so far

# --- gooseBit as the operator ---------------------------------------------------------------

ADMIN_TOKEN=$(python3 "$GB/gb_api.py" "$GOOSEBIT_URL" setup admin@rustupdate.test "pw-$RANDOM$RANDOM") ||
    fleet_fail "could not create gooseBit's admin user"
gb() { python3 "$GB/gb_api.py" "$GOOSEBIT_URL" --token "$ADMIN_TOKEN" "$@"; }
gb_expect() { gb expect "$DEVICE_ID" "$@"; }
# Waits for a device state in gooseBit; the server applies feedback before it answers, so this is
# a short, bounded wait for the same condition, not a guess at timing.
gb_wait() { fleet_wait_for "gooseBit: $DEVICE_ID $*" 10 0.2 gb_expect "$@"; }

# --- images, keys, artifacts ------------------------------------------------------------------

# A deterministic 4 MiB "filesystem image": a version stamp, then random and zero blocks.
make_image() {
    python3 - "$1" "$2" "$IMAGE_SIZE" <<'PY'
import random, sys
n, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = random.Random(n)
out = bytearray(f"image version {n:2}".encode())
while len(out) < size:
    out += rng.randbytes(4096) if rng.random() < 0.6 else bytes(4096)
open(path, "wb").write(out[:size])
PY
}
mkdir -p "$WORK/host"
for v in 1 2 3; do make_image "$v" "$WORK/host/image-$v.img"; done
"$ARTIFACT_TOOL" keygen --output "$WORK/host/release" >/dev/null || fleet_fail "rustupdate-artifact keygen failed"
for v in 2 3; do
    "$ARTIFACT_TOOL" build --image "$WORK/host/image-$v.img" --name goosebit-ci --version "$v.0.0" \
        --device-type "$DEVICE_TYPE" --key "$WORK/host/release.key.pem" \
        --output "$WORK/host/rustupdate-$v.0.0.rua" >/dev/null || fleet_fail "rustupdate-artifact build $v.0.0 failed"
done

# gooseBit's upload parses the file's header (.swu or RAUC) and refuses anything else.
read -r status _ < <(gb upload "$WORK/host/rustupdate-2.0.0.rua")
[[ $status == 422 ]] || fleet_fail "gooseBit answered $status to a .rua upload; expected 422 (header not parsable): re-check add_software.py"
pass "gooseBit refuses a .rua upload (422); software registered through its own create_software_update instead"
declare -A SOFTWARE_ID
for v in 2 3; do
    SOFTWARE_ID[$v]=$(env "${GOOSEBIT_ENV[@]}" "$GOOSEBIT_VENV/bin/python" "$GB/add_software.py" \
        "$WORK/host/rustupdate-$v.0.0.rua" --version "$v.0.0" 2>>"$WORK/add_software.log" | tail -n 1)
    [[ ${SOFTWARE_ID[$v]} =~ ^[0-9]+$ ]] || fleet_fail "add_software.py $v.0.0 printed no id (log: $WORK/add_software.log)"
done
gb software | python3 -c '
import json, sys
names = sorted(s["name"] for s in json.load(sys.stdin))
sys.exit(0 if names == ["rustupdate-2.0.0.rua", "rustupdate-3.0.0.rua"] else f"software list: {names}")' ||
    fleet_fail "gooseBit does not list both artifacts"

# --- the simulated device -------------------------------------------------------------------

readonly DEV=$WORK/device CFG=$WORK/device/rustupdate.toml GRUBENV=$WORK/device/boot/grubenv
readonly MARKER=$WORK/device/reboot-requested
mkdir -p "$DEV"/{keys,health.d,hooks.d,data,boot}
cp "$WORK/host/image-1.img" "$DEV/slot-a.img"
truncate -s "$SLOT_SIZE" "$DEV/slot-a.img"
python3 -c 'import sys; open(sys.argv[1], "wb").write(b"\xee" * int(sys.argv[2]))' "$DEV/slot-b.img" "$SLOT_SIZE"
cp "$WORK/host/release.pub.pem" "$DEV/keys/release.pem"
grub-editenv "$GRUBENV" create
grub-editenv "$GRUBENV" set rustupdate_slot=a upgrade_available=0 bootcount=0 bootlimit=3
echo "console=ttyS0 rustupdate.slot=a quiet" >"$DEV/cmdline"
printf '#!/bin/sh\ntouch %s\n' "$MARKER" >"$DEV/reboot.sh"
chmod 755 "$DEV/reboot.sh"

# write_config FILE SERVER_URL
write_config() {
    device_config "$DEV" --device-type "$DEVICE_TYPE" --health-timeout 5 --hooks-timeout 5 \
        --reboot-command "$DEV/reboot.sh" --server-url "$2" --controller-id "$DEVICE_ID" \
        --poll-interval "$POLL_SECS" --max-backoff "$MAX_BACKOFF_S" --reboot immediate >"$1"
}
write_config "$CFG" "$DEVICE_URL"
touch "$WORK/client.log"
fleet_add_log "$WORK/client.log"

# client ARGS… -> runs rustupdate -c CLIENT_CFG (default CFG) ARGS… (bounded), output appended
# to client.log; sets RC.
client() {
    local cfg=${CLIENT_CFG:-$CFG}
    printf '\n$ rustupdate -c %s %s\n' "${cfg##*/}" "$*" >>"$WORK/client.log"
    RC=0
    RUST_LOG=${RUST_LOG:-info} timeout "$CLIENT_TIMEOUT_S" "$CLIENT" -c "$cfg" "$@" >>"$WORK/client.log" 2>&1 || RC=$?
    printf '[exit %s]\n' "$RC" >>"$WORK/client.log"
}
client_ok() {
    client "$@"
    [[ $RC -eq 0 ]] || fleet_fail "rustupdate $* exited $RC (log: $WORK/client.log)"
}

env_is() { # env_is "rustupdate_slot=b upgrade_available=1 …": the GRUB environment holds these
    local want have
    have=$(grub-editenv "$GRUBENV" list)
    for want in $1; do
        grep -qx "$want" <<<"$have" || fleet_fail "grubenv lacks $want; it holds: $(tr '\n' ' ' <<<"$have")"
    done
}

slot_holds() { # slot_holds SLOT VERSION: the slot starts with exactly that image
    cmp -s -n "$IMAGE_SIZE" "$DEV/slot-$1.img" "$WORK/host/image-$2.img" ||
        fleet_fail "slot $1 does not hold image $2 (sha256 of its first $IMAGE_SIZE bytes: $(head -c "$IMAGE_SIZE" "$DEV/slot-$1.img" | sha256sum | cut -c1-16)…, image: $(sha256sum <"$WORK/host/image-$2.img" | cut -c1-16)…)"
}

# One boot of the simulated bootloader (docs/boot-contract.md, rustupdate_core::boot::bootloader_boot)
# applied with grub-editenv as grub.cfg's save_env would; writes the booted slot to the command line.
sim_boot() {
    local slot="" upgrade="" count="" limit="" k v
    while IFS='=' read -r k v; do
        case $k in
        rustupdate_slot) slot=$v ;; upgrade_available) upgrade=$v ;; bootcount) count=$v ;; bootlimit) limit=$v ;;
        esac
    done < <(grub-editenv "$GRUBENV" list)
    [[ $slot =~ ^[ab]$ && $upgrade =~ ^[01]$ && $count =~ ^[0-9]$ && $limit =~ ^[1-9]$ ]] ||
        fleet_fail "grubenv not bootable: slot=$slot upgrade_available=$upgrade bootcount=$count bootlimit=$limit"
    if ((upgrade == 1)); then
        count=$((count + 1))
        if ((count > limit)); then
            if [[ $slot == a ]]; then slot=b; else slot=a; fi
            grub-editenv "$GRUBENV" set "rustupdate_slot=$slot" upgrade_available=0 bootcount=0
        else
            grub-editenv "$GRUBENV" set "bootcount=$count"
        fi
    fi
    echo "console=ttyS0 rustupdate.slot=$slot quiet" >"$DEV/cmdline"
    rm -f "$MARKER"
    BOOTED=$slot
}

# --- (a) poll + inventory -------------------------------------------------------------------

m=$(mark)
client_ok check-update
gb_wait --state Registered
plog "$RECORD" count --after "$m" --method GET --path-contains "/DEFAULT/controller/v1/$DEVICE_ID" --status 200 |
    grep -qv '^0$' || fleet_fail "no poll answered 200 in the first cycle"
# The factory image carries no version the client knows of (no install recorded yet): "".
plog "$RECORD" config-data --after "$m" device_type="$DEVICE_TYPE" running_slot=a running_version= \
    slot_a_version= slot_b_version= || fleet_fail "configData of the first cycle lacks the attributes"
[[ ! -e $MARKER ]] || fleet_fail "the first cycle (nothing assigned) asked for a reboot"
pass "(a) poll + inventory: $DEVICE_ID registered in gooseBit, configData carried device_type/running_version/running_slot (gooseBit keeps none of them)"

# --- (b) install, reboot, commit, report success ----------------------------------------------

gb assign "$DEVICE_ID" "${SOFTWARE_ID[2]}"
m=$(mark)
client_ok check-update
plog "$RECORD" count --after "$m" --path-contains /download --status 200 | grep -qv '^0$' ||
    fleet_fail "the artifact was not downloaded from gooseBit"
slot_holds b 2
slot_holds a 1
env_is "rustupdate_slot=b upgrade_available=1 bootcount=0"
[[ -e $MARKER ]] || fleet_fail "no reboot after the install (reboot = immediate)"
gb_wait --state Running --never-state Error
plog "$RECORD" feedback --after "$m" proceeding:none || fleet_fail "no proceeding feedback during the install"
sim_boot
[[ $BOOTED == b ]] || fleet_fail "the trial boot booted slot $BOOTED, not b"
client_ok commit
env_is "rustupdate_slot=b upgrade_available=0"
m=$(mark)
client_ok check-update
plog "$RECORD" feedback --after "$m" closed:success || fleet_fail "no closed/success feedback after the commit"
# The inventory, when the daemon sends it in this cycle (it may send it only when it changed or
# when the server asks), must say what runs now.
if plog "$RECORD" count --after "$m" --method PUT --path-contains /configData | grep -qv '^0$'; then
    plog "$RECORD" config-data --after "$m" running_version=2.0.0 running_slot=b slot_b_version=2.0.0 ||
        fleet_fail "configData after the commit does not report 2.0.0 running in slot b"
fi
gb_wait --state Finished --progress 100 --sw-version 2.0.0 --never-state Error
# The next cycle must leave the device alone (gooseBit offers the software again only while its
# version differs from the device's sw_version).
m=$(mark)
client_ok check-update
[[ ! -e $MARKER ]] || fleet_fail "a cycle after the success asked for a reboot (reinstall?)"
plog "$RECORD" count --after "$m" --path-contains /deploymentBase | grep -qx 0 ||
    { plog "$RECORD" show --after "$m" >&2; fleet_fail "gooseBit offered (and the daemon fetched) a deployment again after the success"; }
slot_holds a 1
gb_expect --state Finished --sw-version 2.0.0 || fleet_fail "gooseBit's device state changed in the cycle after the success"
pass "(b) install: slot b = image 2 (cmp), grubenv trial of b, reboot; commit; closed/success -> gooseBit Finished, progress 100, sw_version 2.0.0; no reinstall"

# --- (c) failed health check -> rollback -> failure report --------------------------------------

readonly HEALTH_REASON="disk-check: FAILED on purpose by goosebit-daemon-test"
printf '#!/bin/sh\necho "%s" >&2\nexit 1\n' "$HEALTH_REASON" >"$DEV/health.d/10-disk-check"
chmod 755 "$DEV/health.d/10-disk-check"
gb assign "$DEVICE_ID" "${SOFTWARE_ID[3]}"
m=$(mark)
client_ok check-update
slot_holds a 3
env_is "rustupdate_slot=a upgrade_available=1 bootcount=0"
[[ -e $MARKER ]] || fleet_fail "no reboot after installing 3.0.0"
sim_boot
[[ $BOOTED == a ]] || fleet_fail "the trial boot of 3.0.0 booted slot $BOOTED, not a"
client commit # the health check fails: it rolls back (its exit status is not the point here)
env_is "rustupdate_slot=b upgrade_available=0"
[[ -e $MARKER ]] || fleet_fail "no reboot after the rollback"
sim_boot
[[ $BOOTED == b ]] || fleet_fail "after the rollback slot $BOOTED booted, not b"
client commit
rm -f "$DEV/health.d/10-disk-check"
m=$(mark)
client_ok check-update
plog "$RECORD" feedback --after "$m" closed:failure --details-contains 10-disk-check ||
    fleet_fail "no closed/failure feedback naming the failed health check after the rollback"
# The reason names the failed script (its own output stays in the device's journal).
gb_wait --state Error --log-contains "rolled-back: health script 10-disk-check failed"
gb_expect --sw-version 2.0.0 || fleet_fail "gooseBit's sw_version changed although 3.0.0 was rolled back"
slot_holds b 2
pass "(c) failure: health check failed, rolled back to b; closed/failure -> gooseBit Error, reason in its device log"

# --- (d) cancel -------------------------------------------------------------------------------

if grep -rqi cancelAction --include='*.py' "$GOOSEBIT_SITE"; then
    fleet_fail "gooseBit $GOOSEBIT_VERSION knows cancelAction: add a cancel case to this test"
fi
SUMMARY+=("PASS (d) cancel: gooseBit $GOOSEBIT_VERSION has no cancelAction (asserted on its source; the cancel paths run against rustupdate-server in client/tests/device/fleet.rs; re-assigning only changes the deploymentBase offered)")

# --- (e) errors and backoff -------------------------------------------------------------------

write_config "$WORK/unreachable.toml" "http://127.0.0.1:$(fleet_free_port)"
CLIENT_CFG=$WORK/unreachable.toml client check-update
[[ $RC -eq 1 ]] || fleet_fail "check-update with the server unreachable exited $RC, want 1"

start_proxy flaky "$BACKOFF_FAULTS"
readonly FLAKY=$WORK/flaky.jsonl
IFS=, read -r -a faults <<<"$BACKOFF_FAULTS"
readonly FAULT_COUNT=${#faults[@]}
write_config "$WORK/flaky.toml" "$PROXY_URL"
printf '\n$ rustupdate daemon (behind flaky proxy: %s)\n' "$BACKOFF_FAULTS" >>"$WORK/client.log"
daemon_t0=$SECONDS
fleet_spawn_group "$WORK/daemon.log" env RUST_LOG="${RUST_LOG:-info}" "$CLIENT" -c "$WORK/flaky.toml" daemon
DAEMON_PGID=$FLEET_LAST_PGID
fleet_add_log "$WORK/daemon.log"
# Done when the daemon got through and then waited out one poll interval: a poll answered 200
# after the faults, and a later poll (the next cycle).
daemon_progress() {
    kill -0 -- "-$DAEMON_PGID" 2>/dev/null || { log "the daemon exited"; return 2; }
    [[ -s $FLAKY ]] || return 1
    python3 - "$FLAKY" "$FAULT_COUNT" "$DEVICE_ID" <<'PY'
import json, sys
entries = sorted((json.loads(l) for l in open(sys.argv[1]) if l.strip()), key=lambda e: e["n"])
k, poll = int(sys.argv[2]), f"/DEFAULT/controller/v1/{sys.argv[3]}"
polls = [e for e in entries[k:] if e["method"] == "GET" and e["path"] == poll and e["status"] == 200]
sys.exit(0 if len(polls) >= 2 else 1)
PY
}
fleet_wait_for "daemon gets through the faults and polls twice" "$DAEMON_DEADLINE_S" 0.5 daemon_progress
fleet_stop_group "$DAEMON_PGID"
window=$((SECONDS - daemon_t0))
plog "$FLAKY" show >"$WORK/flaky.txt"
cat "$WORK/flaky.txt" >>"$WORK/client.log"
# The cap plus the client's jitter (10 %), with a margin.
gaps=$(plog "$FLAKY" backoff --faults "$FAULT_COUNT" --base "$BACKOFF_BASE_S" --max-interval "$((MAX_BACKOFF_S * 12 / 10))" \
    --min-ratio "$BACKOFF_MIN_RATIO") || { echo "$gaps" >&2; cat "$WORK/flaky.txt" >&2; fleet_fail "retries after 500s and dropped connections do not back off exponentially"; }
# No busy loop: over the window, at most the faulted attempts plus one cycle (poll, configData,
# feedback) per poll interval, with a margin of one cycle.
requests=$(plog "$FLAKY" count)
max_requests=$((FAULT_COUNT + 3 * (window / POLL_SECS + 2)))
((requests <= max_requests)) || { cat "$WORK/flaky.txt" >&2; fleet_fail "$requests requests in ${window}s (max $max_requests): busy loop"; }
python3 - "$FLAKY" "$FAULT_COUNT" "$DEVICE_ID" "$POLL_SECS" <<'PY' || { cat "$WORK/flaky.txt" >&2; fleet_fail "the daemon polled faster than gooseBit's polling.sleep after getting through"; }
import json, sys
entries = sorted((json.loads(l) for l in open(sys.argv[1]) if l.strip()), key=lambda e: e["n"])
k, poll, sleep = int(sys.argv[2]), f"/DEFAULT/controller/v1/{sys.argv[3]}", float(sys.argv[4])
t = [e["t"] for e in entries[k:] if e["method"] == "GET" and e["path"] == poll and e["status"] == 200]
gap = t[1] - t[0]
print(f"poll interval after getting through: {gap:.2f}s (server sleep {sleep:.0f}s)")
sys.exit(0 if gap >= sleep / 2 else 1)
PY
pass "(e) backoff: check-update exits 1 when unreachable; daemon: ${gaps#retry gaps: } between attempts after $BACKOFF_FAULTS, then through; $requests requests in ${window}s"

FLEET_OK=1
log "summary (gooseBit $GOOSEBIT_VERSION, $((SECONDS - STARTED))s):"
printf '  %s\n' "${SUMMARY[@]}" >&2
