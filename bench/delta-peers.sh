#!/usr/bin/env bash
# Benchmark: what a device that holds rootfs-v1.ext4 downloads, and spends, to write rootfs-v2.ext4
# into its inactive slot with the delta tools of our peers, over loopback HTTP. Every peer runs with
# the settings its own project recommends for this job, and the device is charged for what that
# peer's device side does and for nothing else:
#
#   xdelta3  server: xdelta3 -9 -e -B <image size> -s v1 v2 (a source window covering the whole
#            base, as xdelta3's docs advise for large inputs), also with -S lzma (secondary
#            compression); the smaller patch is the row, both sizes are in the notes.
#            Device: curl the patch, xdelta3 -d -s v1 PATCH SLOT.
#   casync   server: casync make (default chunk size, and 16 KiB average for comparison) into a chunk
#            store.  Device: casync extract --seed=v1 from http:// (its casync-http helper) into
#            SLOT, casync's defaults otherwise (it also uses what SLOT holds as a seed).
#   zchunk   server: zck -u --chunk-hash-type sha256 (as meta-swupdate's image_types_zchunk.bbclass
#            makes .zck files) and the .zckheader it cuts from it.  Device: bench/lib/zck-delta.c,
#            the device side of SWUpdate's delta handler on the same libraries (libzck, libzstd,
#            libcurl): index v1 as the handler does (no compression, sha256, 16 KiB reads), fetch
#            the missing chunks with multi-range requests of at most 150 ranges, write every chunk
#            to SLOT (built with cc the first time; needs libzck-dev, libcurl4-openssl-dev,
#            libzstd-dev, libssl-dev).
#   zstd     reference rows: the whole v2 at -19, and -19 --patch-from=v1 --long=30; device:
#            curl, zstd -d -c (with --patch-from=v1 for the patch) > SLOT
#
# SLOT is what rustupdate writes to in bench/delta-bench.sh: a loop device over a file that holds
# v1 (rewritten with v1 before every tool: the inactive slot holds the previous release), a plain
# file when loop devices are unavailable; every tool's steps end with `sync SLOT` (measured; our
# client fsyncs its slot too). Every download goes through bench/lib/range_server.py on 127.0.0.1,
# one server per tool; bytes (response bodies, multipart framing included) and requests are counted
# from its log. Device CPU (user and sys, reported apart) and peak RSS come from /usr/bin/time for
# each device step (children reaped by a tool, such as casync-http, are included); CPU sums the
# steps, RSS is the largest step. SLOT's first image-size bytes are compared with v2's sha256; a
# mismatch fails the run (exit 1) after the table is printed.
#
#   sudo bench/delta-peers.sh         (root: loop devices, apt-get, and the images when missing)
#
# Output: a markdown table on stdout (also build/bench/delta/peers.md) and
# build/bench/delta/peers.json (one object per row: tool, bytes, requests, device_user_s,
# device_sys_s, device_rss_kib, ok, note, command, and more). Server-side artifacts are cached in
# build/bench/delta/srv and remade when the images, the recipe or the tools change (REBUILD=1
# forces); making them costs 5-6 min of one core (xdelta3 with the whole-image window and zstd -19
# are most of it), a run with the cache warm about 1 min.
# Installs xdelta3, casync, zchunk, zstd, time, curl and the zck-delta build dependencies with
# apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/bench/delta
SRV=$OUT/srv   # what the update server holds (served over HTTP)
DEV=$OUT/dev   # the device's working area
LOGS=$OUT/logs
BIN=$OUT/bin   # zck-delta, built here
SERVER=$ROOT/bench/lib/range_server.py
CASYNC_SIZES=(default 16K)   # --chunk-size of each casync row ("default": the option is not given)
XDELTA3_VARIANTS=("-9" "-9 -S lzma")   # encoder options besides -e -B SIZE -s v1 (one patch each)
ZCK_MAX_RANGES=150   # SWUpdate's delta handler's default max-ranges
mkdir -p "$OUT" "$LOGS" "$BIN"

