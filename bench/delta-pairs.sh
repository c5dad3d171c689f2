#!/usr/bin/env bash
# Benchmark (issue 22): the size of our known-base delta patch on three kinds of update, each
# against the two general-purpose delta tools given the whole base, and the goal "no larger than
# the smaller of the two on every pair" checked.
#
#   sudo bench/delta-pairs.sh [--enforce] [PAIR...]   (root: the images when missing; not in CI)
#
# PAIR: any of the names below (default all three).
#
# Pairs (512 MiB ext4 each, all made reproducibly by bench/rootfs-images.sh with its cache):
#   security-update     the bench pair of rootfs-images.sh with its defaults (build/bench):
#                       openssl/libssl3 and ca-certificates upgraded, jq added, two config edits
#   package-addition    v1 = the base without any pin (debootstrap of bookworm main: the same
#                       image as the security pair's v1 when that pins nothing new); v2 = v1 +
#                       PKGADD_PACKAGES (default "python3 nginx-light") with their dependencies
#                       from all three pockets, nothing else (build/bench/pairs/package-addition)
#   application-release v1 = the base + python3-venv, python3-pip and /opt/app, a virtualenv of
#                       pinned wheels from PyPI; v2 = the next release of the application (wheels
#                       upgraded in place, code version bumped), nothing else in the system changed
#                       (bench/lib/app-release-hook.sh has the versions;
#                       build/bench/pairs/application-release)
#
# Per pair, made niced and cached in build/bench/pairs/delta/<pair>/ (keyed on the images'
# sha256, the tool binary and the recipe; REBUILD=1 remakes):
#   ours      `rustupdate-artifact build --level 19` (format version 2, the default) of v2, then
#             `rustupdate-artifact delta --base v1 --target v2.rua` at the tool's default level
#             (19); the patch file's size (the device also downloads the artifact's head, 4 KiB,
#             not counted here as no anchor has one)
#   zstd      `zstd -19 --long=31 --patch-from=v1 v2` (decoding needs --long=31 / --memory=2048MB)
#   xdelta3   `xdelta3 -9 -S djw -B <image size> -e -s v1 v2` (source window = the whole base)
# Both anchors are decoded once and compared with v2's sha256 (a wrong anchor fails the run).
# Also per pair, as input for tuning the builder: v2's non-zero 4 KiB blocks that v1 does not hold
# (count, MB, and those blocks as one zstd -19 stream), and the builder's own copied / literal
# split from its output.
#
# --enforce: exit 2 when our patch is larger than the smaller anchor on any pair (each listed).
# Output: a markdown table on stdout and in build/bench/pairs/delta/results.md, the same as JSON in
# results.json. Installs zstd and xdelta3 with apt-get when missing. Time on 2 shared cores: about
# 15 min the first time (3-7 min of tools per pair, zstd -19 --long=31 the longest step) plus about
# 100 s of images per pair not yet built; seconds when everything is cached.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/bench/pairs
RES=$OUT/delta
PKGADD_PACKAGES=${PKGADD_PACKAGES:-python3 nginx-light}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}   # artifact creation time: reproducible
ALL_PAIRS=(security-update package-addition application-release)
ENFORCE=0
PAIRS=()
for arg in "$@"; do
    case $arg in
    --enforce) ENFORCE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    security-update | package-addition | application-release) PAIRS+=("$arg") ;;
    *) echo "delta-pairs.sh: unknown argument $arg (see --help)" >&2; exit 64 ;;
    esac
