#!/usr/bin/env bash
# Benchmark: install a 512 MiB ext4 rootfs image from a local .rua into a slot (a loop device, or
# a file when loop devices are unavailable), side by side with `dd` of the uncompressed image and
# `zstd -d | dd` into the same target, and as a known-base delta (`install --delta`, the patch made
# from BASE) with BASE in slot a, a loop device of its own.
# Prints wall time and CPU time (user, sys; medians of RUNS) and peak RSS (the maximum of RUNS: the
# install's memory goal is a budget) of each, the ratios, how many
# MiB each wrote to the target and how many the client found already in place (it reads before it
# writes and skips the 4 KiB blocks the target holds; figures from its log line), and the stripped
# size of the release client binary.
#   bench/install-bench.sh            (RUNS=5 by default; IMAGE=... another image, BASE=... what
#                                      the target holds before each run, default rootfs-v1.ext4;
#                                      CLIENT=PATH another client binary, e.g. the static musl
#                                      build a device runs, or the previous revision's)
#   THROTTLE=1 bench/install-bench.sh [--enforce]
#
# Peers (WITH_PEERS=0 leaves them out; they need loop devices): SWUpdate, Mender and RAUC each
# install the same image into the same target holding BASE, made and run as
# bench/lib/install-peers.sh says (Debian's packages, installed when missing; each with its
# signature checked), in both cases, the target compared with the image after each; their MiB
# written are what the device counted. Their rows are measured, never enforced.
#
# THROTTLE=1 adds the slow-flash case of issue 22 (off by default: it adds about 90 s per run,
# dd alone writes 512 MiB at 20 MB/s): the same four rows again, each into the loop device while
# it is throttled to an SD card's bandwidth (THROTTLE_WRITE_BPS, default 20000000 B/s, and
# THROTTLE_READ_BPS, default 80000000 B/s), with the MiB each read from, wrote to and zeroed on the
# device (its /sys/block/loopN/stat; write-zeroes count as written there, the client's zeroed MiB
# come from its log), and the goal's bound: (the bytes of the 4 KiB blocks in which BASE and IMAGE
# differ) / write bandwidth + (the image size) / read bandwidth, and the overlapped bound, the larger
# of the two transfers (the throttle gives reads and writes a budget each, so a client whose writes
# drain while it reads can get there). --enforce (implies THROTTLE=1) exits 2 when the client's
# median wall time exceeds GOAL_THROTTLED_RATIO (default 1.1) times either.
# The delta rows also report the MiB read of slot a (its loop device's stat) against the MiB the
# patch copies (the client's log), and their wall time against the full install's: on slow flash
# --enforce also exits 2 when that exceeds GOAL_THROTTLED_DELTA_RATIO (default 1.01); unthrottled
# it is printed only (see docs/bandwidth.md).
#
# The throttle is cgroup v1 blkio (blkio.throttle.{read,write}_bps_device) on the ROOT blkio cgroup,
# for the MAJ:MIN of the two loop devices this script created and no other (each its own budget):
# cgroup v2's io.max is the issue's wording, but this machine's cgroup2 hierarchy has no io
# controller, and in v1 the kernel's
# flusher threads write back dirty pages from the root cgroup, so a child cgroup's limit would miss
# buffered writes (measured: docs/bandwidth.md, "Install on slow flash"). The limits are set only
# while a measured command runs (putting BASE back is not throttled) and removed on exit, failure
# and interruption included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# device_config: the simulated device's rustupdate.toml.
# shellcheck source=lib/device-config.sh
source "$ROOT/bench/lib/device-config.sh"
# shellcheck source=lib/install-peers.sh
source "$ROOT/bench/lib/install-peers.sh"
RUNS=${RUNS:-5}
THROTTLE=${THROTTLE:-0}
THROTTLE_WRITE_BPS=${THROTTLE_WRITE_BPS:-20000000}
THROTTLE_READ_BPS=${THROTTLE_READ_BPS:-80000000}
GOAL_THROTTLED_RATIO=${GOAL_THROTTLED_RATIO:-1.1}
# The delta's wall time against the full install's on slow flash: no more, within the throttle's
# own precision (runs of either differ by up to 0.4 %).
GOAL_THROTTLED_DELTA_RATIO=${GOAL_THROTTLED_DELTA_RATIO:-1.01}
BLKIO=/sys/fs/cgroup/blkio   # the root of the cgroup v1 blkio hierarchy
ENFORCE=0
for arg in "$@"; do
    case $arg in
        --enforce) ENFORCE=1; THROTTLE=1 ;;
        *) echo "usage: [THROTTLE=1] $0 [--enforce]" >&2; exit 64 ;;
    esac
