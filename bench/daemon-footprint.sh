#!/usr/bin/env bash
# Device footprint benchmark (issue 10): the size of the stripped static client and the idle
# memory and CPU of `rustupdate daemon` polling a real rustupdate-server, on this machine,
# loopback only. docs/daemon-footprint.md explains what is measured and keeps the results table.
#
# Usage: bench/daemon-footprint.sh [--quick] [--no-install] [--no-aarch64]
#   --quick       CI-sized run: x86_64 only, 10 s idle window, 10 s server interval for the
#                 between-polls check, 16 MiB install; debug rustupdate-server (as
#                 ci/server-test.sh builds it). The targets are enforced as in the full run.
#   --no-install  skip the information-only install phase.
#   --no-aarch64  do not build and measure the aarch64 client (full mode builds it when the
#                 rust target and aarch64-linux-gnu-gcc are installed).
# Sizes can be overridden from the environment: DF_IDLE_S (idle window), DF_POLL_S (server poll
# interval of the idle run), DF_GAP_POLL_S (server poll interval of the between-polls run),
# DF_IMAGE_MIB (install image size).
#
# What it does:
#   1. builds the static musl client as ci/e2e/run.sh does (cargo build --release --locked
#      -p rustupdate --target <arch>-unknown-linux-musl; the workspace release profile is the
#      size-aware device profile), strips a copy and checks it against the size target;
#   2. starts two simulated devices (plain files as slots, a GRUB environment block made by
#      grub-editenv, a cmdline file, a reboot script, keys, a [server] section with the gateway
#      token) and, for each, a rustupdate-server and a logging TCP relay in front of it (the relay
#      records when each request arrives: the server logs no polls). Both static release daemons
#      run at the same time with RUST_LOG=info:
#        idle: server interval DF_POLL_S (2 s), DF_IDLE_S (60 s) measured from one second after
#              the first poll; then (unless --no-install) a signed DF_IMAGE_MIB (64 MiB) artifact
#              is uploaded, a one-phase rollout started, and the daemon installs it;
#        gap:  server interval DF_GAP_POLL_S (30 s), until three polls have been seen; the quiet
#              gaps between polls (from 1 s after one poll to 1 s before the next) must show no
#              CPU tick at all;
#   3. samples /proc/PID/{status,stat,task/*/schedstat,io} of each daemon (idle run every 0.2 s,
#      gap run every second: VmRSS, VmHWM, Threads, utime+stime in ticks, run time in ns, context
#      switches, read/write syscalls) and prints a table.
#
# Targets (issue 10): stripped static client < 6 MiB; daemon idle RSS (VmHWM) < 8 MiB; no CPU use
# between polls. Output: the table on stdout, build/daemon-footprint/results.json, and per run
# the samples, relay logs and server and daemon logs under build/daemon-footprint/.
# Installs what it needs (jq, curl, grub-common). Every process it starts is killed by pid on
# exit; every wait has a deadline.
# Exit codes: 0 every target met, 1 a target missed or a step failed, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# DF_IMAGE_MIB/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "bench/daemon-footprint.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

QUICK=0 INSTALL=1 AARCH64=1
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --no-install) INSTALL=0 ;;
    --no-aarch64) AARCH64=0 ;;
    *) usage ;;
    esac
done

# Targets from the issue.
readonly TARGET_SIZE_MIB=6 TARGET_RSS_MIB=8

if ((QUICK)); then
    IDLE_S=${DF_IDLE_S:-10} POLL_S=${DF_POLL_S:-2} GAP_POLL_S=${DF_GAP_POLL_S:-10}
    IMAGE_MIB=${DF_IMAGE_MIB:-16} SERVER_PROFILE=debug AARCH64=0
else
    IDLE_S=${DF_IDLE_S:-60} POLL_S=${DF_POLL_S:-2} GAP_POLL_S=${DF_GAP_POLL_S:-30}
    IMAGE_MIB=${DF_IMAGE_MIB:-64} SERVER_PROFILE=release
fi
readonly IDLE_S POLL_S GAP_POLL_S IMAGE_MIB SERVER_PROFILE
((GAP_POLL_S >= 5)) || die "DF_GAP_POLL_S must be at least 5 (the gap check leaves 1 s either side)"
# Polls seen in the gap run before it ends: two gaps to check.
readonly GAP_POLLS=3
# The idle run is sampled five times a second so that the short install phase is seen too.
readonly SAMPLE_PERIOD_IDLE=0.2 SAMPLE_PERIOD_GAP=1 STARTUP_S=60 INSTALL_MAX_S=300