log() { printf '[delta-peers %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
for t in xdelta3:xdelta3 casync:casync zck:zchunk zck_read_header:zchunk zstd:zstd curl:curl cc:gcc \
    pkg-config:pkg-config losetup:mount; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[[ -x /usr/bin/time ]] || need+=(time)
for p in libzck-dev libcurl4-openssl-dev libzstd-dev libssl-dev; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    # ci/apt-install.sh waits for apt's lock: in CI this runs beside the e2e set-up's installs.
    "$ROOT/ci/apt-install.sh" "${need[@]}"
fi
[[ -x /usr/lib/casync/protocols/casync-http ]] || die "casync's HTTP helper /usr/lib/casync/protocols/casync-http is missing"

bench/rootfs-images.sh
V1=$ROOT/build/bench/rootfs-v1.ext4
V2=$ROOT/build/bench/rootfs-v2.ext4
SIZE=$(stat -c %s "$V2")
V2_SHA=$(sha256sum "$V2" | cut -d' ' -f1)

# zck-delta, rebuilt when its source changes.
ZCK_DELTA=$BIN/zck-delta
zsrc=$ROOT/bench/lib/zck-delta.c
if [[ ! -x $ZCK_DELTA || $zsrc -nt $ZCK_DELTA ]]; then
    log "building $ZCK_DELTA"
    # shellcheck disable=SC2046 # pkg-config prints one flag per word
    cc -O2 -Wall -o "$ZCK_DELTA" "$zsrc" $(pkg-config --cflags --libs zck libcurl libzstd libcrypto)
fi

# --- HTTP servers and the slot, all stopped or detached on exit ---------------------------------

# start_server, stop_servers, SERVER_PIDS, LOOP and cleanup (stops them, detaches LOOP).
# shellcheck source=lib/range-server.sh
source "$ROOT/bench/lib/range-server.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

# http_totals NAME: "requests bytes" from the server's log.
http_totals() {
    python3 "$SERVER" summary "$LOGS/$1.http.jsonl" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["requests"], d["bytes"])'
}

# --- measurement helpers ------------------------------------------------------------------------

# measure STEP COMMAND...: runs COMMAND, appends "wall user sys maxrss_kib" to $LOGS/STEP.time.
measure() {
    local step=$1
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$LOGS/$step.time" "$@" >"$LOGS/$step.out" 2>"$LOGS/$step.err" ||
        { tail -n 20 "$LOGS/$step.err" >&2; die "$step failed: $*"; }
}

# cost STEP...: "wall_s cpu_s maxrss_kib user_s sys_s" over the steps (sums; RSS is the largest).
cost() {
    local s files=()
    for s in "$@"; do files+=("$LOGS/$s.time"); done
    awk '{ w += $1; u += $2; s += $3; if ($4 > m) m = $4 }
        END { printf "%.2f %.2f %d %.2f %.2f\n", w, u + s, m, u, s }' "${files[@]}"
}

# Server side: not measured for time; what matters is the size of what is served.
server_step() { nice -n 10 "$@" >>"$LOGS/server.log" 2>&1 || die "server step failed: $* (see $LOGS/server.log)"; }

# --- server side: make (or reuse) the artifacts -------------------------------------------------

