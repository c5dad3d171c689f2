#!/usr/bin/env bash
# Benchmark: build and verify an artifact from a 512 MiB ext4 rootfs image, side by side with the
# tools a release engineer would otherwise use on the same file: `zstd -T0 -19`, `zstd -3`,
# `zstd -T0 -3` and `sha256sum`.
#
#   bench/artifact-bench.sh
#
# One run measures every step on the same image with the page cache warm (the input is read once
# before each step, `sync` runs before each step so that write-back of the previous step's output
# does not land in the next one). Rounds are interleaved (every step once, then again) so that
# drift on a shared machine hits all steps alike; each number is the median of RUNS rounds.
# Reported per step: wall time, CPU time (user+sys), peak RSS (GNU time), throughput in MiB/s of
# image bytes per wall second, output size; then the ratios against each reference. The table is
# printed and written to build/bench/artifact-bench.md (raw numbers in build/bench/artifact/).
#
# Environment:
#   IMAGE=path        image to use (default: build/bench/rootfs-v2.ext4 from bench/rootfs-images.sh)
#   RUNS=3            rounds (median)
#   STEP_TIMEOUT=900  seconds any single step may take before the benchmark fails
#   LEVEL19=1         also measure `rustupdate-artifact build --level 19` (0 to skip)
#
# Installs what it needs (zstd, GNU time) with apt-get; needs root for that and for the image.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
LEVEL19=${LEVEL19:-1}
OUT=$ROOT/build/bench/artifact
REPORT=$ROOT/build/bench/artifact-bench.md
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VERIFY_RSS_TARGET_MIB=64
mkdir -p "$OUT"

log() { echo "artifact-bench: $*" >&2; }

if ! command -v zstd >/dev/null || ! [[ -x /usr/bin/time ]]; then
    log "installing zstd and time"
    timeout 1200 "$ROOT/ci/apt-install.sh" zstd time
fi

if [[ -z ${IMAGE:-} ]]; then
    log "making (or reusing) the benchmark images"
    timeout 3600 bench/rootfs-images.sh >/dev/null
    IMAGE=$ROOT/build/bench/rootfs-v2.ext4
fi
[[ -f $IMAGE ]] || { log "no image at $IMAGE"; exit 1; }
SIZE=$(stat -c %s "$IMAGE")

log "building the release tool"
timeout 1800 cargo build --release --locked -p rustupdate-artifact 2>&1 | tail -1 >&2
TOOL=$TARGET_DIR/release/rustupdate-artifact
[[ -x $TOOL ]] || { log "no tool at $TOOL"; exit 1; }

