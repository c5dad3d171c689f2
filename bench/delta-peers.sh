#!/usr/bin/env bash
# Benchmark: what a device that holds rootfs-v1.ext4 downloads, and spends, to reconstruct
# rootfs-v2.ext4 with the delta tools of our peers, over loopback HTTP:
#
#   xdelta3      server: xdelta3 -9 -e -s v1 v2 patch;  device: curl the patch, xdelta3 -d -s v1
#   casync       server: casync make (default chunk size, and 16 KiB average for comparison) into a
#                chunk store;  device: casync extract --seed=v1 from http:// (its casync-http helper)
#   zchunk       server: zck v2 (default settings);  device: zck v1 (once, the delta source, costed
#                apart as "prep"), zckdl --source v1.zck (multi-range requests), unzck
#   zstd         reference rows: the whole v2 at -19, and -19 --patch-from=v1 --long=30; device:
#                curl, zstd -d (with --patch-from=v1 for the patch)
#
# Every download goes through bench/lib/range_server.py on 127.0.0.1, one server per tool; bytes
# (response bodies, multipart framing included) and requests are counted from its log. Device CPU
# (user+sys) and peak RSS come from /usr/bin/time for each device step (children reaped by a tool,
# such as casync-http, are included); CPU sums the steps, RSS is the largest step. Each result is
# compared with v2's sha256; a mismatch fails the run (exit 1) after the table is printed.
#
#   sudo bench/delta-peers.sh         (root only when the images must be built)
#
# Output: a markdown table on stdout (also build/bench/delta/peers.md) and
# build/bench/delta/peers.json (one object per row: tool, bytes, requests, device_cpu_s,
# device_rss_kib, ok, and more). Server-side artifacts are cached in build/bench/delta/srv and
# remade when the images, the recipe or the tools change (REBUILD=1 forces); making them costs
# 3-4 min of one core (zstd -19 is most of it), a run with the cache warm about 1 min.
# Installs xdelta3, casync, zchunk, zstd, time, curl with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/bench/delta
SRV=$OUT/srv   # what the update server holds (served over HTTP)
DEV=$OUT/dev   # the device's working area
LOGS=$OUT/logs
SERVER=$ROOT/bench/lib/range_server.py
CASYNC_SIZES=(default 16K)   # --chunk-size of each casync row ("default": the option is not given)
mkdir -p "$OUT" "$LOGS"