readonly OUT=$ROOT/build/daemon-footprint
readonly TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
readonly SERVER_BIN=$ROOT/tools/server/target/$SERVER_PROFILE/rustupdate-server
readonly TOOL=$TARGET_DIR/release/rustupdate-artifact
readonly CLIENT=$TARGET_DIR/x86_64-unknown-linux-musl/release/rustupdate
readonly HELPER=$OUT/footprint.py
declare -A SERVER_PORT DAEMON_PID  # by run name

# PIDS (every process this script started), stop_pid, free_port, cleanup.
# shellcheck source=lib/common.sh
source "$ROOT/bench/lib/common.sh"
# device_config: the simulated device's rustupdate.toml.
# shellcheck source=lib/device-config.sh
source "$ROOT/bench/lib/device-config.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

# Marks a moment of a run (same clock as the helper's time.time()).
mark() { echo "$2 $EPOCHREALTIME" >>"$OUT/$1/markers"; }

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds or time is up.
wait_for() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${limit} s waiting for $what"
        sleep 0.2
    done
}

# polls_seen RUN: how many polls (GET of the controller base) the run's relay has seen.
polls_seen() {
    local n
    n=$(grep -cE '^[0-9.]+ GET /[^/]+/controller/v1/[^/ ]+ HTTP' "$OUT/$1/relay.log" 2>/dev/null) || true
    echo "${n:-0}"
}
at_least_polls() { (($(polls_seen "$1") >= $2)); }
server_up() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$1/healthz"; }
alive_or_die() { kill -0 "$1" 2>/dev/null || { tail -n 20 "$3" >&2; die "$2 exited (log: $3)"; }; }

# write_helper: the relay, sampler and report helper, written to $HELPER.
# shellcheck source=lib/footprint-helper.sh
source "$ROOT/bench/lib/footprint-helper.sh"

# --- builds and sizes -------------------------------------------------------------------------

build_all() {
    local release=()
    [[ $SERVER_PROFILE == release ]] && release=(--release)
    log "building the static client (x86_64-unknown-linux-musl) and rustupdate-artifact"
    timeout 3600 cargo build --release --locked -p rustupdate --target x86_64-unknown-linux-musl \
        >"$OUT/build-client.log" 2>&1 ||
        { tail -n 30 "$OUT/build-client.log" >&2; die "client build failed (log: $OUT/build-client.log)"; }
    timeout 3600 cargo build --release --locked -p rustupdate-artifact >"$OUT/build-tool.log" 2>&1 ||
        { tail -n 30 "$OUT/build-tool.log" >&2; die "rustupdate-artifact build failed (log: $OUT/build-tool.log)"; }
    log "building rustupdate-server ($SERVER_PROFILE)"
    timeout 3600 cargo build "${release[@]}" --locked --manifest-path tools/server/Cargo.toml \
        --bin rustupdate-server >"$OUT/build-server.log" 2>&1 ||
        { tail -n 30 "$OUT/build-server.log" >&2; die "server build failed (log: $OUT/build-server.log)"; }
}

SIZES=()  # JSON objects, one per architecture
measure_size() {
    local arch=$1 bin=$2 strip=$3 copy=$OUT/rustupdate-$1.stripped
    cp "$bin" "$copy"
    "$strip" "$copy"
    SIZES+=("$(jq -cn --arg arch "$arch" --argjson bytes "$(stat -c %s "$copy")" \
        --argjson built "$(stat -c %s "$bin")" '{arch: $arch, bytes: $bytes, built_bytes: $built}')")
}

size_aarch64() {
    local triple=aarch64-unknown-linux-musl why=""
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        why="rust target $triple not installed"
    elif ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v aarch64-linux-gnu-strip >/dev/null; then
        why="aarch64-linux-gnu-gcc/-strip not installed"
    fi
    if [[ -z $why ]]; then
        log "building the static client ($triple)"
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-aarch64-linux-gnu-gcc}
        export CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}
        if timeout 3600 cargo build --release --locked -p rustupdate --target "$triple" \
            >"$OUT/build-aarch64.log" 2>&1; then
            measure_size aarch64 "$TARGET_DIR/$triple/release/rustupdate" aarch64-linux-gnu-strip
            return
        fi
        why="build failed (log: $OUT/build-aarch64.log)"
    fi
    echo "aarch64: $why" >&2
    SIZES+=("$(jq -cn --arg note "$why" '{arch: "aarch64", note: $note}')")
}