rm -f "$OUT"/*.times "$OUT"/bench.key.pem "$OUT"/bench.pub.pem
"$TOOL" keygen -o "$OUT/bench" >/dev/null

# measure NAME COMMAND...: runs COMMAND once (stdout discarded, bounded by STEP_TIMEOUT) and
# appends "wall cpu rss_kib" to $OUT/NAME.times. A failing step fails the benchmark.
measure() {
    local name=$1
    shift
    sync
    if ! /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.one" \
        timeout "$STEP_TIMEOUT" "$@" >/dev/null 2>"$OUT/$name.err"; then
        log "step $name failed: $*"
        cat "$OUT/$name.err" "$OUT/$name.one" >&2
        exit 1
    fi
    # time(1) appends "Command exited..." lines only on failure; the last line holds the numbers.
    tail -n 1 "$OUT/$name.one" | awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' >>"$OUT/$name.times"
}
warm() { cat "$@" >/dev/null; }

ARTIFACT=$OUT/image.rua
for round in $(seq "$RUNS"); do
    log "round $round of $RUNS"
    warm "$IMAGE"
    measure build "$TOOL" build --image "$IMAGE" --name bench --version 1 --device-type bench \
        --key "$OUT/bench.key.pem" -o "$ARTIFACT"
    if [[ $LEVEL19 == 1 ]]; then
        warm "$IMAGE"
        measure build19 "$TOOL" build --image "$IMAGE" --name bench --version 1 --device-type bench \
            --level 19 --key "$OUT/bench.key.pem" -o "$OUT/image19.rua"
    fi
    warm "$ARTIFACT"
    measure verify "$TOOL" verify "$ARTIFACT" --key "$OUT/bench.pub.pem"
    warm "$IMAGE"
    measure zstd19 zstd -q -f -T0 -19 "$IMAGE" -o "$OUT/image.zst19"
    warm "$IMAGE"
    measure zstd3 zstd -q -f -3 "$IMAGE" -o "$OUT/image.zst3"
    warm "$IMAGE"
    measure zstd3t zstd -q -f -T0 -3 "$IMAGE" -o "$OUT/image.zst3t"
    warm "$IMAGE"
    measure sha256sum sha256sum "$IMAGE"
done

# median NAME COLUMN (1 wall, 2 cpu, 3 rss KiB)
median() { awk -v c="$2" '{print $c}' "$OUT/$1.times" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }
# quotient FORMAT A B: A / B, or "n/a" when B is 0 (a step too fast for time(1)'s 10 ms resolution)
quotient() { awk -v a="$2" -v b="$3" -v f="$1" 'BEGIN {if (b == 0) print "n/a"; else printf f, a / b}'; }
bytes() { stat -c %s "$1"; }
row() { # NAME LABEL [OUTPUT-FILE]
    local wall cpu rss out=""
    wall=$(median "$1" 1)
    cpu=$(median "$1" 2)
    rss=$(median "$1" 3)
    if [[ -n ${3:-} ]]; then
        out="$(calc %.1f "$(bytes "$3") / 1048576") MiB ($(calc %.1f "100 * $(bytes "$3") / $SIZE") %)"
    fi
    printf '| %s | %.2f | %.2f | %.1f | %s | %s |\n' "$2" "$wall" "$cpu" "$(calc %.4f "$rss / 1024")" \
        "$(quotient %.0f "$(calc %.6f "$SIZE / 1048576")" "$wall")" "$out"
}
ratio() { quotient %.2f "$(median "$1" "$3")" "$(median "$2" "$3")"; } # A B COLUMN
size_ratio() { calc %.2f "$(bytes "$1") / $(bytes "$2")"; }
verify_rss_mib=$(calc %.1f "$(median verify 3) / 1024")
build_rss_mib=$(calc %.1f "$(median build 3) / 1024")
verify_rss_ok=$(calc %d "$(median verify 3) < $VERIFY_RSS_TARGET_MIB * 1024")

{
    echo "## Artifact build and verify benchmark"
    echo
    echo "$(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates tools 2>/dev/null || echo ' (crates/tools modified)'), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "image \`$(basename "$IMAGE")\` $((SIZE >> 20)) MiB ($(du -k "$IMAGE" | awk '{printf "%.0f", $1 / 1024}') MiB allocated), page cache warm, median of $RUNS interleaved rounds;"
    echo "$("$TOOL" --version), $(zstd --version | sed 's/^\*\*\* //; s/ \*\*\*$//; s/, by.*//'), $(sha256sum --version | sed -n 1p)."
    echo
    echo "| step | wall s | CPU s (user+sys) | peak RSS MiB | MiB/s of image | output |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    row build "\`rustupdate-artifact build\` (zstd -3, fixed:4096, all cores, signed)" "$ARTIFACT"
    if [[ $LEVEL19 == 1 ]]; then
        row build19 "\`rustupdate-artifact build --level 19\`" "$OUT/image19.rua"
    fi
    row verify "\`rustupdate-artifact verify\` (signature, every chunk, image hash)"
    row zstd19 "\`zstd -T0 -19\`" "$OUT/image.zst19"
    row zstd3 "\`zstd -3\`" "$OUT/image.zst3"
    row zstd3t "\`zstd -T0 -3\`" "$OUT/image.zst3t"
    row sha256sum "\`sha256sum\`"
    echo
    echo "| comparison | wall | CPU | size |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| build / \`zstd -T0 -19\` | $(ratio build zstd19 1) | $(ratio build zstd19 2) | $(size_ratio "$ARTIFACT" "$OUT/image.zst19") |"
    echo "| build / \`zstd -3\` | $(ratio build zstd3 1) | $(ratio build zstd3 2) | $(size_ratio "$ARTIFACT" "$OUT/image.zst3") |"
    echo "| build / \`zstd -T0 -3\` | $(ratio build zstd3t 1) | $(ratio build zstd3t 2) | $(size_ratio "$ARTIFACT" "$OUT/image.zst3t") |"
    if [[ $LEVEL19 == 1 ]]; then
        echo "| build --level 19 / \`zstd -T0 -19\` | $(ratio build19 zstd19 1) | $(ratio build19 zstd19 2) | $(size_ratio "$OUT/image19.rua" "$OUT/image.zst19") |"
    fi
    echo "| verify / \`sha256sum\` | $(ratio verify sha256sum 1) | $(ratio verify sha256sum 2) | |"
    echo
    echo "Peak RSS: verify $verify_rss_mib MiB (target: well under $VERIFY_RSS_TARGET_MIB MiB:" \
        "$([[ $verify_rss_ok == 1 ]] && echo met || echo NOT MET)), build $build_rss_mib MiB."
    echo "Ratios below 1 mean rustupdate-artifact is faster or smaller. Sizes: the artifact (format"
    echo "version 2) holds each segment's data as one zstd frame plus a 40-byte table entry (size and"
    echo "sha256) per chunk, so every chunk is verified on its own; a single zstd stream compresses"
    echo "across the whole image and has no per-chunk hashes."
} | tee "$REPORT"
log "written to ${REPORT#"$ROOT"/}"