done
((${#PAIRS[@]})) || PAIRS=("${ALL_PAIRS[@]}")

log() { printf '[delta-pairs %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools --------------------------------------------------------------------------------------

need=()
command -v zstd >/dev/null || need+=(zstd)
command -v xdelta3 >/dev/null || need+=(xdelta3)
if ((${#need[@]})); then
    [[ $(id -u) == 0 ]] || die "zstd and xdelta3 are needed: run as root to install ${need[*]}"
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
log "release build of rustupdate-artifact (niced)"
nice -n 10 cargo build --release --locked -p rustupdate-artifact 2>&1 | tail -n 1 >&2
TOOL=${CARGO_TARGET_DIR:-$ROOT/target}/release/rustupdate-artifact
[[ -x $TOOL ]] || die "no $TOOL after the build"

# --- images -------------------------------------------------------------------------------------

mkdir -p "$OUT/logs"
declare -A DIR
# images PAIR: makes (or finds in the cache) the pair's images; sets DIR[PAIR].
images() {
    local pair=$1 dir
    case $pair in
    security-update)
        dir=$ROOT/build/bench
        nice -n 10 bench/rootfs-images.sh ;;
    package-addition)
        dir=$OUT/$pair
        ROOTFS_OUT=$dir ROOTFS_UPGRADE="" ROOTFS_ADD="$PKGADD_PACKAGES" ROOTFS_EDITS=0 \
            ROOTFS_DEBOOTSTRAP_CACHE=$ROOT/build/bench/debootstrap-cache nice -n 10 bench/rootfs-images.sh ;;
    application-release)
        dir=$OUT/$pair
        ROOTFS_OUT=$dir ROOTFS_UPGRADE="" ROOTFS_ADD="" ROOTFS_EDITS=0 \
            ROOTFS_BASE="python3-venv python3-pip" ROOTFS_HOOK=bench/lib/app-release-hook.sh \
            ROOTFS_DEBOOTSTRAP_CACHE=$ROOT/build/bench/debootstrap-cache nice -n 10 bench/rootfs-images.sh ;;
    esac
    DIR[$pair]=$dir
}
for pair in "${PAIRS[@]}"; do
    log "images: $pair"
    start=$SECONDS
    images "$pair" 2>"$OUT/logs/$pair.images.log" || { tail -n 20 "$OUT/logs/$pair.images.log" >&2; die "images of $pair failed"; }
    log "  $((SECONDS - start)) s (log: $OUT/logs/$pair.images.log)"
done

# --- per pair: our patch, the anchors, what is new in v2 ----------------------------------------

RECIPE="build --level 19; delta --base v1 (default level); zstd -19 --long=31 --patch-from; xdelta3 -9 -S djw -B size; new4k v1"
if [[ ! -f $RES/bench.key.pem || ! -f $RES/bench.pub.pem ]]; then
    mkdir -p "$RES"
    rm -f "$RES/bench.key.pem" "$RES/bench.pub.pem"
    "$TOOL" keygen -o "$RES/bench" >/dev/null
fi

# measure PAIR: everything for one pair into $RES/PAIR/ (cached), ending in result.tsv.
measure() {
    local pair=$1 dir=${DIR[$1]} d=$RES/$1 v1 v2 size key start v2sha
    v1=$dir/rootfs-v1.ext4
    v2=$dir/rootfs-v2.ext4
    size=$(stat -c %s "$v2")
    mkdir -p "$d"
    v2sha=$(sha256sum "$v2" | cut -d' ' -f1)
    key=$({
        echo "$RECIPE"
        sha256sum "$v1" | cut -d' ' -f1
        echo "$v2sha"
        sha256sum "$TOOL" "$RES/bench.pub.pem" | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1)
    if [[ ${REBUILD:-0} != 1 && -f $d/.key && $(cat "$d/.key") == "$key" && -f $d/result.tsv ]]; then
        log "$pair: up to date in $d (REBUILD=1 remakes)"
        return
    fi
    rm -f "$d"/* "$d/.key"
    local -a secs=()
    step() {   # step NAME COMMAND...: niced, timed, output to $d/NAME.log
        local name=$1 t=$SECONDS
        shift
        nice -n 10 "$@" >"$d/$name.log" 2>&1 || { tail -n 20 "$d/$name.log" >&2; die "$pair: $name failed: $*"; }
        secs+=("$name=$((SECONDS - t))")
        log "$pair: $name $((SECONDS - t)) s"
    }
    step build "$TOOL" build --image "$v2" --name rootfs --version 2 --device-type bench \
        --key "$RES/bench.key.pem" --level 19 -o "$d/v2.rua"
    step ours "$TOOL" delta --base "$v1" --target "$d/v2.rua" --key "$RES/bench.pub.pem" -o "$d/v2.rudelta"
    step zstd zstd -q -f -19 --long=31 --patch-from="$v1" "$v2" -o "$d/v2.zst-patch"
    step xdelta3 xdelta3 -f -9 -S djw -B "$size" -e -s "$v1" "$v2" "$d/v2.xd3"
    # The anchors must rebuild v2 (decoded to a pipe: nothing of 512 MiB is kept).
    # shellcheck disable=SC2016 # the positional parameters are the inner shell's
    step zstd-check bash -c 'zstd -q -d -c --long=31 --memory=2048MB --patch-from="$1" "$2" | sha256sum' _ "$v1" "$d/v2.zst-patch"
    # shellcheck disable=SC2016 # the same
    step xdelta3-check bash -c 'xdelta3 -d -c -B "$3" -s "$1" "$2" | sha256sum' _ "$v1" "$d/v2.xd3" "$size"
    local got
    for got in zstd-check xdelta3-check; do
        [[ $(cut -d' ' -f1 "$d/$got.log") == "$v2sha" ]] || die "$pair: $got: the anchor does not rebuild v2"
    done
    step new4k python3 bench/lib/new-blocks.py "$v1" "$v2" "$d/new-blocks"
    step new4k-zstd zstd -q -f -19 "$d/new-blocks" -o "$d/new-blocks.zst"
    local copied literal frames stored programs
    read -r copied literal frames stored programs < <(sed -n \
        's/.*(\([0-9]*\) bytes) copied from the base, [0-9]* chunks (\([0-9]*\) bytes) sent in \([0-9]*\) frames (\([0-9]*\) bytes), programs \([0-9]*\) bytes.*/\1 \2 \3 \4 \5/p' \
        "$d/ours.log")
    local new_blocks new_bytes nonzero
    read -r new_blocks new_bytes nonzero <"$d/new4k.log"
    printf '%s\n' "pair=$pair" "size=$size" "ours=$(stat -c %s "$d/v2.rudelta")" \
        "zstd=$(stat -c %s "$d/v2.zst-patch")" "xdelta3=$(stat -c %s "$d/v2.xd3")" \
        "artifact=$(stat -c %s "$d/v2.rua")" "copied=${copied:-}" "literal=${literal:-}" \
        "frames=${frames:-}" "literal_stored=${stored:-}" "programs=${programs:-}" \
        "new_blocks=$new_blocks" "new_bytes=$new_bytes" "nonzero_blocks=$nonzero" \
        "new_blocks_zstd=$(stat -c %s "$d/new-blocks.zst")" "seconds=${secs[*]}" >"$d/result.tsv"
    rm -f "$d/new-blocks"
    echo "$key" >"$d/.key"
}
for pair in "${PAIRS[@]}"; do
    measure "$pair"
done

# --- report -------------------------------------------------------------------------------------

MISSED=$RES/missed.txt
summaries=()
for pair in "${PAIRS[@]}"; do summaries+=("${DIR[$pair]}/rootfs-images.txt"); done
python3 - "$RES" "$MISSED" "$(date -u +%F)" "$(nproc)" "${PAIRS[@]}" -- "${summaries[@]}" <<'PY'
import json, sys
args = sys.argv[1:]
res, missed_path, day, cores = args[:4]
sep = args.index("--")
pairs, summaries = args[4:sep], args[sep + 1:]
rows = []
for pair, summary in zip(pairs, summaries):
    r = dict(line.rstrip("\n").split("=", 1) for line in open(f"{res}/{pair}/result.tsv", encoding="utf-8"))
    for k, v in list(r.items()):
        if v.isdigit():
            r[k] = int(v)
    r["anchor"] = min(r["zstd"], r["xdelta3"])
    r["anchor_tool"] = "zstd" if r["zstd"] <= r["xdelta3"] else "xdelta3"
    r["ratio"] = r["ours"] / r["anchor"]
    r["met"] = r["ours"] <= r["anchor"]
    r["images"] = open(summary, encoding="utf-8").read()
    rows.append(r)

def mb(b):
    return f"{b / 1e6:.2f}"

out = [f"## Known-base delta patch vs zstd and xdelta3 on three update pairs ({day}, {cores} cores)", "",
       "| pair | ours B | zstd -19 --long=31 --patch-from B | xdelta3 -9 -S djw -B size B | ours / smaller anchor | goal (≤ 1.00×) | "
       "v2 blocks not in v1 (4 KiB) MB | those as one zstd -19 stream MB | ours: copied MB / literal MB → stored MB, programs MB |",
       "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
for r in rows:
    split = (f"{mb(r['copied'])} / {mb(r['literal'])} → {mb(r['literal_stored'])}, {mb(r['programs'])}"
             if isinstance(r.get("copied"), int) else "not in the tool's output")
    out.append(f"| {r['pair']} | {r['ours']:,} | {r['zstd']:,} | {r['xdelta3']:,} | **{r['ratio']:.3f}×** ({r['anchor_tool']}) | "
               f"{'met' if r['met'] else '**not met**'} | {mb(r['new_bytes'])} ({r['new_blocks']:,} of {r['nonzero_blocks']:,}) | "
               f"{mb(r['new_blocks_zstd'])} | {split} |")
out += ["", "MB = 10^6 bytes. Ours = the .rudelta file (the device also fetches the artifact's 4 KiB head). Both anchors "
        "were decoded and matched v2's sha256. Seconds per step (niced): " +
        "; ".join(f"{r['pair']}: {r['seconds']}" for r in rows), ""]
for r in rows:
    out += [f"### {r['pair']}", "", "```", r["images"].rstrip("\n"), "```", ""]
text = "\n".join(out)
open(f"{res}/results.md", "w", encoding="utf-8").write(text)
json.dump({"date": day, "cores": int(cores), "pairs": rows}, open(f"{res}/results.json", "w", encoding="utf-8"), indent=1)
with open(missed_path, "w", encoding="utf-8") as f:
    for r in rows:
        if not r["met"]:
            f.write(f"{r['pair']}: ours {r['ours']:,} B > {r['anchor_tool']} {r['anchor']:,} B ({r['ratio']:.3f}x)\n")
print(text)
PY
log "done in $SECONDS s: $RES/results.md, $RES/results.json"
if [[ -s $MISSED ]]; then
    while read -r line; do log "MISS: $line"; done <"$MISSED"
    if ((ENFORCE)); then
        log "error: ours is larger than the smaller anchor on $(wc -l <"$MISSED") pair(s)"
        exit 2
    fi
fi