# --- simulated devices --------------------------------------------------------------------------

# device RUN CONTROLLER_ID DEVICE_TYPE RELAY_PORT SERVER_INTERVAL: the device directory and its
# config, as client/tests/device/rig.rs builds them, with a [server] section on the gateway token.
device() {
    local run=$1 id=$2 type=$3 port=$4 interval=$5 d=$OUT/$1/device
    mkdir -p "$d"/{keys,health.d,data,boot}
    truncate -s $(((IMAGE_MIB + 8) << 20)) "$d/slot-a.img" "$d/slot-b.img"
    cp "$OUT/release.pub.pem" "$d/keys/release.pem"
    grub-editenv "$d/boot/grubenv" create
    grub-editenv "$d/boot/grubenv" set rustupdate_slot=a upgrade_available=0 bootcount=0 bootlimit=3
    printf 'console=ttyS0 rustupdate.slot=a quiet\n' >"$d/cmdline"
    printf '#!/bin/sh\ntouch %s/reboot-requested\n' "$d" >"$d/reboot.sh"
    chmod 755 "$d/reboot.sh"
    install -m 600 "$OUT/$run/server-data/gateway.token" "$d/gateway.token"
    device_config "$d" --device-type "$type" --reboot-command "$d/reboot.sh" \
        --server-url "http://127.0.0.1:$port" --controller-id "$id" \
        --gateway-token-file "$d/gateway.token" --poll-interval "$interval" >"$d/rustupdate.toml"
}

# start_run RUN CONTROLLER_ID DEVICE_TYPE SERVER_INTERVAL SAMPLE_PERIOD: server, relay, device,
# daemon, sampler.
# Sets SERVER_PORT[RUN] and DAEMON_PID[RUN].
start_run() {
    local run=$1 id=$2 type=$3 interval=$4 period=$5 dir=$OUT/$1 port relay pid
    rm -rf "$dir"
    mkdir -p "$dir/server-data/keys"
    cp "$OUT/release.pub.pem" "$dir/server-data/keys/release.pub.pem"
    port=$(free_port)
    # The relay first: the device reaches the server through it, so the server's links must point
    # at it (--allowed-host), as they would at a proxy in front of a real server. It connects
    # upstream per connection, once the server is up.
    python3 "$HELPER" relay "$dir/relay.port" "$port" "$dir/relay.log" 2>"$dir/relay.err" &
    PIDS+=("$!")
    wait_for 10 "relay ($run)" test -s "$dir/relay.port"
    relay=$(cat "$dir/relay.port")
    RUST_LOG=info "$SERVER_BIN" --data-dir "$dir/server-data" --listen "127.0.0.1:$port" \
        --allowed-host "127.0.0.1:$relay" --poll-interval "$interval" >"$dir/server.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_for "$STARTUP_S" "rustupdate-server ($run)" server_up "$port"
    alive_or_die "$pid" "rustupdate-server ($run)" "$dir/server.log"
    device "$run" "$id" "$type" "$relay" "$interval"
    mark "$run" daemon_start
    RUST_LOG=info "$CLIENT" -c "$dir/device/rustupdate.toml" daemon >"$dir/daemon.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    python3 "$HELPER" sample "$pid" "$dir/samples.tsv" "$period" &
    PIDS+=("$!")
    SERVER_PORT[$run]=$port
    DAEMON_PID[$run]=$pid
}

installed() {
    [[ -e $1/reboot-requested ]] && return 0
    alive_or_die "${DAEMON_PID[idle]}" "the idle daemon" "$OUT/idle/daemon.log"
    return 1
}

admin() {
    local run=$1 method=$2 path=$3
    shift 3
    curl -sf -m 120 -X "$method" -H "Authorization: Bearer $(cat "$OUT/$run/server-data/admin.token")" \
        "$@" "http://127.0.0.1:${SERVER_PORT[$run]}$path"
}

