#!/usr/bin/env bash
# Benchmark: what encryption costs (docs/encryption.md). The same 512 MiB release (rootfs-v2) built
# twice with the same options, clear and encrypted to three recipients, installed alternately
# into the same target (a loop device holding rootfs-v1, cold page cache for the target, inputs
# warm) by the same client: wall and CPU (user + sys) medians of RUNS, peak RSS the maximum of
# the runs, and the artifacts' sizes.
#   bench/encryption-bench.sh [--enforce]     (RUNS=5 by default)
# --enforce fails unless the goals docs/bandwidth.md calls met hold: encrypted CPU <= 1.10 x clear
# (medians), encrypted peak RSS at most 0.5 MiB above clear and below the install's 16 MiB
# budget (maxima), and the encrypted artifact < 0.1 % larger.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=lib/device-config.sh
source "$ROOT/bench/lib/device-config.sh"
ENFORCE=0
[[ ${1:-} == --enforce ]] && ENFORCE=1
RUNS=${RUNS:-5}
OUT=build/bench/encryption
mkdir -p "$OUT"

if ! [[ -x /usr/bin/time ]] || ! command -v grub-editenv >/dev/null; then
    apt-get update -qq && apt-get install -y -qq time grub-common >/dev/null
fi
bench/rootfs-images.sh >/dev/null
IMAGE=$ROOT/build/bench/rootfs-v2.ext4
BASE=$ROOT/build/bench/rootfs-v1.ext4
SIZE=$(stat -c %s "$IMAGE")

echo "building release binaries"
cargo build --release --locked -p rustupdate -p rustupdate-artifact 2>&1 | tail -1
CLIENT=$ROOT/target/release/rustupdate
TOOL=$ROOT/target/release/rustupdate-artifact

rm -f "$OUT"/*.pem
"$TOOL" keygen -o "$OUT/bench" >/dev/null
for r in device other-1 other-2; do
    "$TOOL" keygen --recipient -o "$OUT/$r" >/dev/null
done
build() {
    "$TOOL" build --image "$IMAGE" --name bench --version 2 --device-type bench --created 1 \
        --key "$OUT/bench.key.pem" "$@" >/dev/null
}
build -o "$OUT/clear.rua"
build --encrypt-to "$OUT/other-1.pub.pem" --encrypt-to "$OUT/device.pub.pem" \
    --encrypt-to "$OUT/other-2.pub.pem" -o "$OUT/encrypted.rua"

truncate -s "$SIZE" "$OUT/slot-b.img" "$OUT/slot-a.img"
LOOP=$(losetup --find --show "$OUT/slot-b.img")
trap 'losetup -d "$LOOP"' EXIT
mkdir -p "$OUT/keys" "$OUT/data" "$OUT/boot"
cp "$OUT/bench.pub.pem" "$OUT/keys/"
printf 'rustupdate.slot=a\n' > "$OUT/cmdline"
[[ -f $OUT/boot/grubenv ]] || grub-editenv "$OUT/boot/grubenv" create
device_config "$OUT" --device-type bench --slot-b "$LOOP" |
    sed "s|^trusted-dir = .*|&\ndecryption-key = \"$OUT/device.key.pem\"|" >"$OUT/rustupdate.toml"
grep -q '^decryption-key' "$OUT/rustupdate.toml" || { echo "no decryption-key in the config"; exit 1; }

# measure NAME: one install of NAME.rua, "wall cpu rss_kb user sys" appended to NAME.times.
measure() {
    local name=$1
    dd if="$BASE" of="$LOOP" bs=1M conv=fsync status=none
    sync; echo 1 > /proc/sys/vm/drop_caches
    cat "$OUT/$name.rua" > /dev/null
    grub-editenv "$OUT/boot/grubenv" set rustupdate_slot=a upgrade_available=0 bootcount=0 bootlimit=3
    rm -f "$OUT/data/state.json"
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.one" \
        "$CLIENT" -c "$OUT/rustupdate.toml" install "$OUT/$name.rua" >/dev/null 2>"$OUT/$name.err" ||
        { cat "$OUT/$name.err"; exit 1; }
    tail -n 1 "$OUT/$name.one" | awk '{printf "%s %.2f %s %s %s\n", $1, $2+$3, $4, $2, $3}' >> "$OUT/$name.times"
    cmp -n "$SIZE" "$IMAGE" "$LOOP" || { echo "$name: the target differs from the image"; exit 1; }
}

rm -f "$OUT"/*.times
for _ in $(seq "$RUNS"); do
    measure clear
    measure encrypted
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$OUT/$1.times" | median; }
maxcol() { awk -v c="$2" '$c > m {m = $c} END {print m}' "$OUT/$1.times"; }
cw=$(col clear 1); cc=$(col clear 2); cr=$(maxcol clear 3)
ew=$(col encrypted 1); ec=$(col encrypted 2); er=$(maxcol encrypted 3)
cs=$(stat -c %s "$OUT/clear.rua"); es=$(stat -c %s "$OUT/encrypted.rua")
cpu_ratio=$(echo "$ec/$cc" | bc -l)
rss_diff=$(echo "($er - $cr)/1024" | bc -l)
size_pct=$(echo "100*($es - $cs)/$cs" | bc -l)
{
echo "## Encryption benchmark ($(date -u +%F), $(nproc) cores, $RUNS runs each, alternating: wall and CPU medians, peak RSS the maximum; image $(basename "$IMAGE") $((SIZE >> 20)) MiB into a loop device holding $(basename "$BASE"))"
echo
echo "| artifact | bytes | wall s | CPU s (user + sys) | peak RSS MiB |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '| clear | %s | %s | %s (%s + %s) | %.1f |\n' "$cs" "$cw" "$cc" "$(col clear 4)" "$(col clear 5)" "$(echo "$cr/1024" | bc -l)"
printf '| encrypted to 3 recipients | %s | %s | %s (%s + %s) | %.1f |\n' "$es" "$ew" "$ec" "$(col encrypted 4)" "$(col encrypted 5)" "$(echo "$er/1024" | bc -l)"
printf '| encrypted / clear | %+.3f %% | %.2f | %.2f | %+.2f MiB |\n' "$size_pct" "$(echo "$ew/$cw" | bc -l)" "$cpu_ratio" "$rss_diff"
echo
echo "CPU per run (s), clear: $(awk '{printf "%s ", $2}' "$OUT/clear.times"); encrypted: $(awk '{printf "%s ", $2}' "$OUT/encrypted.times")"
} | tee "$OUT/result.md"

if ((ENFORCE)); then
    fail=0
    check() { if [[ $(echo "$2" | bc -l) == 1 ]]; then echo "  [PASS] $1"; else echo "  [FAIL] $1"; fail=1; fi; }
    check "encrypted CPU <= 1.10 x clear ($(printf %.2f "$cpu_ratio"))" "$cpu_ratio <= 1.10"
    check "encrypted peak RSS at most 0.5 MiB above clear ($(printf %+.2f "$rss_diff"))" "$rss_diff <= 0.5"
    check "encrypted artifact < 0.1 % larger ($(printf %.3f "$size_pct") %)" "$size_pct < 0.1"
    check "encrypted peak RSS < 16 MiB ($(printf %.1f "$(echo "$er/1024" | bc -l)") MiB)" "$er < 16384"
    exit $fail
fi
