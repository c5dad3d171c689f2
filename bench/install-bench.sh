#!/usr/bin/env bash
# Benchmark: install a 512 MiB ext4 rootfs image from a local .rua into a slot (a loop device, or
# a file when loop devices are unavailable), side by side with `dd` of the uncompressed image and
# `zstd -d | dd` into the same target.
# Prints wall time and CPU time (user, sys; medians of RUNS) and peak RSS (the maximum of RUNS: the
# install's memory goal is a budget) of each, the ratios, how many
# MiB each wrote to the target and how many the client found already in place (it reads before it
# writes and skips the 4 KiB blocks the target holds; figures from its log line), and the stripped
# size of the release client binary.
#   bench/install-bench.sh            (RUNS=5 by default; IMAGE=... another image, BASE=... what
#                                      the target holds before each run, default rootfs-v1.ext4)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# device_config: the simulated device's rustupdate.toml.
# shellcheck source=lib/device-config.sh
source "$ROOT/bench/lib/device-config.sh"
RUNS=${RUNS:-5}
OUT=build/bench/install
mkdir -p "$OUT"

if ! command -v zstd >/dev/null || ! [[ -x /usr/bin/time ]]; then
    apt-get update -qq && apt-get install -y -qq zstd time >/dev/null
fi
bench/rootfs-images.sh >/dev/null
IMAGE=${IMAGE:-$ROOT/build/bench/rootfs-v2.ext4}
BASE=${BASE:-$ROOT/build/bench/rootfs-v1.ext4}
SIZE=$(stat -c %s "$IMAGE")

echo "building release binaries"
cargo build --release --locked -p rustupdate -p rustupdate-artifact 2>&1 | tail -1
CLIENT=$ROOT/target/release/rustupdate
TOOL=$ROOT/target/release/rustupdate-artifact

# Artifact (default settings) and the reference compressed stream.
rm -f "$OUT"/bench.key.pem "$OUT"/bench.pub.pem
"$TOOL" keygen -o "$OUT/bench" >/dev/null
"$TOOL" build --image "$IMAGE" --name bench --version 2 --device-type bench --key "$OUT/bench.key.pem" -o "$OUT/image.rua" >/dev/null
zstd -q -f -3 -T0 "$IMAGE" -o "$OUT/image.zst"

# Target: a loop device over a file when possible, else the file itself.
truncate -s "$SIZE" "$OUT/slot-b.img"
truncate -s "$SIZE" "$OUT/slot-a.img"
LOOP=""
if LOOP=$(losetup --find --show "$OUT/slot-b.img" 2>/dev/null); then
    TARGET=$LOOP
    trap 'losetup -d "$LOOP"' EXIT
else
    TARGET=$OUT/slot-b.img
fi
echo "target: $TARGET"

mkdir -p "$OUT/keys" "$OUT/data" "$OUT/boot"
cp "$OUT/bench.pub.pem" "$OUT/keys/"
printf 'rustupdate.slot=a\n' > "$OUT/cmdline"
grub-editenv "$OUT/boot/grubenv" create 2>/dev/null || { apt-get install -y -qq grub-common >/dev/null; grub-editenv "$OUT/boot/grubenv" create; }
device_config "$OUT" --device-type bench --slot-b "$TARGET" >"$OUT/rustupdate.toml"

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
    dd if="$BASE" of="$TARGET" bs=1M conv=fsync status=none
    sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
    cat "$OUT/image.rua" "$OUT/image.zst" "$IMAGE" > /dev/null   # every input warm in the page cache
}

rm -f "$OUT"/*.times
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
done
# "slot …: W MiB written (D MiB of data, Z MiB zeroed), P MiB already in place" of the last client
# run (every run starts from the same BASE, so every run logs the same figures).
SUMMARY=$(sed -nE 's/.*: ([0-9.]+) MiB written \(([0-9.]+) MiB of data, ([0-9.]+) MiB zeroed\), ([0-9.]+) MiB already in place.*/\1 \2 \3 \4/p' "$OUT/client.err" | tail -n 1)
if [[ -z $SUMMARY ]]; then
    echo "no write summary in the client's log:"; cat "$OUT/client.err"; exit 1
fi
read -r W_TOTAL W_DATA W_ZEROED W_IN_PLACE <<< "$SUMMARY"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$OUT/$1.times" | median; }
maxcol() { awk -v c="$2" '$c > m {m = $c} END {print m}' "$OUT/$1.times"; }
dw=$(col rawdd 1); dc=$(col rawdd 2); dr=$(maxcol rawdd 3); du=$(col rawdd 4); ds=$(col rawdd 5)
pw=$(col pipeline 1); pc=$(col pipeline 2); pr=$(maxcol pipeline 3); pu=$(col pipeline 4); ps=$(col pipeline 5)
cw=$(col client 1); cc=$(col client 2); cr=$(maxcol client 3); cu=$(col client 4); cs=$(col client 5)
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
printf '| ratio client / raw dd | %.2f | %.2f | | | |\n' "$(echo "$cw/$dw" | bc -l)" "$(echo "$cc/$dc" | bc -l)"
printf '| ratio client / pipeline | %.2f | %.2f | %.2f | %.2f | |\n' "$(echo "$cw/$pw" | bc -l)" "$(echo "$cc/$pc" | bc -l)" "$(echo "$cr/$pr" | bc -l)" "$(echo "$W_TOTAL/($SIZE/1048576)" | bc -l)"
echo
echo "rustupdate install peak RSS per run: $rss_runs MiB"
echo "artifact: $(stat -c %s "$OUT/image.rua") bytes; zstd -3 stream: $(stat -c %s "$OUT/image.zst") bytes"
echo "blocks written when the target slot already holds $(basename "$BASE"): $W_TOTAL MiB ($W_DATA MiB of data, $W_ZEROED MiB zeroed), $W_IN_PLACE MiB already in place (dd writes all $((SIZE >> 20)) MiB)"
printf 'stripped client binary (%s): %s bytes (%.2f MiB)\n' "$(uname -m)" "$BIN" "$(echo "$BIN/1048576" | bc -l)"
} | tee "$OUT/result.md"