log() { printf '[delta-peers %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
for t in xdelta3:xdelta3 casync:casync zck:zchunk zckdl:zchunk unzck:zchunk zstd:zstd curl:curl; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
[[ -x /usr/lib/casync/protocols/casync-http ]] || die "casync's HTTP helper /usr/lib/casync/protocols/casync-http is missing"

bench/rootfs-images.sh
V1=$ROOT/build/bench/rootfs-v1.ext4
V2=$ROOT/build/bench/rootfs-v2.ext4
SIZE=$(stat -c %s "$V2")
V2_SHA=$(sha256sum "$V2" | cut -d' ' -f1)

# --- HTTP servers, all stopped on exit ----------------------------------------------------------

SERVER_PIDS=()
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
trap stop_servers EXIT

# start_server NAME: serves $SRV, logging to $LOGS/NAME.http.jsonl; sets URL.
start_server() {
    local name=$1 portfile=$LOGS/$1.port
    rm -f "$portfile" "$LOGS/$name.http.jsonl"
    python3 "$SERVER" serve "$SRV" --log "$LOGS/$name.http.jsonl" --port-file "$portfile" >/dev/null &
    SERVER_PIDS+=($!)
    for _ in $(seq 100); do [[ -s $portfile ]] && break; sleep 0.1; done
    [[ -s $portfile ]] || die "range_server.py did not start"
    URL=http://127.0.0.1:$(cat "$portfile")
}

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
RECIPE="xdelta3 -9 -e; casync make ${CASYNC_SIZES[*]}; zck; zstd -19; zstd -19 --long=30 --patch-from"
key=$({
    echo "$RECIPE"
    echo "v1 $(sha256sum "$V1" | cut -d' ' -f1) v2 $V2_SHA"
    dpkg-query -W xdelta3 casync zchunk zstd
} | sha256sum | cut -d' ' -f1)
if [[ ${REBUILD:-0} == 1 || ! -f $SRV/.key || $(cat "$SRV/.key") != "$key" ]]; then
    log "making server-side artifacts (3-4 min of one core, niced)"
    rm -rf "$SRV"
    mkdir -p "$SRV/xdelta3" "$SRV/casync" "$SRV/zchunk" "$SRV/zstd"
    : >"$LOGS/server.log"
    server_step xdelta3 -9 -e -f -s "$V1" "$V2" "$SRV/xdelta3/v2.xdelta"
    for cs in "${CASYNC_SIZES[@]}"; do
        opt=()
        [[ $cs == default ]] || opt=(--chunk-size="$cs")
        nice -n 10 casync -v make "${opt[@]}" --store="$SRV/casync/$cs.castr" "$SRV/casync/v2-$cs.caibx" "$V2" \
            >"$SRV/casync/make-$cs.log" 2>&1 || die "casync make failed (see $SRV/casync/make-$cs.log)"
    done
    server_step zck -o "$SRV/zchunk/v2.zck" "$V2"
    server_step zstd -q -f -19 "$V2" -o "$SRV/zstd/v2.zst"
    server_step zstd -q -f -19 --long=30 --patch-from="$V1" "$V2" -o "$SRV/zstd/v2.patch.zst"
    echo "$key" >"$SRV/.key"
else
    log "server-side artifacts up to date in $SRV (REBUILD=1 remakes them)"
fi

# --- device side --------------------------------------------------------------------------------

ROWS=$LOGS/rows.tsv
: >"$ROWS"
FAILED=()

# row TOOL ARTIFACT_BYTES SERVER_NAME OUTPUT PREP_STEPS STEPS NOTE: verifies OUTPUT, appends a row.
row() {
    local tool=$1 artifact=$2 name=$3 output=$4 prep=$5 steps=$6 note=$7 ok=true sha req bytes wall cpu rss user sys pcpu=- prss=-
    sha=$(sha256sum "$output" | cut -d' ' -f1)
    [[ $sha == "$V2_SHA" ]] || { ok=false; FAILED+=("$tool"); log "MISMATCH: $tool gave $sha, v2 is $V2_SHA"; }
    rm -f "$output"   # 512 MiB each; only the hash is kept
    read -r req bytes < <(http_totals "$name")
    # shellcheck disable=SC2086 # step lists are space-separated names
    read -r wall cpu rss user sys < <(cost $steps)
    # shellcheck disable=SC2086
    [[ $prep == - ]] || read -r _ pcpu prss _ < <(cost $prep)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$artifact" "$bytes" "$req" "$cpu" \
        "$rss" "$user" "$sys" "$wall" "$pcpu" "$prss" "$ok" "$note" >>"$ROWS"
}

rm -rf "$DEV"
mkdir -p "$DEV"
v1_cached() { cat "$V1" >/dev/null; }   # every tool starts with v1 in the page cache

log "xdelta3"
start_server xdelta3
v1_cached
measure xdelta3.fetch curl -fsS -o "$DEV/v2.xdelta" "$URL/xdelta3/v2.xdelta"
measure xdelta3.apply xdelta3 -d -f -s "$V1" "$DEV/v2.xdelta" "$DEV/v2.img"
stop_servers
row xdelta3 "$(stat -c %s "$SRV/xdelta3/v2.xdelta")" xdelta3 "$DEV/v2.img" - "xdelta3.fetch xdelta3.apply" \
    "xdelta3 -9 (source window -B default 64 MiB); device: curl + xdelta3 -d"

for cs in "${CASYNC_SIZES[@]}"; do
    log "casync ($cs chunk size)"
    mlog=$SRV/casync/make-$cs.log
    sizes=$(sed -n 's/^Selected chunk sizes: //p' "$mlog")
    chunks=$(sed -n 's/^Number of chunks: //p' "$mlog")
    avg=$(sed -n 's/^Effective average chunk size: //p' "$mlog")
    start_server "casync-$cs"
    v1_cached
    measure "casync-$cs.extract" casync extract --store="$URL/casync/$cs.castr" --seed="$V1" \
        "$URL/casync/v2-$cs.caibx" "$DEV/v2.img"
    stop_servers
    store=$(find "$SRV/casync/$cs.castr" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
    row "casync ($cs)" "$((store + $(stat -c %s "$SRV/casync/v2-$cs.caibx")))" "casync-$cs" "$DEV/v2.img" - \
        "casync-$cs.extract" "chunk sizes $sizes, $chunks chunks, effective average $avg; artifact = index + whole store; device: casync extract --seed=v1 over casync-http (it chunks v1 itself)"
done

log "zchunk"
mkdir -p "$DEV/zchunk"
v1_cached
measure zchunk.prep zck -o "$DEV/zchunk/v1.zck" "$V1"
start_server zchunk
(cd "$DEV/zchunk" && measure zchunk.fetch zckdl --fail-no-ranges --source "$DEV/zchunk/v1.zck" "$URL/zchunk/v2.zck")
stop_servers
(cd "$DEV/zchunk" && measure zchunk.unzck unzck v2.zck)
zchunks=$(zck_read_header "$SRV/zchunk/v2.zck" | sed -n 's/^Chunk count: //p')
row zchunk "$(stat -c %s "$SRV/zchunk/v2.zck")" zchunk "$DEV/zchunk/v2" zchunk.prep "zchunk.fetch zchunk.unzck" \
    "zck defaults (zstd, automatic chunking): $zchunks chunks, average $((SIZE / zchunks / 1024)) KiB; prep = zck v1 on the device (v1.zck $(stat -c %s "$DEV/zchunk/v1.zck") bytes kept as the delta source); device: zckdl --source v1.zck + unzck"

log "zstd -19 (whole image)"
start_server zstd
v1_cached
measure zstd.fetch curl -fsS -o "$DEV/v2.zst" "$URL/zstd/v2.zst"
measure zstd.decompress zstd -q -d -f "$DEV/v2.zst" -o "$DEV/v2.img"
stop_servers
row "zstd -19 (whole v2)" "$(stat -c %s "$SRV/zstd/v2.zst")" zstd "$DEV/v2.img" - "zstd.fetch zstd.decompress" \
    "reference: no delta; device: curl + zstd -d"

log "zstd -19 --patch-from=v1"
start_server zstd-patch
v1_cached
measure zstd-patch.fetch curl -fsS -o "$DEV/v2.patch.zst" "$URL/zstd/v2.patch.zst"
# The window covers the whole image: the decoder needs that much memory, and holds v1 besides.
measure zstd-patch.decompress zstd -q -d -f --patch-from="$V1" --long=30 --memory="$((SIZE >> 20))MB" \
    "$DEV/v2.patch.zst" -o "$DEV/v2.img"
stop_servers
row "zstd -19 --patch-from" "$(stat -c %s "$SRV/zstd/v2.patch.zst")" zstd-patch "$DEV/v2.img" - \
    "zstd-patch.fetch zstd-patch.decompress" \
    "reference: known base, --long=30; device: curl + zstd -d --patch-from=v1 --memory=$((SIZE >> 20))MB"
rm -rf "$DEV"

# --- report -------------------------------------------------------------------------------------

python3 - "$ROWS" "$OUT/peers.json" "$OUT/peers.md" "$(date -u +%F)" "$(nproc)" "$((SIZE >> 20))" <<'PY'
import json, sys
rows_tsv, json_path, md_path, day, cores, mib = sys.argv[1:]
keys = ["tool", "artifact_bytes", "bytes", "requests", "device_cpu_s", "device_rss_kib", "device_user_s",
        "device_sys_s", "device_wall_s", "prep_cpu_s", "prep_rss_kib", "ok", "note"]
num = lambda v: None if v == "-" else (float(v) if "." in v else int(v))
rows = []
for line in open(rows_tsv, encoding="utf-8"):
    r = dict(zip(keys, line.rstrip("\n").split("\t")))
    for k in keys[1:-2]:
        r[k] = num(r[k])
    r["ok"] = r["ok"] == "true"
    rows.append(r)
with open(json_path, "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=1)
    f.write("\n")
mb = lambda b: f"{b / 1e6:.2f}"
out = [f"## Delta peers: device holds rootfs-v1, gets rootfs-v2 ({mib} MiB ext4) over loopback HTTP ({day}, {cores} cores)",
       "",
       "| tool | served artifact MB | downloaded MB | requests | device CPU s (user + sys) | device peak RSS MiB | device wall s | prep CPU s (RSS MiB) | sha256 ok |",
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
for r in rows:
    prep = "-" if r["prep_cpu_s"] is None else f"{r['prep_cpu_s']:.2f} ({r['prep_rss_kib'] / 1024:.1f})"
    out.append(f"| {r['tool']} | {mb(r['artifact_bytes'])} | {mb(r['bytes'])} | {r['requests']} | "
               f"{r['device_cpu_s']:.2f} ({r['device_user_s']:.2f} + {r['device_sys_s']:.2f}) | "
               f"{r['device_rss_kib'] / 1024:.1f} | {r['device_wall_s']:.2f} | {prep} | {'yes' if r['ok'] else 'NO'} |")
out += ["", "Notes:"] + [f"- {r['tool']}: {r['note']}" for r in rows]
out += ["", "Downloaded = HTTP response bodies counted by bench/lib/range_server.py (multipart framing included). "
        "Device CPU = user+sys of the download and reconstruction steps (children included); RSS = largest step; "
        "sys time follows each tool's I/O on the 512 MiB images (xdelta3 and unzck write every block, casync and zstd "
        "leave zero runs sparse; casync also reads and chunks all of v1) and varies by about 1 s between runs; wall times are indicative only (shared machine). "
        "Prep = work the device does before it can ask for the delta."]
text = "\n".join(out) + "\n"
open(md_path, "w", encoding="utf-8").write(text)
print(text, end="")
PY
log "done in $SECONDS s: $OUT/peers.json, $OUT/peers.md"
((${#FAILED[@]} == 0)) || die "reconstruction differs from v2 for: ${FAILED[*]}"