done
OUT=build/bench/install
mkdir -p "$OUT"
if [[ $THROTTLE == 1 && ! -w $BLKIO/blkio.throttle.write_bps_device ]]; then
    echo "THROTTLE=1 needs the cgroup v1 blkio hierarchy at $BLKIO (root)" >&2; exit 1
fi

if ! command -v zstd >/dev/null || ! [[ -x /usr/bin/time ]]; then
    apt-get update -qq && apt-get install -y -qq zstd time >/dev/null
fi
bench/rootfs-images.sh >/dev/null
IMAGE=${IMAGE:-$ROOT/build/bench/rootfs-v2.ext4}
BASE=${BASE:-$ROOT/build/bench/rootfs-v1.ext4}
SIZE=$(stat -c %s "$IMAGE")

echo "building release binaries"
cargo build --release --locked -p rustupdate -p rustupdate-artifact 2>&1 | tail -1
CLIENT=${CLIENT:-$ROOT/target/release/rustupdate}
TOOL=$ROOT/target/release/rustupdate-artifact

# Artifact (default settings) and the reference compressed stream.
# The signing key is kept across runs (a scratch device set up from $OUT keeps verifying); a
# half-made pair is made anew.
if [[ ! -f $OUT/bench.key.pem || ! -f $OUT/bench.pub.pem ]]; then
    rm -f "$OUT"/bench.key.pem "$OUT"/bench.pub.pem
    "$TOOL" keygen -o "$OUT/bench" >/dev/null
fi
"$TOOL" build --image "$IMAGE" --name bench --version 2 --device-type bench --key "$OUT/bench.key.pem" -o "$OUT/image.rua" >/dev/null
zstd -q -f -3 -T0 "$IMAGE" -o "$OUT/image.zst"
# The known-base delta from BASE to the artifact (the tool's default level, as the artifact).
"$TOOL" delta --base "$BASE" --target "$OUT/image.rua" --key "$OUT/bench.pub.pem" -o "$OUT/image.rudelta" >/dev/null

