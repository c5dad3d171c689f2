#!/usr/bin/env bash
# Benchmark: build and verify an artifact from a 512 MiB ext4 rootfs image, side by side with
# zstd -T0 -19, zstd -3 and sha256sum on the same file (median of RUNS, page cache warm).
# Prints wall time, CPU time, peak RSS, throughput and the ratios.
#   bench/artifact-bench.sh     (RUNS=3 by default; IMAGE=... for another image)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
OUT=build/bench/artifact
mkdir -p "$OUT"
command -v zstd >/dev/null && [[ -x /usr/bin/time ]] && command -v bc >/dev/null || {
    apt-get update -qq && apt-get install -y -qq zstd time bc >/dev/null; }
bench/rootfs-images.sh >/dev/null
IMAGE=${IMAGE:-$ROOT/build/bench/rootfs-v2.ext4}
SIZE=$(stat -c %s "$IMAGE")
echo "building the release tool"
cargo build --release --locked -p rustupdate-artifact 2>&1 | tail -1
TOOL=$ROOT/target/release/rustupdate-artifact
rm -f "$OUT"/bench.key.pem "$OUT"/bench.pub.pem
"$TOOL" keygen -o "$OUT/bench" >/dev/null

measure() { # NAME COMMAND... : appends "wall cpu rss_kb" to $OUT/NAME.times
    local name=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.one" "$@" >/dev/null 2>"$OUT/$name.err" || { cat "$OUT/$name.err"; exit 1; }
    awk '{printf "%s %.2f %s\n", $1, $2+$3, $4}' "$OUT/$name.one" >> "$OUT/$name.times"
}
rm -f "$OUT"/*.times
for _ in $(seq "$RUNS"); do
    cat "$IMAGE" > /dev/null
    measure build "$TOOL" build --image "$IMAGE" --name bench --version 1 --device-type bench --key "$OUT/bench.key.pem" -o "$OUT/image.rua"
    measure build19 "$TOOL" build --image "$IMAGE" --name bench --version 1 --device-type bench --level 19 --key "$OUT/bench.key.pem" -o "$OUT/image19.rua"
    measure verify "$TOOL" verify "$OUT/image.rua" --key "$OUT/bench.pub.pem"
    measure zstd19 zstd -q -f -T0 -19 "$IMAGE" -o "$OUT/image.zst19"
    measure zstd3 zstd -q -f -3 "$IMAGE" -o "$OUT/image.zst3"
    measure zstd3t zstd -q -f -T0 -3 "$IMAGE" -o "$OUT/image.zst3t"
    measure sha256sum sha256sum "$IMAGE"
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$OUT/$1.times" | median; }
row() { # NAME LABEL OUTPUT-FILE
    local w c r
    w=$(col "$1" 1); c=$(col "$1" 2); r=$(col "$1" 3)
    printf '| %s | %s | %s | %.1f | %.0f | %s |\n' "$2" "$w" "$c" "$(echo "$r/1024" | bc -l)" \
        "$(echo "$SIZE/1048576/$w" | bc -l)" "${3:+$(stat -c %s "$3")}"
}
ratio() { printf '%.2f' "$(echo "$(col "$1" 1)/$(col "$2" 1)" | bc -l)"; }
{
echo "## Artifact benchmark ($(date -u +%F), $(nproc) cores, median of $RUNS, image $(basename "$IMAGE") $((SIZE >> 20)) MiB)"
echo
echo "| step | wall s | CPU s | peak RSS MiB | MiB/s of image | output bytes |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
row build "rustupdate-artifact build (zstd -3, fixed:4096, all cores, signed)" "$OUT/image.rua"
row build19 "rustupdate-artifact build --level 19" "$OUT/image19.rua"
row verify "rustupdate-artifact verify (signature, every chunk, image hash)" ""
row zstd19 "zstd -T0 -19" "$OUT/image.zst19"
row zstd3 "zstd -3" "$OUT/image.zst3"
row zstd3t "zstd -T0 -3" "$OUT/image.zst3t"
row sha256sum "sha256sum" ""
echo
echo "wall-time ratios: build / zstd -T0 -19 = $(ratio build zstd19); build / zstd -3 = $(ratio build zstd3);" \
     "build --level 19 / zstd -T0 -19 = $(ratio build19 zstd19); verify / sha256sum = $(ratio verify sha256sum)"
} | tee "$OUT/result.md"
