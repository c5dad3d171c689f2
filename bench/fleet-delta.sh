#!/usr/bin/env bash
# Deltas through the fleet (issue 21): what a rollout of the bench pair's v2 costs on the wire
# when rustupdate-server builds the patch by itself, against what it would cost if every device
# took the patch it can use, and against a rollout of the full artifact only.
#
# The bench pair of bench/rootfs-images.sh (512 MiB ext4, a real Debian security update) as
# format version 2 artifacts; a release rustupdate-server (SQLite, loopback) that holds v1.rua;
# FD_DEVICES simulated devices (default 10,000) that report, as rustupdate's daemon does,
# `accepts_delta = known-base` and the image they run: 90 % v1, 9 % an older release the server
# holds no artifact of, 1 % v1 on a modified slot (they take the patch, find it does not rebuild
# their slot, say why and take the full artifact). bench/lib/fleet_delta.py then:
#   1. uploads v2.rua: the server queues the v1 -> v2 patch and builds it; meanwhile polls of
#      the devices at FD_POLL_RATE per second are timed (the server's p99 while it builds);
#   2. times `rustupdate-artifact delta --base v1.rua --target v2.rua` (the host tool, the same
#      zstd level) for the same patch;
#   3. rolls v2 out to every device (one phase) and runs every deployment: deploymentBase, the
#      head of the .rua (one Range request) and the patch, or the .rua, or both after a
#      fallback, each read whole; feedback closed/success;
#   4. reads the rollout's download totals from the server.
#
# Usage: bench/fleet-delta.sh [--enforce]
#   --enforce  exit 1 unless: bytes served <= 1.15x (devices on v1 x (patch + head) + the rest x
#              the artifact); the server's patch build <= 1.5x the host tool's time; poll p99
#              < 50 ms while it builds; every device's action succeeded
# Environment: FD_DEVICES (10000), FD_THREADS (8 device threads), FD_POLL_RATE (100),
#   ROOTFS_OUT (where bench/rootfs-images.sh keeps the pair), FD_IMAGES=DIR (use DIR's
#   rootfs-v1.ext4 and rootfs-v2.ext4 instead of the pair, e.g. the e2e images for a quick try).
# Output: a table on stdout and build/fleet-delta/results.json; docs/bandwidth.md keeps figures.
# Exit codes: 0 done (with --enforce: every goal met), 1 failure or a missed goal, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# Output:/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "bench/fleet-delta.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

ENFORCE=()
for arg in "$@"; do
    case $arg in
    --enforce) ENFORCE=(--enforce) ;;
    *) usage ;;
    esac
done
readonly OUT=$ROOT/build/fleet-delta
readonly SERVER_BIN=$ROOT/tools/server/target/release/rustupdate-server
readonly TOOL_BIN=$ROOT/target/release/rustupdate-artifact
PAIR=${FD_IMAGES:-${ROOTFS_OUT:-$ROOT/build/bench}}
rm -rf "$OUT"
mkdir -p "$OUT"

# shellcheck source=lib/common.sh
source "$ROOT/bench/lib/common.sh"
cleanup_extra() { :; }
trap cleanup EXIT

if ! command -v curl >/dev/null; then ci/apt-install.sh curl >&2; fi
log "building rustupdate-server and rustupdate-artifact (release)"
cargo build --release --locked -q --manifest-path tools/server/Cargo.toml --bin rustupdate-server
cargo build --release --locked -q --bin rustupdate-artifact
if [[ -z ${FD_IMAGES:-} ]]; then ROOTFS_OUT=$PAIR bench/rootfs-images.sh >&2; fi
[[ -f $PAIR/rootfs-v1.ext4 && -f $PAIR/rootfs-v2.ext4 ]] || die "no bench pair in $PAIR"

log "artifacts of the bench pair (format version 2, zstd -19)"
"$TOOL_BIN" keygen -o "$OUT/release" >/dev/null
for v in 1 2; do
    "$TOOL_BIN" build --image "$PAIR/rootfs-v$v.ext4" --name bench-rootfs --version "$v.0" \
        --device-type bench-board --key "$OUT/release.key.pem" --level 19 -o "$OUT/v$v.rua" >/dev/null
done

port=$(free_port)
mkdir -p "$OUT/server/keys"
cp "$OUT/release.pub.pem" "$OUT/server/keys/"
"$SERVER_BIN" --data-dir "$OUT/server" --listen "127.0.0.1:$port" --poll-interval 60 \
    >"$OUT/server.log" 2>&1 &
PIDS+=("$!")
for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    ((i < 299)) || die "rustupdate-server did not answer within 30 s (log: $OUT/server.log)"
    sleep 0.1
done

python3 bench/lib/fleet_delta.py --url "http://127.0.0.1:$port" --data-dir "$OUT/server" \
    --base "$OUT/v1.rua" --target "$OUT/v2.rua" --base-image "$PAIR/rootfs-v1.ext4" \
    --tool "$TOOL_BIN" --devices "${FD_DEVICES:-10000}" --threads "${FD_THREADS:-8}" \
    --poll-rate "${FD_POLL_RATE:-100}" --out "$OUT/results.json" "${ENFORCE[@]}"