# The slots: two loop devices over files (slot b the target, slot a the booted slot and the
# delta's base), or the files themselves when loop devices are unavailable. One medium with both
# slots as partitions would model a device's SD card more closely (one throttle budget for both),
# but this machine's kernel reads no partition table on a loop device (nor has device-mapper).
truncate -s "$SIZE" "$OUT/slot-b.img"
truncate -s "$SIZE" "$OUT/slot-a.img"
LOOP=""
LOOP_A=""
DEVNOS=()   # MAJ:MIN of LOOP and LOOP_A while a throttle may be set on them
# Removes the throttle (only ever set on DEVNOS, the loop devices created below), then the devices.
cleanup() {
    if ((${#DEVNOS[@]})); then throttle_off; fi
    if [[ -n $LOOP ]]; then losetup -d "$LOOP"; fi
    if [[ -n $LOOP_A ]]; then losetup -d "$LOOP_A"; fi
    peers_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # through the EXIT trap
dd if="$BASE" of="$OUT/slot-a.img" bs=1M conv=fsync status=none   # the booted slot: the delta's base
if LOOP=$(losetup --find --show "$OUT/slot-b.img" 2>/dev/null); then
    TARGET=$LOOP
    LOOP_A=$(losetup --find --show "$OUT/slot-a.img")
    SLOT_A=$LOOP_A
    A_STAT=/sys/block/$(basename "$LOOP_A")/stat
    STAT=/sys/block/$(basename "$LOOP")/stat
else
    LOOP=""
    TARGET=$OUT/slot-b.img
    SLOT_A=$OUT/slot-a.img
    A_STAT=""
fi
echo "target: $TARGET; slot a (booted, the delta's base): $SLOT_A"
if [[ ${WITH_PEERS:-1} == 1 ]]; then
    [[ -n $LOOP ]] || { echo "the peers need loop devices (WITH_PEERS=0 leaves them out)" >&2; exit 1; }
    peers_prepare "$OUT/peers" "$IMAGE" "$OUT/image.zst" "$TARGET" "$SLOT_A"
fi
if [[ $THROTTLE == 1 ]]; then
    [[ -n $LOOP ]] || { echo "THROTTLE=1 needs a loop device (losetup failed)" >&2; exit 1; }
    DEVNOS=("$(lsblk -dno MAJ:MIN "$LOOP" | tr -d ' ')" "$(lsblk -dno MAJ:MIN "$LOOP_A" | tr -d ' ')")
fi

# Limits in the root blkio cgroup, for DEVNOS only ("MAJ:MIN 0" removes a rule).
throttle_on() {
    local devno
    for devno in "${DEVNOS[@]}"; do
        echo "$devno $THROTTLE_WRITE_BPS" > "$BLKIO/blkio.throttle.write_bps_device"
        echo "$devno $THROTTLE_READ_BPS" > "$BLKIO/blkio.throttle.read_bps_device"
    done
}
throttle_off() {
    local devno
    for devno in "${DEVNOS[@]}"; do
        echo "$devno 0" > "$BLKIO/blkio.throttle.write_bps_device"
        echo "$devno 0" > "$BLKIO/blkio.throttle.read_bps_device"
    done
}

mkdir -p "$OUT/keys" "$OUT/data" "$OUT/boot"
cp "$OUT/bench.pub.pem" "$OUT/keys/"
printf 'rustupdate.slot=a\n' > "$OUT/cmdline"
grub-editenv "$OUT/boot/grubenv" create 2>/dev/null || { apt-get install -y -qq grub-common >/dev/null; grub-editenv "$OUT/boot/grubenv" create; }
device_config "$OUT" --device-type bench --slot-a "$SLOT_A" --slot-b "$TARGET" >"$OUT/rustupdate.toml"

reset_device() {
    grub-editenv "$OUT/boot/grubenv" set rustupdate_slot=a upgrade_available=0 bootcount=0 bootlimit=3
    rm -f "$OUT/data/state.json"
}

# measure NAME COMMAND...: appends "wall cpu rss_kb user sys" to $OUT/NAME.times
measure() {
    local name=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.one" "$@" >/dev/null 2>"$OUT/$name.err" || { cat "$OUT/$name.err"; exit 1; }
    tail -n 1 "$OUT/$name.one" | awk '{printf "%s %.2f %s %s %s\n", $1, $2+$3, $4, $2, $3}' >> "$OUT/$name.times"
}

# Before each measured run the target holds the previous release (BASE, default rootfs-v1.ext4),
# as an inactive slot does, with none of it in the page cache.
prepare_target() {
    local peer
    dd if="$BASE" of="$TARGET" bs=1M conv=fsync status=none
    sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
    cat "$OUT/image.rua" "$OUT/image.rudelta" "$OUT/image.zst" "$IMAGE" > /dev/null   # every input warm in the page cache
    for peer in "${PEERS[@]}"; do find -L "$OUT/peers/$peer" -type f -exec cat {} + > /dev/null; done
}

# Sectors read of slot a so far ("-" where it is a file, not a partition of the loop device).
a_sectors() { if [[ -n $A_STAT ]]; then awk '{print $3}' "$A_STAT"; else echo -; fi; }

# measure_delta MEASURE NAME: one known-base delta install measured by MEASURE (measure or
# measure_throttled) from a fresh target; appends the MiB it read of slot a to $OUT/NAME.base.
measure_delta() {
    local how=$1 name=$2 before after
    prepare_target
    reset_device
    before=$(a_sectors)
    "$how" "$name" env RUST_LOG=info "$CLIENT" -c "$OUT/rustupdate.toml" install --delta "$OUT/image.rudelta" "$OUT/image.rua"
    after=$(a_sectors)
    if [[ $before == - ]]; then
        echo - >> "$OUT/$name.base"
    else
        echo "$before $after" | awk '{printf "%.1f\n", ($2 - $1) / 2048}' >> "$OUT/$name.base"
    fi
    cmp -n "$SIZE" "$IMAGE" "$TARGET" || { echo "target differs from the image after the delta install ($name)"; exit 1; }
}

# measure_peers MEASURE PREFIX: each peer's install measured by MEASURE (measure_device or
# measure_throttled) as PREFIX-NAME from a fresh target, checked against the image.
measure_peers() {
    local how=$1 prefix=$2 peer
    for peer in "${PEERS[@]}"; do
        prepare_target
        sh "$OUT/peers/$peer/reset.sh"
        "$how" "$prefix-$peer" sh "$OUT/peers/$peer/install.sh"
        cmp -n "$SIZE" "$IMAGE" "$TARGET" || { echo "target differs from the image after $peer's install ($prefix)"; exit 1; }
    done
}

# measure_throttled NAME COMMAND...: measure with the throttle on; appends "MiB read, written,
# discarded" of the device (sectors of its stat file: fields 3, 7 and 14) to $OUT/NAME.io.
measure_throttled() {
    throttle_on
    measure_device "$@"
    throttle_off
}
# measure_device NAME COMMAND...: measure, and append the device's MiB as measure_throttled does.
measure_device() {
    local name=$1 before after
    before=$(cat "$STAT")
    measure "$@"
    after=$(cat "$STAT")
    echo "$before $after" | awk '{n = NF / 2; printf "%.1f %.1f %.1f\n", ($(n+3)-$3)/2048, ($(n+7)-$7)/2048, ($(n+14)-$14)/2048}' >> "$OUT/$name.io"
}

rm -f "$OUT"/*.times "$OUT"/*.io "$OUT"/*.base
for _ in $(seq "$RUNS"); do
    prepare_target
    # The storage's limit: the uncompressed image copied as is (issue 22's anchor).
    measure rawdd dd if="$IMAGE" of="$TARGET" bs=1M conv=fsync status=none
    prepare_target
    measure pipeline sh -c "zstd -d -c '$OUT/image.zst' | dd of='$TARGET' bs=1M conv=fsync status=none"
    prepare_target
    reset_device
    # RUST_LOG=info whatever the caller's environment says: the write summary is an info line.
    measure client env RUST_LOG=info "$CLIENT" -c "$OUT/rustupdate.toml" install "$OUT/image.rua"
    # The client really wrote the image: compare the target with the source.
    cmp -n "$SIZE" "$IMAGE" "$TARGET" || { echo "target differs from the image after install"; exit 1; }
    measure_delta measure delta
    measure_peers measure_device peer
    [[ $THROTTLE == 1 ]] || continue
    # The same three on slow flash, each starting from BASE again (put back unthrottled).
    prepare_target
    measure_throttled trawdd dd if="$IMAGE" of="$TARGET" bs=1M conv=fsync status=none
    prepare_target
    measure_throttled tpipeline sh -c "zstd -d -c '$OUT/image.zst' | dd of='$TARGET' bs=1M conv=fsync status=none"
    prepare_target
    reset_device
    measure_throttled tclient env RUST_LOG=info "$CLIENT" -c "$OUT/rustupdate.toml" install "$OUT/image.rua"
    cmp -n "$SIZE" "$IMAGE" "$TARGET" || { echo "target differs from the image after the throttled install"; exit 1; }
    measure_delta measure_throttled tdelta
    measure_peers measure_throttled tpeer
done
# write_summary NAME: "written data zeroed in-place" (MiB) from the last client run NAME's log line
# "slot …: W MiB written (D MiB of data, Z MiB zeroed), P MiB already in place" (every run starts
# from the same BASE, so every run logs the same figures).
write_summary() {
    local line
    line=$(sed -nE 's/.*: ([0-9.]+) MiB written \(([0-9.]+) MiB of data, ([0-9.]+) MiB zeroed\), ([0-9.]+) MiB already in place.*/\1 \2 \3 \4/p' "$OUT/$1.err" | tail -n 1)
    [[ -n $line ]] || { echo "no write summary in the client's log:" >&2; cat "$OUT/$1.err" >&2; exit 1; }
    echo "$line"
}
# copied_mib NAME: the MiB the patch copies from slot a (the delta's log line).
copied_mib() {
    local mib
    mib=$(sed -nE 's/.*the patch copies ([0-9.]+) MiB.*/\1/p' "$OUT/$1.err" | tail -n 1)
    [[ -n $mib ]] || { echo "no base use in the delta's log:" >&2; cat "$OUT/$1.err" >&2; exit 1; }
    echo "$mib"
}
read -r W_TOTAL W_DATA W_ZEROED W_IN_PLACE <<< "$(write_summary client)"
read -r DW_TOTAL _ _ DW_IN_PLACE <<< "$(write_summary delta)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$OUT/$1.times" | median; }
maxcol() { awk -v c="$2" '$c > m {m = $c} END {print m}' "$OUT/$1.times"; }
ioc() { awk -v c="$2" '{print $c}' "$OUT/$1.io" | median; }
dw=$(col rawdd 1); dc=$(col rawdd 2); dr=$(maxcol rawdd 3); du=$(col rawdd 4); ds=$(col rawdd 5)
pw=$(col pipeline 1); pc=$(col pipeline 2); pr=$(maxcol pipeline 3); pu=$(col pipeline 4); ps=$(col pipeline 5)
cw=$(col client 1); cc=$(col client 2); cr=$(maxcol client 3); cu=$(col client 4); cs=$(col client 5)
xw=$(col delta 1); xc=$(col delta 2); xr=$(maxcol delta 3); xu=$(col delta 4); xs=$(col delta 5)
# base_line NAME WALL FULL_WALL: what the delta read of slot a against its copies, its wall time
# against the full install's.
base_line() {
    local copies read_mib
    copies=$(copied_mib "$1")
    read_mib=$(awk '$1 != "-" && $1 > m {m = $1} END {print (NR && m != "" ? m : "-")}' "$OUT/$1.base")
    if [[ $read_mib == - ]]; then
        printf 'delta (known base): slot a is a file, its reads are not counted; copies %s MiB' "$copies"
    else
        printf 'delta (known base): read %s MiB of slot a (the most of the runs) for %s MiB of copies = %.2fx' \
            "$read_mib" "$copies" "$(echo "$read_mib/$copies" | bc -l)"
    fi
    printf '; wall %s s against the full install'"'"'s %s s = %.2fx\n' "$2" "$3" "$(echo "$2/$3" | bc -l)"
}
rss_runs=$(awk '{printf "%s%.1f", (NR > 1 ? ", " : ""), $3 / 1024}' "$OUT/client.times")

cp "$CLIENT" "$OUT/rustupdate.stripped"; strip "$OUT/rustupdate.stripped"
BIN=$(stat -c %s "$OUT/rustupdate.stripped")
{
echo "## Install benchmark ($(date -u +%F), $(nproc) cores, $RUNS runs: wall and CPU medians, peak RSS the maximum; image $(basename "$IMAGE") $((SIZE >> 20)) MiB, target $TARGET)"
echo
echo "| | wall s | CPU s (user + sys) | peak RSS MiB | MiB written | MiB already in place |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
printf '| dd of the uncompressed image (conv=fsync) | %s | %s (%s + %s) | %.1f | %s | 0 |\n' "$dw" "$dc" "$du" "$ds" "$(echo "$dr/1024" | bc -l)" "$((SIZE >> 20))"
printf '| zstd -d \\| dd (conv=fsync) | %s | %s (%s + %s) | %.1f | %s | 0 |\n' "$pw" "$pc" "$pu" "$ps" "$(echo "$pr/1024" | bc -l)" "$((SIZE >> 20))"
printf '| rustupdate install | %s | %s (%s + %s) | %.1f | %s | %s |\n' "$cw" "$cc" "$cu" "$cs" "$(echo "$cr/1024" | bc -l)" "$W_TOTAL" "$W_IN_PLACE"
printf '| rustupdate install --delta (known base) | %s | %s (%s + %s) | %.1f | %s | %s |\n' "$xw" "$xc" "$xu" "$xs" "$(echo "$xr/1024" | bc -l)" "$DW_TOTAL" "$DW_IN_PLACE"
for peer in "${PEERS[@]}"; do
    printf '| %s (bench/lib/install-peers.sh; MiB the device wrote) | %s | %s (%s + %s) | %.1f | %s | |\n' "$peer" "$(col "peer-$peer" 1)" "$(col "peer-$peer" 2)" \
        "$(col "peer-$peer" 4)" "$(col "peer-$peer" 5)" "$(echo "$(maxcol "peer-$peer" 3)/1024" | bc -l)" "$(ioc "peer-$peer" 2)"
done
printf '| ratio client / raw dd | %.2f | %.2f | | | |\n' "$(echo "$cw/$dw" | bc -l)" "$(echo "$cc/$dc" | bc -l)"
printf '| ratio client / pipeline | %.2f | %.2f | %.2f | %.2f | |\n' "$(echo "$cw/$pw" | bc -l)" "$(echo "$cc/$pc" | bc -l)" "$(echo "$cr/$pr" | bc -l)" "$(echo "$W_TOTAL/($SIZE/1048576)" | bc -l)"
echo
echo "rustupdate install peak RSS per run: $rss_runs MiB"
base_line delta "$xw" "$cw"
echo "artifact: $(stat -c %s "$OUT/image.rua") bytes; zstd -3 stream: $(stat -c %s "$OUT/image.zst") bytes"
echo "blocks written when the target slot already holds $(basename "$BASE"): $W_TOTAL MiB ($W_DATA MiB of data, $W_ZEROED MiB zeroed), $W_IN_PLACE MiB already in place (dd writes all $((SIZE >> 20)) MiB)"
printf 'stripped client binary (%s): %s bytes (%.2f MiB)\n' "$(uname -m)" "$BIN" "$(echo "$BIN/1048576" | bc -l)"
} | tee "$OUT/result.md"

[[ $THROTTLE == 1 ]] || exit 0

# The goal's bound. DIFF: the bytes of the 4 KiB blocks of IMAGE that differ from BASE at the same
# offset (what a writer that knew both would have to write), of which DIFF_ZERO are zero in IMAGE.
read -r DIFF DIFF_ZERO < <(python3 - "$BASE" "$IMAGE" "$SIZE" <<'PY'
import sys
base, image, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
B = 4096
zero = bytes(B)
diff = diff_zero = 0
with open(base, "rb") as a, open(image, "rb") as b:
    done = 0
    while done < size:
        x, y = a.read(1 << 20), b.read(1 << 20)
        if x != y:
            for i in range(0, len(y), B):
                if x[i:i + B] != y[i:i + B]:
                    diff += len(y[i:i + B])
                    diff_zero += len(y[i:i + B]) if y[i:i + B] == zero[:len(y[i:i + B])] else 0
        done += len(y)
        if not y:
            break
print(diff, diff_zero)
PY
)
WRITE_S=$(echo "$DIFF/$THROTTLE_WRITE_BPS" | bc -l)   # writing the blocks that differ
READ_S=$(echo "$SIZE/$THROTTLE_READ_BPS" | bc -l)     # reading the image range once
BOUND=$(echo "$WRITE_S + $READ_S" | bc -l)
# The throttle gives reads and writes a budget each, so a writer whose writes go out while it
# reads can come down to the larger of the two transfers (one bus, as on a card, cannot).
OVERLAP=$(echo "if ($WRITE_S > $READ_S) $WRITE_S else $READ_S" | bc -l)
read -r T_TOTAL T_DATA T_ZEROED T_IN_PLACE <<< "$(write_summary tclient)"
read -r _ _ TD_ZEROED _ <<< "$(write_summary tdelta)"
trow() {   # trow NAME LABEL ZEROED
    printf '| %s | %s | %s (%s + %s) | %s | %s | %s | %s | %.2f | %.2f |\n' "$2" "$(col "$1" 1)" "$(col "$1" 2)" "$(col "$1" 4)" "$(col "$1" 5)" \
        "$(ioc "$1" 1)" "$(ioc "$1" 2)" "$3" "$(ioc "$1" 3)" "$(echo "$(col "$1" 1)/$BOUND" | bc -l)" "$(echo "$(col "$1" 1)/$OVERLAP" | bc -l)"
}
tcw=$(col tclient 1)
RATIO=$(echo "$tcw/$BOUND" | bc -l)
OVERLAP_RATIO=$(echo "$tcw/$OVERLAP" | bc -l)
{
echo
echo "## Slow flash: the loop device throttled to $((THROTTLE_WRITE_BPS / 1000000)) MB/s write, $((THROTTLE_READ_BPS / 1000000)) MB/s read (cgroup v1 blkio, root cgroup, ${DEVNOS[*]} only, each its own budget; $RUNS runs, medians)"
echo
echo "| | wall s | CPU s (user + sys) | MiB read (device) | MiB written (device, write-zeroes included) | MiB zeroed | MiB discarded (device) | wall / bound | wall / overlapped bound |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
trow trawdd "dd of the uncompressed image (conv=fsync)" 0
trow tpipeline "zstd -d \\| dd (conv=fsync)" 0
trow tclient "rustupdate install" "$T_ZEROED"
trow tdelta "rustupdate install --delta (known base; slot a's reads below)" "$TD_ZEROED"
for peer in "${PEERS[@]}"; do trow "tpeer-$peer" "$peer (bench/lib/install-peers.sh)" 0; done
echo
printf 'bound: %s B in 4 KiB blocks that differ (%.1f MiB, %.1f MiB of them zero in the image) / %s B/s + %s B image / %s B/s = %.2f s + %.2f s = **%.2f s**\n' \
    "$DIFF" "$(echo "$DIFF/1048576" | bc -l)" "$(echo "$DIFF_ZERO/1048576" | bc -l)" "$THROTTLE_WRITE_BPS" "$SIZE" "$THROTTLE_READ_BPS" \
    "$WRITE_S" "$READ_S" "$BOUND"
printf 'overlapped bound (reads and writes on budgets of their own): max(%.2f s, %.2f s) = **%.2f s**\n' \
    "$WRITE_S" "$READ_S" "$OVERLAP"
printf 'client: %s s = **%.2fx** the bound, **%.2fx** the overlapped bound (goal <= %s for both; runs: %s s); dd takes %s s\n' "$tcw" "$RATIO" "$OVERLAP_RATIO" "$GOAL_THROTTLED_RATIO" \
    "$(awk '{printf "%s%s", (NR > 1 ? ", " : ""), $1}' "$OUT/tclient.times")" "$(col trawdd 1)"
echo "client's log: $T_TOTAL MiB written ($T_DATA MiB of data, $T_ZEROED MiB zeroed), $T_IN_PLACE MiB already in place"
base_line tdelta "$(col tdelta 1)" "$tcw"
echo "device MiB per run (read written discarded): client $(paste -sd, "$OUT/tclient.io"); dd $(paste -sd, "$OUT/trawdd.io")"
} | tee -a "$OUT/result.md"
MISSED=0
# check_bound WHAT BOUND RATIO: the client's median against one bound.
check_bound() {
    if (( $(echo "$3 > $GOAL_THROTTLED_RATIO" | bc -l) )); then
        echo "MISS: throttled install $tcw s > $GOAL_THROTTLED_RATIO x the $1 ($(printf %.2f "$2") s)"
        MISSED=1
    else
        echo "PASS: throttled install within $GOAL_THROTTLED_RATIO x the $1 ($(printf %.2f "$2") s)"
    fi
}
check_bound bound "$BOUND" "$RATIO"
check_bound "overlapped bound" "$OVERLAP" "$OVERLAP_RATIO"
tdw=$(col tdelta 1)
if (( $(echo "$tdw > $GOAL_THROTTLED_DELTA_RATIO * $tcw" | bc -l) )); then
    echo "MISS: throttled delta install $tdw s > $GOAL_THROTTLED_DELTA_RATIO x the full install's $tcw s"
    MISSED=1
else
    echo "PASS: throttled delta install $tdw s within $GOAL_THROTTLED_DELTA_RATIO x the full install's $tcw s"
fi
if [[ $MISSED == 1 && $ENFORCE == 1 ]]; then exit 2; fi