# The install phase of the idle run: a signed artifact, a rollout, the daemon installs it.
install_phase() {
    local image=$OUT/image-$IMAGE_MIB.bin artifact=$OUT/image-$IMAGE_MIB.rua id d=$OUT/idle/device
    if [[ $(stat -c %s "$image" 2>/dev/null || echo 0) != $((IMAGE_MIB << 20)) ]]; then
        head -c $((IMAGE_MIB << 20)) /dev/urandom >"$image"
    fi
    timeout 600 "$TOOL" build --image "$image" --name footprint --version 2.0 \
        --device-type footprint-board --key "$OUT/release.key.pem" -o "$artifact" >/dev/null ||
        die "rustupdate-artifact build failed"
    id=$(admin idle POST /api/v1/artifacts -H 'Content-Type: application/octet-stream' \
        --data-binary "@$artifact" | jq -r .id) || die "artifact upload failed"
    log "idle run: artifact $id uploaded ($(stat -c %s "$artifact") bytes); starting the rollout"
    mark idle install_start
    admin idle POST /api/v1/rollouts -H 'Content-Type: application/json' --data \
        "$(jq -n --argjson id "$id" '{name: "footprint", artifact_id: $id, device_type: "footprint-board",
            phases: "100", success_threshold: 100, error_threshold: "1", start: true}')" \
        >"$OUT/idle/rollout.json" || die "rollout create failed"
    wait_for "$INSTALL_MAX_S" "the install (reboot request)" installed "$d"
    mark idle install_end
    sleep 1
    cmp -n $((IMAGE_MIB << 20)) "$image" "$d/slot-b.img" || die "slot b does not hold the image after the install"
}

# --- main -------------------------------------------------------------------------------------

T0=$SECONDS
command -v jq >/dev/null || ci/apt-install.sh jq
command -v curl >/dev/null || ci/apt-install.sh curl
command -v grub-editenv >/dev/null || ci/apt-install.sh grub-common
mkdir -p "$OUT"
write_helper

build_all
measure_size x86_64 "$CLIENT" strip
if ((AARCH64)); then size_aarch64; fi
BUILD_S=$((SECONDS - T0))

rm -f "$OUT"/release.{key,pub}.pem
"$TOOL" keygen -o "$OUT/release" >/dev/null

log "starting the idle run (server interval ${POLL_S} s) and the gap run (${GAP_POLL_S} s)"
start_run idle footprint-idle footprint-board "$POLL_S" "$SAMPLE_PERIOD_IDLE"
start_run gap footprint-gap footprint-gap "$GAP_POLL_S" "$SAMPLE_PERIOD_GAP"
wait_for "$STARTUP_S" "the first poll (idle run)" at_least_polls idle 1
wait_for "$STARTUP_S" "the first poll (gap run)" at_least_polls gap 1

log "idle run: measuring ${IDLE_S} s"
sleep $((IDLE_S + 2))
alive_or_die "${DAEMON_PID[idle]}" "the idle daemon" "$OUT/idle/daemon.log"
mark idle idle_end
if ((INSTALL)); then install_phase; fi

log "gap run: waiting for poll $GAP_POLLS"
wait_for $((GAP_POLLS * GAP_POLL_S * 12 / 10 + 30)) "poll $GAP_POLLS (gap run)" at_least_polls gap "$GAP_POLLS"
sleep 1
alive_or_die "${DAEMON_PID[gap]}" "the gap daemon" "$OUT/gap/daemon.log"
cleanup
PIDS=()

swupdate=null
if [[ -x /usr/bin/swupdate ]]; then
    swupdate=$(jq -n --argjson bytes "$(stat -c %s /usr/bin/swupdate)" \
        --arg version "$(dpkg-query -W -f='${Version}' swupdate 2>/dev/null || echo unknown)" \
        --argjson libs "$(ldd /usr/bin/swupdate | grep -c '=> /')" \
        '{bytes: $bytes, version: $version, shared_libraries: $libs}')
fi
args=$(jq -n --argjson sizes "[$(IFS=,; echo "${SIZES[*]}")]" --argjson poll "$POLL_S" \
    --argjson gap "$GAP_POLL_S" --argjson image "$IMAGE_MIB" --argjson size "$TARGET_SIZE_MIB" \
    --argjson rss "$TARGET_RSS_MIB" --argjson swupdate "$swupdate" \
    --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --argjson quick "$QUICK" --argjson cores "$(nproc)" --arg kernel "$(uname -r)" \
    --argjson build "$BUILD_S" --argjson total "$((SECONDS - T0))" \
    '{sizes: $sizes, poll_s: $poll, gap_poll_s: $gap, image_mib: $image, target_size_mib: $size,
      target_rss_mib: $rss,
      meta: {revision: $rev, quick: ($quick == 1), cores: $cores, kernel: $kernel,
             build_s: $build, run_s: $total, swupdate: $swupdate}}')
echo
python3 "$HELPER" report "$OUT" "$args"