# The cache key: the inputs, the tools' versions and the recipe below (bump it when that changes).
RECIPE="xdelta3 -e -B $SIZE ${XDELTA3_VARIANTS[*]}; casync make ${CASYNC_SIZES[*]}; zck -u --chunk-hash-type sha256 + zckheader; zstd -19; zstd -19 --long=30 --patch-from"
key=$({
    echo "$RECIPE"
    echo "v1 $(sha256sum "$V1" | cut -d' ' -f1) v2 $V2_SHA"
    dpkg-query -W xdelta3 casync zchunk zstd
} | sha256sum | cut -d' ' -f1)
if [[ ${REBUILD:-0} == 1 || ! -f $SRV/.key || $(cat "$SRV/.key") != "$key" ]]; then
    log "making server-side artifacts (5-6 min of one core, niced)"
    rm -rf "$SRV"
    mkdir -p "$SRV/xdelta3" "$SRV/casync" "$SRV/zchunk" "$SRV/zstd"
    : >"$LOGS/server.log"
    for i in "${!XDELTA3_VARIANTS[@]}"; do
        # shellcheck disable=SC2086 # the variant is a list of options
        server_step xdelta3 ${XDELTA3_VARIANTS[$i]} -e -f -B "$SIZE" -s "$V1" "$V2" "$SRV/xdelta3/v2.$i.xdelta"
    done
    for cs in "${CASYNC_SIZES[@]}"; do
        opt=()
        [[ $cs == default ]] || opt=(--chunk-size="$cs")
        nice -n 10 casync -v make "${opt[@]}" --store="$SRV/casync/$cs.castr" "$SRV/casync/v2-$cs.caibx" "$V2" \
            >"$SRV/casync/make-$cs.log" 2>&1 || die "casync make failed (see $SRV/casync/make-$cs.log)"
    done
    # meta-swupdate's image_types_zchunk.bbclass: the .zck, and its header cut out for the SWU.
    server_step zck -u --chunk-hash-type sha256 -o "$SRV/zchunk/v2.zck" "$V2"
    hsize=$(zck_read_header -v "$SRV/zchunk/v2.zck" | sed -n 's/^Header size: *//p')
    [[ $hsize =~ ^[0-9]+$ ]] || die "no header size from zck_read_header"
    head -c "$hsize" "$SRV/zchunk/v2.zck" >"$SRV/zchunk/v2.zckheader"
    server_step zstd -q -f -19 "$V2" -o "$SRV/zstd/v2.zst"
    server_step zstd -q -f -19 --long=30 --patch-from="$V1" "$V2" -o "$SRV/zstd/v2.patch.zst"
    echo "$key" >"$SRV/.key"
else
    log "server-side artifacts up to date in $SRV (REBUILD=1 remakes them)"
fi

# --- device side --------------------------------------------------------------------------------

rm -rf "$DEV"
mkdir -p "$DEV"
truncate -s "$SIZE" "$DEV/slot.img"
if LOOP=$(losetup --find --show "$DEV/slot.img" 2>/dev/null); then
    SLOT=$LOOP
else
    LOOP=""
    SLOT=$DEV/slot.img
fi
log "slot: $SLOT"

ROWS=$LOGS/rows.tsv
: >"$ROWS"
FAILED=()

# prepare: the slot holds v1 (synced), v1 is in the page cache, as before each of our installs.
prepare() {
    dd if="$V1" of="$SLOT" bs=1M conv=fsync status=none
    sync
    cat "$V1" >/dev/null
}

# row TOOL ARTIFACT_BYTES SERVER_NAME STEPS NOTE COMMAND: checks SLOT, appends a row. STEPS end
# with the flush of the slot (measured here).
row() {
    local tool=$1 artifact=$2 name=$3 steps="$4 $3.sync" note=$5 command=$6 ok=true sha req bytes wall cpu rss user sys
    measure "$name.sync" sync "$SLOT"
    sha=$(head -c "$SIZE" "$SLOT" | sha256sum | cut -d' ' -f1)
    [[ $sha == "$V2_SHA" ]] || { ok=false; FAILED+=("$tool"); log "MISMATCH: $tool gave $sha, v2 is $V2_SHA"; }
    read -r req bytes < <(http_totals "$name")
    # shellcheck disable=SC2086 # step lists are space-separated names
    read -r wall cpu rss user sys < <(cost $steps)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$artifact" "$bytes" "$req" "$cpu" \
        "$rss" "$user" "$sys" "$wall" "$ok" "$note" "$command" >>"$ROWS"
}

# xdelta3: the smallest of the variants is run on the device.
best=0
for i in "${!XDELTA3_VARIANTS[@]}"; do
    (($(stat -c %s "$SRV/xdelta3/v2.$i.xdelta") < $(stat -c %s "$SRV/xdelta3/v2.$best.xdelta"))) && best=$i
done
xnote="source window -B $SIZE (the whole base);"
for i in "${!XDELTA3_VARIANTS[@]}"; do
    xnote+=" xdelta3 ${XDELTA3_VARIANTS[$i]}: $(stat -c %s "$SRV/xdelta3/v2.$i.xdelta") B;"
done
log "xdelta3 ${XDELTA3_VARIANTS[$best]}"
cp "$SRV/xdelta3/v2.$best.xdelta" "$SRV/xdelta3/v2.xdelta"
prepare
start_server xdelta3
measure xdelta3.fetch curl -fsS -o "$DEV/v2.xdelta" "$URL/xdelta3/v2.xdelta"
measure xdelta3.apply xdelta3 -d -f -s "$V1" "$DEV/v2.xdelta" "$SLOT"
stop_servers
rm -f "$DEV/v2.xdelta"
row "xdelta3 ${XDELTA3_VARIANTS[$best]} -B $((SIZE >> 20))M" "$(stat -c %s "$SRV/xdelta3/v2.xdelta")" xdelta3 \
    "xdelta3.fetch xdelta3.apply" "$xnote the smallest is served; device: curl + xdelta3 -d -s v1 PATCH SLOT" \
    "xdelta3 ${XDELTA3_VARIANTS[$best]} -e -B $SIZE -s v1 v2 PATCH"

for cs in "${CASYNC_SIZES[@]}"; do
    log "casync ($cs chunk size)"
    mlog=$SRV/casync/make-$cs.log
    sizes=$(sed -n 's/^Selected chunk sizes: //p' "$mlog")
    chunks=$(sed -n 's/^Number of chunks: //p' "$mlog")
    avg=$(sed -n 's/^Effective average chunk size: //p' "$mlog")
    prepare
    start_server "casync-$cs"
    measure "casync-$cs.extract" casync extract --store="$URL/casync/$cs.castr" --seed="$V1" \
        "$URL/casync/v2-$cs.caibx" "$SLOT"
    stop_servers
    store=$(find "$SRV/casync/$cs.castr" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    copt=""
    [[ $cs == default ]] || copt=" --chunk-size=$cs"
    row "casync ($cs)" "$((store + $(stat -c %s "$SRV/casync/v2-$cs.caibx")))" "casync-$cs" "casync-$cs.extract" \
        "chunk sizes $sizes, $chunks chunks, effective average $avg; artifact = index + whole store; device: casync extract --seed=v1 into SLOT over casync-http (it chunks v1, and SLOT as a seed, itself)" \
        "casync make$copt --store=STORE v2.caibx v2"
done

log "zchunk (SWUpdate's delta handler)"
zchunks=$(zck_read_header "$SRV/zchunk/v2.zck" | sed -n 's/^Chunk count: //p')
prepare
start_server zchunk
measure zchunk.delta "$ZCK_DELTA" "$V1" "$URL/zchunk/v2.zckheader" "$URL/zchunk/v2.zck" "$SLOT" "$ZCK_MAX_RANGES"
stop_servers
read -r _ zreused _ zchunkbytes _ _ <"$LOGS/zchunk.delta.out"
row "zchunk, SWUpdate delta handler" "$(stat -c %s "$SRV/zchunk/v2.zck")" zchunk "zchunk.delta" \
    "zck -u --chunk-hash-type sha256 (meta-swupdate), zstd, automatic chunking: $zchunks chunks, average $((SIZE / zchunks / 1024)) KiB; header $(stat -c %s "$SRV/zchunk/v2.zckheader") B (in the SWU: counted as downloaded); device: bench/lib/zck-delta.c (the handler's steps: index v1 uncompressed with sha256, $zreused B reused, $zchunkbytes B of chunks in range requests of <= $ZCK_MAX_RANGES ranges, every chunk written to SLOT)" \
    "zck -u --chunk-hash-type sha256 -o v2.zck v2"

log "zstd -19 (whole image)"
prepare
start_server zstd
measure zstd.fetch curl -fsS -o "$DEV/v2.zst" "$URL/zstd/v2.zst"
# shellcheck disable=SC2016 # the inner shell expands its own arguments
measure zstd.decompress sh -c 'zstd -q -d -c "$1" >"$2"' sh "$DEV/v2.zst" "$SLOT"
stop_servers
rm -f "$DEV/v2.zst"
row "zstd -19 (whole v2)" "$(stat -c %s "$SRV/zstd/v2.zst")" zstd "zstd.fetch zstd.decompress" \
    "reference: no delta; device: curl + zstd -d -c > SLOT" "zstd -19 v2"

log "zstd -19 --patch-from=v1"
prepare
start_server zstd-patch
measure zstd-patch.fetch curl -fsS -o "$DEV/v2.patch.zst" "$URL/zstd/v2.patch.zst"
# The window covers the whole image: the decoder needs that much memory, and holds v1 besides.
# shellcheck disable=SC2016 # the inner shell expands its own arguments
measure zstd-patch.decompress sh -c 'zstd -q -d -c --patch-from="$1" --long=30 --memory="$2" "$3" >"$4"' sh \
    "$V1" "$((SIZE >> 20))MB" "$DEV/v2.patch.zst" "$SLOT"
stop_servers
rm -f "$DEV/v2.patch.zst"
row "zstd -19 --patch-from" "$(stat -c %s "$SRV/zstd/v2.patch.zst")" zstd-patch "zstd-patch.fetch zstd-patch.decompress" \
    "reference: known base, --long=30; device: curl + zstd -d -c --patch-from=v1 --memory=$((SIZE >> 20))MB > SLOT" \
    "zstd -19 --long=30 --patch-from=v1 v2"
cleanup
rm -rf "$DEV"

# --- report -------------------------------------------------------------------------------------

python3 - "$ROWS" "$OUT/peers.json" "$OUT/peers.md" "$(date -u +%F)" "$(nproc)" "$((SIZE >> 20))" "$SLOT" <<'PY'
import json, sys
rows_tsv, json_path, md_path, day, cores, mib, slot = sys.argv[1:]
keys = ["tool", "artifact_bytes", "bytes", "requests", "device_cpu_s", "device_rss_kib", "device_user_s",
        "device_sys_s", "device_wall_s", "ok", "note", "command"]
num = lambda v: float(v) if "." in v else int(v)
rows = []
for line in open(rows_tsv, encoding="utf-8"):
    r = dict(zip(keys, line.rstrip("\n").split("\t")))
    for k in keys[1:-3]:
        r[k] = num(r[k])
    r["ok"] = r["ok"] == "true"
    rows.append(r)
with open(json_path, "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=1)
    f.write("\n")
mb = lambda b: f"{b / 1e6:.2f}"
out = [f"## Delta peers: device holds rootfs-v1, gets rootfs-v2 ({mib} MiB ext4) over loopback HTTP ({day}, {cores} cores)",
       "",
       "| tool | served artifact MB | downloaded MB | requests | device user s | device sys s | device peak RSS MiB | device wall s | sha256 ok |",
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
for r in rows:
    out.append(f"| {r['tool']} | {mb(r['artifact_bytes'])} | {mb(r['bytes'])} | {r['requests']} | "
               f"{r['device_user_s']:.2f} | {r['device_sys_s']:.2f} | "
               f"{r['device_rss_kib'] / 1024:.1f} | {r['device_wall_s']:.2f} | {'yes' if r['ok'] else 'NO'} |")
out += ["", "Settings and notes:"] + [f"- {r['tool']}: `{r['command']}`; {r['note']}" for r in rows]
out += ["", f"Every tool writes into {slot}, which holds v1 before each tool, and its steps end with `sync` of it. "
        "Downloaded = HTTP response bodies counted by bench/lib/range_server.py (multipart framing included). "
        "Device CPU = user and sys of the download and reconstruction steps (children included); RSS = largest step; "
        "wall times are indicative only (shared machine)."]
text = "\n".join(out) + "\n"
open(md_path, "w", encoding="utf-8").write(text)
print(text, end="")
PY
log "done in $SECONDS s: $OUT/peers.json, $OUT/peers.md"
((${#FAILED[@]} == 0)) || die "reconstruction differs from v2 for: ${FAILED[*]}"
