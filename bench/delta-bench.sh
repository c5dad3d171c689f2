#!/usr/bin/env bash
# Benchmark: rustupdate's full artifact and delta patch side by side with the delta tools of our
# peers, in one run, on the bench pair of bench/rootfs-images.sh (a device holds rootfs-v1.ext4 and
# updates to rootfs-v2.ext4, 512 MiB ext4 each), and the goals of docs/bandwidth.md checked.
#
#   bench/delta-bench.sh [--enforce]   (root: loop devices, apt-get, and the images when missing)
#
# --enforce: exit 2 when a goal that docs/bandwidth.md calls met is missed (each MISS is listed);
# without it a miss is printed as MISS and the run passes. Goals the docs call not met are printed
# but never enforced. Every limit can be tightened from the environment to see a miss (GOAL_* below,
# e.g. `GOAL_DELTA_RSS_MIB=4 bench/delta-bench.sh --enforce` exits 2). No enforced goal is a wall
# time (the delta's wall against the full install's is printed, never enforced): the run is meant
# to share the cores (ci/test.sh runs it niced beside QEMU boots); CPU time, peak RSS and bytes
# change little with that.
#
# Server side (built niced with the release `rustupdate-artifact`, signed with a bench key):
#   v2.rua               build --level 19 (format version 2, the default)
#   v2-format1.rua       build --format-version 1 --level 19
#   v2.rudelta           delta --base rootfs-v1.ext4 --target v2.rua (known base, default level 19)
#   v2-anybase.rudelta   delta --base-index: from the index the simulated device makes of its slot
#                        with `rustupdate index` (any base; made in every run, ~6 s)
# kept in build/bench/delta/ours/srv and remade when the images, the tool binary, the bench key or
# the recipe change (about 2 min of both cores; REBUILD=1 forces).
#
# Device side: a simulated device as in bench/install-bench.sh (slot a = a copy of v1, active;
# slot b = a loop device over a file, or the file when loop devices are unavailable; GRUB env from
# grub-editenv; the bench public key as the trusted key). Before each measured run the device is
# reset: empty data dir, fresh grubenv, slot b rewritten with v1 (the inactive slot holds the
# previous release), v1 in the page cache as for the peers. Each run is one
# `rustupdate -c CONF install [--delta URL] URL` over loopback HTTP (bench/lib/range_server.py, one
# server per run; bytes and requests from its log) under /usr/bin/time (user and sys CPU, peak RSS):
#   full v2 (FULL_RUNS times, default 3), full v2 in format version 1, the known-base delta
#   (DELTA_RUNS times, default 3), the any-base delta, and the wrong base: slot a then holds
#   another build of v1 (the same files, another filesystem UUID: every metadata checksum
#   differs), and both patches must fall back to the full artifact (the log says "falling back to
#   the full artifact"); what they cost beyond a plain full install is the waste of a wrong base.
# After each run slot b's first 512 MiB must hash to v2 and slot a must hold what it held.
# Slot a is a loop device as well (where slot b is one), its cache dropped before each run: the
# MiB read of the booted slot are the sectors its /sys/block/*/stat counts during the run, what
# reached the device whatever the client asked of the page cache (the delta rows log what the
# patch copies and refers to, and what the client asked for, in a "base slot a:" line).
# A row's CPU is the median run's; peak RSS is the maximum over the row's runs (the goals on memory
# are budgets, so they are checked on the maximum).
#
# Peers: bench/delta-peers.sh runs first (it caches its own server-side files) and its
# build/bench/delta/peers.json is merged into the table; bench/apt-download.sh gives what apt would
# download for the same change (cached), the figure the any-base total is compared with.
#
# Output: a markdown table and a goals list on stdout and in build/bench/delta/results.md, the
# same as JSON in build/bench/delta/results.json. Exit status 1 when a reconstruction is wrong, an
# install fails or a fallback did not happen (also for a peer); 2 with --enforce when an enforced
# goal is missed.
# CLIENT=PATH measures another client binary on the device side (e.g. the previous revision's
# release build, for a before/after); the server side is always this tree's.
# Run time on 2 shared cores: 8-10 min the first time (peers included), 2-3 min cached (most of it
# the release build when the tree changed, and the peers).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# device_config: the simulated device's rustupdate.toml.
# shellcheck source=lib/device-config.sh
source "$ROOT/bench/lib/device-config.sh"
OUT=$ROOT/build/bench/delta
OURS=$OUT/ours
SRV=$OURS/srv     # what the update server holds
DEV=$OURS/dev     # the simulated device
LOGS=$OURS/logs
SERVER=$ROOT/bench/lib/range_server.py
FULL_RUNS=${FULL_RUNS:-3}     # the full install is measured this many times (its RSS has a goal)
DELTA_RUNS=${DELTA_RUNS:-3}   # the known-base delta install is measured this many times
# Another build of v1 on the wrong-base device: the same files, another filesystem UUID.
WRONG_BASE_UUID=5f0c9e1a-4b7d-4c2e-9a61-3d8e2f7b1c04
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}   # artifact creation time: reproducible
ENFORCE=0
for arg in "$@"; do
    case $arg in
    --enforce) ENFORCE=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "delta-bench.sh: unknown argument $arg (see --help)" >&2; exit 64 ;;
    esac
done
mkdir -p "$SRV" "$DEV" "$LOGS"

log() { printf '[delta-bench %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
for t in zstd:zstd grub-editenv:grub-common python3:python3 losetup:mount tune2fs:e2fsprogs; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    # ci/apt-install.sh waits for apt's lock: in CI this runs beside the e2e set-up's installs.
    "$ROOT/ci/apt-install.sh" "${need[@]}"
fi

# --- cleanup: every server and loop device this script starts is stopped on exit ----------------

# start_server, stop_servers, SERVER_PIDS, LOOP and cleanup (stops them, detaches LOOP).
# shellcheck source=lib/range-server.sh
source "$ROOT/bench/lib/range-server.sh"
LOOP_A=""   # the loop device over slot a (below), detached on exit as well
trap 'cleanup; [[ -z $LOOP_A ]] || losetup -d "$LOOP_A" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

# --- inputs: images, binaries, peers ------------------------------------------------------------

bench/rootfs-images.sh >/dev/null
V1=$ROOT/build/bench/rootfs-v1.ext4
V2=$ROOT/build/bench/rootfs-v2.ext4
SIZE=$(stat -c %s "$V2")
((SIZE == $(stat -c %s "$V1"))) || die "v1 and v2 differ in size"
V1_SHA=$(sha256sum "$V1" | cut -d' ' -f1)
V2_SHA=$(sha256sum "$V2" | cut -d' ' -f1)

log "building the release binaries"
nice -n 10 cargo build --release --locked -p rustupdate -p rustupdate-artifact 2>&1 | tail -n 1 >&2
CLIENT=${CLIENT:-$ROOT/target/release/rustupdate}   # CLIENT=PATH: another client, for a before/after
TOOL=$ROOT/target/release/rustupdate-artifact

FAILED=()
APT_JSON=$ROOT/build/bench/apt-download.json
log "apt: bench/apt-download.sh (its log: $OURS/apt-download.log)"
if ! bench/apt-download.sh >"$OURS/apt-download.log" 2>&1; then
    tail -n 5 "$OURS/apt-download.log" >&2
    log "no apt figure (the Debian mirror is needed the first time): the apt comparison is left out"
    APT_JSON=""
fi
PEERS_START=$(date +%s)
log "peers: bench/delta-peers.sh (its log: $OURS/peers.log)"
if ! bench/delta-peers.sh >"$OURS/peers.log" 2>&1; then
    tail -n 5 "$OURS/peers.log" >&2
    FAILED+=("bench/delta-peers.sh")
fi
PEERS_JSON=$OUT/peers.json
if [[ ! -f $PEERS_JSON ]] || (($(stat -c %Y "$PEERS_JSON") < PEERS_START)); then
    log "no fresh $PEERS_JSON: the peer rows are left out"
    PEERS_JSON=""
fi

# --- server side: make (or reuse) our artifacts -------------------------------------------------

# A fixed bench key: signatures (ed25519) are deterministic, so the artifacts are as well.
if [[ ! -f $OURS/bench.key.pem || ! -f $OURS/bench.pub.pem ]]; then
    rm -f "$OURS/bench.key.pem" "$OURS/bench.pub.pem"
    "$TOOL" keygen -o "$OURS/bench" >/dev/null
fi
RECIPE="build --level 19; build --format-version 1 --level 19; delta --base v1; created $SOURCE_DATE_EPOCH"
key=$({
    echo "$RECIPE"
    echo "v1 $V1_SHA v2 $V2_SHA"
    sha256sum "$TOOL" "$OURS/bench.pub.pem" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1)
BUILD_S=()   # "name seconds" of the steps made in this run
if [[ ${REBUILD:-0} == 1 || ! -f $SRV/.key || $(cat "$SRV/.key") != "$key" ]]; then
    log "making our artifacts at zstd -19 (about 2 min of both cores, niced)"
    rm -f "$SRV"/* "$SRV/.key"
    # make_step NAME TOOL_ARGS...: one niced rustupdate-artifact step, timed.
    make_step() {
        local name=$1 start=$SECONDS
        shift
        nice -n 10 "$TOOL" "$@" >>"$LOGS/make.log" 2>&1 || die "rustupdate-artifact $* failed (see $LOGS/make.log)"
        BUILD_S+=("$name $((SECONDS - start))")
        log "  $name: $((SECONDS - start)) s"
    }
    : >"$LOGS/make.log"
    common=(--image "$V2" --name rootfs --version 2 --device-type bench --key "$OURS/bench.key.pem" --level 19)
    make_step v2.rua build "${common[@]}" -o "$SRV/v2.rua"
    make_step v2-format1.rua build "${common[@]}" --format-version 1 -o "$SRV/v2-format1.rua"
    make_step v2.rudelta delta --base "$V1" --target "$SRV/v2.rua" --key "$OURS/bench.pub.pem" -o "$SRV/v2.rudelta"
    echo "$key" >"$SRV/.key"
else
    log "our artifacts are up to date in $SRV (REBUILD=1 remakes them)"
fi

# --- the simulated device -----------------------------------------------------------------------

# A loop device left over slot b by a run that was killed (SIGKILL skips the trap).
for stale in $(losetup --list --noheadings --output NAME --associated "$DEV/slot-b.img" 2>/dev/null); do
    losetup -d "$stale" || true
done
rm -rf "$DEV"
mkdir -p "$DEV/keys" "$DEV/boot" "$DEV/health.d"
cp --sparse=always "$V1" "$DEV/slot-a.img"
truncate -s "$SIZE" "$DEV/slot-b.img"
if LOOP=$(losetup --find --show "$DEV/slot-b.img" 2>/dev/null); then
    TARGET=$LOOP
else
    LOOP=""
    TARGET=$DEV/slot-b.img
fi
log "slot b: $TARGET"
# Slot a (the booted slot, the delta's base) on a loop device of its own where one can be had:
# its /sys/block/*/stat counts what an install reads of the base at the device, whatever the
# client asks of the page cache; its cache is dropped before each run (a cold base).
SLOT_A=$DEV/slot-a.img
for stale in $(losetup --list --noheadings --output NAME --associated "$DEV/slot-a.img" 2>/dev/null); do
    losetup -d "$stale" || true
done
if [[ -n $LOOP ]] && LOOP_A=$(losetup --find --show "$DEV/slot-a.img" 2>/dev/null); then
    SLOT_A=$LOOP_A
fi
log "slot a: $SLOT_A"
# The wrong-base device's slot a: v1 as another build would make it (tune2fs rewrites the metadata
# checksums, which are seeded from the UUID; e2fsck first, as tune2fs requires).
cp --sparse=always "$V1" "$DEV/wrong-base.img"
e2fsck -fy "$DEV/wrong-base.img" >"$LOGS/wrong-base.log" 2>&1 || true
tune2fs -U "$WRONG_BASE_UUID" "$DEV/wrong-base.img" >>"$LOGS/wrong-base.log" 2>&1 </dev/null ||
    die "tune2fs -U failed (see $LOGS/wrong-base.log)"
WRONG_BASE_SHA=$(sha256sum "$DEV/wrong-base.img" | cut -d' ' -f1)
[[ $WRONG_BASE_SHA != "$V1_SHA" ]] || die "the wrong base is v1"
cp "$OURS/bench.pub.pem" "$DEV/keys/"
printf 'rustupdate.slot=a\n' >"$DEV/cmdline"
device_config "$DEV" --device-type bench --slot-a "$SLOT_A" --slot-b "$TARGET" >"$DEV/rustupdate.toml"

# The state before every run: booted from a, nothing installed, b holds the previous release (v1).
reset_device() {
    rm -rf "$DEV/data"
    mkdir -p "$DEV/data"
    rm -f "$DEV/boot/grubenv"
    grub-editenv "$DEV/boot/grubenv" create
    grub-editenv "$DEV/boot/grubenv" set rustupdate_slot=a upgrade_available=0 bootcount=0 bootlimit=3
    dd if="$V1" of="$TARGET" bs=1M conv=fsync status=none
    sync
    cat "$DEV/slot-a.img" >/dev/null   # v1 in the page cache, as for every peer
    # ... under slot a's loop device, whose own cache is dropped: what the client reads of the
    # base reaches the device and is counted there.
    [[ -z $LOOP_A ]] || blockdev --flushbufs "$LOOP_A"
}

# base_reads: "reads sectors" read from slot a's loop device so far ("- -" without one).
base_reads() {
    if [[ -n $LOOP_A ]]; then awk '{print $1, $3}' "/sys/block/${LOOP_A#/dev/}/stat"; else echo "- -"; fi
}

RUNS_TSV=$LOGS/runs.tsv
: >"$RUNS_TSV"

# run NAME[.N] LABEL EXPECT_FALLBACK(yes|no) INSTALL_ARGS...: one measured install (runs of one
# row share NAME); URLs in the arguments are written as @/FILE and become $URL/FILE. Appends
# "name label wall user sys rss ok" to $RUNS_TSV.
run() {
    local name=$1 label=$2 fallback=$3 ok=true arg args=() sha
    shift 3
    log "$label ($name)"
    reset_device
    start_server "$name"
    for arg in "$@"; do args+=("${arg/#@/$URL}"); done
    local before after reads=- mib=-
    before=$(base_reads)
    # RUST_LOG=info whatever the caller's environment says: the write summary is an info line.
    if ! /usr/bin/time -f '%e %U %S %M' -o "$LOGS/$name.time" \
        env RUST_LOG=info "$CLIENT" -c "$DEV/rustupdate.toml" install "${args[@]}" \
        >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
        tail -n 20 "$LOGS/$name.err" >&2
        log "FAILED: $label: the install failed"
        ok=false
    fi
    after=$(base_reads)
    if [[ $before != "- -" ]]; then
        read -r r0 s0 <<<"$before"
        read -r r1 s1 <<<"$after"
        reads=$((r1 - r0))
        mib=$(awk -v s=$((s1 - s0)) 'BEGIN { printf "%.1f", s * 512 / 1048576 }')
    fi
    stop_servers
    sha=$(head -c "$SIZE" "$TARGET" | sha256sum | cut -d' ' -f1)
    if [[ $sha != "$V2_SHA" ]]; then
        log "MISMATCH: $label: slot b holds $sha, v2 is $V2_SHA"
        ok=false
    fi
    if [[ $fallback == yes ]] && ! grep -q "falling back to the full artifact" "$LOGS/$name.err"; then
        log "FAILED: $label: no fallback to the full artifact in the log"
        ok=false
    fi
    if [[ $fallback == no ]] && grep -q "falling back" "$LOGS/$name.err"; then
        log "FAILED: $label: fell back to the full artifact: $(grep -m1 "falling back" "$LOGS/$name.err")"
        ok=false
    fi
    $ok || FAILED+=("$label")
    # The last line: GNU time puts "Command exited with non-zero status N" before it on a failure.
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$label" "$(tail -n 1 "$LOGS/$name.time" | tr ' ' '\t')" "$ok" \
        "$reads" "$mib" >>"$RUNS_TSV"
}

for i in $(seq "$FULL_RUNS"); do   # the full install's RSS has a goal: several runs, the maximum
    run "full.$i" "rustupdate full v2" no @/v2.rua
done
run format1 "rustupdate v1 format" no @/v2-format1.rua
for i in $(seq "$DELTA_RUNS"); do   # the row with goals on CPU and RSS
    run "delta.$i" "rustupdate delta, known base" no --delta @/v2.rudelta @/v2.rua
done
# Any base: the device sends the index of its slot (an upload: counted, not downloaded), the
# server side makes a patch from the index alone (the device's image is not needed).
log "any base: the device's block index (rustupdate index), a patch from it"
/usr/bin/time -f '%e %U %S %M' -o "$LOGS/index.time" \
    "$CLIENT" -c "$DEV/rustupdate.toml" index -o "$LOGS/device.ruindex" >"$LOGS/index.out" 2>&1 ||
    die "rustupdate index failed (see $LOGS/index.out)"
index_start=$SECONDS
nice -n 10 "$TOOL" delta --base-index "$LOGS/device.ruindex" --target "$SRV/v2.rua" -o "$SRV/v2-anybase.rudelta" \
    >>"$LOGS/make.log" 2>&1 || die "delta --base-index failed (see $LOGS/make.log)"
BUILD_S+=("v2-anybase.rudelta $((SECONDS - index_start))")
run anybase "rustupdate delta, any base (device index)" no --delta @/v2-anybase.rudelta @/v2.rua
[[ $(sha256sum "$DEV/slot-a.img" | cut -d' ' -f1) == "$V1_SHA" ]] ||
    { log "MISMATCH: slot a (the active slot) no longer holds v1"; FAILED+=("slot a"); }
# The wrong base: slot a holds another build of v1; both patches were made for v1.
cp --sparse=always "$DEV/wrong-base.img" "$DEV/slot-a.img"
[[ -z $LOOP_A ]] || blockdev --flushbufs "$LOOP_A"
run wrongbase "rustupdate delta, known base, wrong base (falls back)" yes --delta @/v2.rudelta @/v2.rua
run wrongbase_any "rustupdate delta, any base, stale index (falls back)" yes --delta @/v2-anybase.rudelta @/v2.rua
[[ $(sha256sum "$DEV/slot-a.img" | cut -d' ' -f1) == "$WRONG_BASE_SHA" ]] ||
    { log "MISMATCH: slot a (the active slot) no longer holds the wrong base"; FAILED+=("slot a"); }
cp --sparse=always "$V1" "$DEV/slot-a.img"
[[ -z $LOOP_A ]] || losetup -d "$LOOP_A"
LOOP_A=""
cleanup
rm -f "$DEV/slot-a.img" "$DEV/slot-b.img" "$DEV/wrong-base.img"   # 512 MiB each; the logs stay

# --- report -------------------------------------------------------------------------------------

# Goals (docs/bandwidth.md): the limits, tightened from the environment only to see a miss.
export GOAL_FULL_RATIO=${GOAL_FULL_RATIO:-1.05}         # full artifact / zstd -19 of the whole image
export GOAL_DELTA_BYTES=${GOAL_DELTA_BYTES:-2100000}    # known base: patch and head, downloaded
export GOAL_ANYBASE_BYTES=${GOAL_ANYBASE_BYTES:-4000000} # any base: patch, head and index upload
export GOAL_DELTA_CPU_S=${GOAL_DELTA_CPU_S:-1.5}        # delta install user+sys (median run)
export GOAL_DELTA_RSS_MIB=${GOAL_DELTA_RSS_MIB:-12}     # delta installs (known and any base) peak RSS (max of runs), strictly below
export GOAL_WRITTEN_MIB=${GOAL_WRITTEN_MIB:-166}        # written to a slot that holds v1
export GOAL_FULL_RSS_MIB=${GOAL_FULL_RSS_MIB:-16}       # full install peak RSS (max of runs), strictly below
export GOAL_FULL_RSS_TIGHT_MIB=${GOAL_FULL_RSS_TIGHT_MIB:-12} # issue 22's budget for the full install too (not met)
export GOAL_ANY_RSS_MIB=${GOAL_ANY_RSS_MIB:-16}         # every run of ours, fallbacks included, strictly below
export GOAL_BASE_READ_RATIO=${GOAL_BASE_READ_RATIO:-1.1} # delta: read of the booted slot / bytes copied
MISSED=$OUT/missed-enforced.txt
python3 - "$RUNS_TSV" "$LOGS" "$SRV" "${PEERS_JSON:--}" "${APT_JSON:--}" "$OUT/results.json" "$OUT/results.md" \
    "$MISSED" "$(date -u +%F)" "$(nproc)" "$SIZE" "$TARGET" "${BUILD_S[*]:-}" <<'PY'
import json, os, re, statistics, sys
from collections import OrderedDict
(runs_tsv, logs, srv, peers_json, apt_json, json_path, md_path, missed_path, day, cores, size, target,
 built) = sys.argv[1:]
size = int(size)
env = os.environ

# (key, name, op, limit, unit, enforced): enforced = docs/bandwidth.md calls the goal met. Not met
# there, so not enforced: the any-base total with the index upload (4.28 MB on this pair).
GOALS = [
    ("full", "full artifact (format 2, -19) / zstd -19 of the whole image", "<=", float(env["GOAL_FULL_RATIO"]), "x", True),
    ("delta_bytes", "known-base delta, downloaded in total (patch and head)", "<=", float(env["GOAL_DELTA_BYTES"]), "bytes", True),
    ("anybase_bytes", "any-base delta on the wire (patch and head downloaded, index uploaded)", "<=",
     float(env["GOAL_ANYBASE_BYTES"]), "bytes", False),
    ("delta_cpu", "delta install device CPU, user+sys (median of the runs)", "<=", float(env["GOAL_DELTA_CPU_S"]), "s", True),
    ("delta_rss", "delta installs (known and any base) device peak RSS (maximum of the runs)", "<",
     float(env["GOAL_DELTA_RSS_MIB"]), "MiB", True),
    ("written", "MiB written by the delta install, slot b holding v1", "<=", float(env["GOAL_WRITTEN_MIB"]), "MiB", True),
    ("full_rss", "full install device peak RSS (maximum of the runs)", "<", float(env["GOAL_FULL_RSS_MIB"]), "MiB", True),
    ("full_rss_tight", "full install device peak RSS (maximum of the runs), issue 22's budget", "<",
     float(env["GOAL_FULL_RSS_TIGHT_MIB"]), "MiB", False),
    ("any_rss", "every install of ours (v1 format and fallbacks from a wrong base included) device peak RSS", "<",
     float(env["GOAL_ANY_RSS_MIB"]), "MiB", True),
    ("base_read", "known-base delta: MiB read from the booted slot (device, maximum of the runs) / MiB the patch copies",
     "<=", float(env["GOAL_BASE_READ_RATIO"]), "x", True),
    ("delta_wall", "known-base delta wall time / full install wall time (medians)", "<=", 1.0, "x", False),
]

SUMMARY = re.compile(r"slot (?P<slot>.*?): (?P<written>[0-9.]+) MiB written \((?P<data>[0-9.]+) MiB of data, "
                     r"(?P<zeroed>[0-9.]+) MiB zeroed\), (?P<in_place>[0-9.]+) MiB already in place")

def file_size(name):
    return os.stat(f"{srv}/{name}").st_size

def http(name):
    """Totals and per-file requests and bytes of one run's server log."""
    files = OrderedDict()
    for line in open(f"{logs}/{name}.http.jsonl", encoding="utf-8"):
        e = json.loads(line)
        f = files.setdefault(e["path"].split("?")[0].lstrip("/"), {"requests": 0, "bytes": 0})
        f["requests"] += 1
        f["bytes"] += e["bytes"]
    return sum(f["bytes"] for f in files.values()), sum(f["requests"] for f in files.values()), files

def write_summary(name):
    """The slot writer's last summary line: parsed when it has the known format, verbatim if not."""
    lines = [l.rstrip("\n") for l in open(f"{logs}/{name}.err", encoding="utf-8", errors="replace")]
    known = [l for l in lines if SUMMARY.search(l)]
    if known:
        m = SUMMARY.search(known[-1])
        return {"line": known[-1][m.start():], "written_mib": float(m["written"]), "data_mib": float(m["data"]),
                "zeroed_mib": float(m["zeroed"]), "in_place_mib": float(m["in_place"])}
    loose = [l for l in lines if re.search(r"slot .*MiB", l)]
    return {"line": loose[-1] if loose else None, "written_mib": None, "data_mib": None,
            "zeroed_mib": None, "in_place_mib": None}

BASE_USE = re.compile(r"the patch copies (?P<copied>[0-9.]+) MiB and refers to (?P<referenced>[0-9.]+) MiB")

def base_use(name):
    """What the patch uses of the base, from the client's log line (None for a full install)."""
    for l in open(f"{logs}/{name}.err", encoding="utf-8", errors="replace"):
        m = BASE_USE.search(l)
        if m:
            return {"copied_mib": float(m["copied"]), "referenced_mib": float(m["referenced"])}
    return None

index_wall, index_user, index_sys, index_rss = open(f"{logs}/index.time").read().split()[-4:]
index_bytes = os.stat(f"{logs}/device.ruindex").st_size
artifacts = {"full": "v2.rua", "format1": "v2-format1.rua", "delta": "v2.rudelta", "anybase": "v2-anybase.rudelta",
             "wrongbase": "v2.rudelta", "wrongbase_any": "v2-anybase.rudelta"}
uploads = {"anybase": index_bytes, "wrongbase_any": index_bytes}   # the device's index goes to the server
groups = OrderedDict()   # row key -> its runs
for line in open(runs_tsv, encoding="utf-8"):
    name, label, wall, user, sys_s, rss, ok, base_reads, base_mib = line.rstrip("\n").split("\t")
    total, requests, files = http(name)
    groups.setdefault(name.split(".")[0], []).append({
        "base_reads": None if base_reads == "-" else int(base_reads),
        "base_read_mib": None if base_mib == "-" else float(base_mib), "base_use": base_use(name),
        "log": name, "label": label, "bytes": total, "requests": requests, "files": files,
        "device_cpu_s": round(float(user) + float(sys_s), 2), "device_user_s": float(user), "device_sys_s": float(sys_s),
        "device_wall_s": float(wall), "device_rss_kib": int(rss), "ok": ok == "true", "slot_writer": write_summary(name)})
ours = []
for key, runs in groups.items():
    # The run with the median CPU gives the row (its user/sys split, bytes and logs); peak RSS is the
    # maximum over the runs, wall time the median; all runs are kept in the JSON.
    row = dict(sorted(runs, key=lambda r: r["device_cpu_s"])[(len(runs) - 1) // 2])
    row.update(method=row.pop("label"), key=key, artifact=artifacts[key], artifact_bytes=file_size(artifacts[key]),
               device_rss_kib=max(r["device_rss_kib"] for r in runs),
               device_wall_s=round(statistics.median(r["device_wall_s"] for r in runs), 2),
               uploaded=uploads.get(key, 0), ok=all(r["ok"] for r in runs), runs=runs if len(runs) > 1 else None)
    row["on_the_wire"] = row["bytes"] + row["uploaded"]
    mibs = [r["base_read_mib"] for r in runs if r["base_read_mib"] is not None]
    row["base_read_mib"] = max(mibs) if mibs else None   # the most any run read of the base
    ours.append(row)
by_key = {r["key"]: r for r in ours}
full = by_key.get("full")
for k in ("wrongbase", "wrongbase_any"):   # what a wrong base cost over a plain full install
    if k in by_key and full:
        by_key[k]["wasted"] = by_key[k]["on_the_wire"] - full["bytes"]

peers = json.load(open(peers_json, encoding="utf-8")) if peers_json != "-" else []
apt = json.load(open(apt_json, encoding="utf-8")) if apt_json != "-" else None
zstd19 = next((p["artifact_bytes"] for p in peers if p["tool"] == "zstd -19 (whole v2)"), None)

rows = [dict(r, source="rustupdate") for r in ours] + [
    {"method": p["tool"], "artifact_bytes": p["artifact_bytes"], "bytes": p["bytes"], "uploaded": 0,
     "on_the_wire": p["bytes"], "requests": p["requests"],
     "device_cpu_s": p["device_cpu_s"], "device_user_s": p["device_user_s"], "device_sys_s": p["device_sys_s"],
     "device_wall_s": p["device_wall_s"], "device_rss_kib": p["device_rss_kib"], "ok": p["ok"],
     "note": p["note"], "command": p["command"], "source": "bench/delta-peers.sh"} for p in peers]

delta, anybase = by_key.get("delta"), by_key.get("anybase")
values = {
    "full": full["artifact_bytes"] / zstd19 if full and zstd19 else None,
    "delta_bytes": delta and delta["bytes"],
    "anybase_bytes": anybase and anybase["on_the_wire"],
    "delta_cpu": delta and delta["device_cpu_s"],
    "delta_rss": delta and anybase and max(delta["device_rss_kib"], anybase["device_rss_kib"]) / 1024,
    "written": delta and delta["slot_writer"]["written_mib"],
    "full_rss": full and full["device_rss_kib"] / 1024,
    "full_rss_tight": full and full["device_rss_kib"] / 1024,
    "any_rss": ours and max(r["device_rss_kib"] for r in ours) / 1024,
    "base_read": (delta["base_read_mib"] / delta["base_use"]["copied_mib"]
                  if delta and delta["base_read_mib"] is not None and delta["base_use"] else None),
    "delta_wall": delta["device_wall_s"] / full["device_wall_s"] if delta and full else None,
}
goals = []
for key, name, op, limit, unit, enforced in GOALS:
    value = values[key]
    passed = value is not None and (value < limit if op == "<" else value <= limit)
    goals.append({"key": key, "goal": name, "value": value, "op": op, "limit": limit, "unit": unit,
                  "enforced": enforced, "status": "n/a" if value is None else ("PASS" if passed else "MISS")})

def mb(b):
    return f"{b / 1e6:.2f}"

out = [f"## rustupdate vs peers: a device holding rootfs-v1 gets rootfs-v2 ({size >> 20} MiB ext4) over loopback HTTP "
       f"({day}, {cores} cores)", "",
       "| method | served artifact MB | bytes downloaded | bytes uploaded | HTTP requests | device user s | device sys s | device peak RSS MiB | device wall s | MiB read of the booted slot | result ok |",
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
for r in rows:
    base = "" if r.get("base_read_mib") is None else f"{r['base_read_mib']:.1f}"
    out.append(f"| {r['method']} | {mb(r['artifact_bytes'])} | {r['bytes']:,} | {r['uploaded']:,} | {r['requests']} | "
               f"{r['device_user_s']:.2f} | {r['device_sys_s']:.2f} | "
               f"{r['device_rss_kib'] / 1024:.1f} | {r['device_wall_s']:.2f} | {base} | {'yes' if r['ok'] else 'NO'} |")
if apt:
    out.append(f"| apt-get: the .debs of the change (bench/apt-download.sh) | | {apt['total_bytes']:,} | | "
               f"{len(apt['debs'])} | | | | | |")
out += ["", "Goals (enforced with --enforce: the ones docs/bandwidth.md calls met):", ""]
for g in goals:
    if g["value"] is None:
        shown = "not measured"
    elif g["key"] == "base_read":
        use = delta["base_use"]
        shown = (f"{g['value']:.2f}x ({delta['base_read_mib']:.1f} MiB read for {use['copied_mib']:.1f} MiB of "
                 f"copies; {delta['base_read_mib'] / (use['copied_mib'] + use['referenced_mib']):.2f}x of copies "
                 f"and frame references, {use['referenced_mib']:.1f} MiB)")
    elif g["key"] == "delta_wall":
        shown = f"{g['value']:.2f}x ({delta['device_wall_s']:.2f} s against {full['device_wall_s']:.2f} s)"
    elif g["unit"] == "x":
        shown = f"{g['value']:.3f}x (artifact {full['artifact_bytes']:,} B, zstd -19 {zstd19:,} B)"
    elif g["unit"] == "bytes":
        shown = f"{g['value']:,} B ({mb(g['value'])} MB)"
    else:
        shown = f"{g['value']:.2f} {g['unit']}"
    limit = {"bytes": f"{g['limit'] / 1e6:.2f} MB", "x": f"{g['limit']}x"}.get(g["unit"], f"{g['limit']} {g['unit']}")
    tag = "enforced" if g["enforced"] else "not enforced: documented as not met"
    out.append(f"- {g['goal']}: {shown}; goal {g['op']} {limit}: **{g['status']}** ({tag})")
out += ["", "Our runs:", ""]
for r in ours:
    files = "; ".join(f"{f}: {v['requests']} request{'s' if v['requests'] != 1 else ''}, {v['bytes']:,} B" for f, v in r["files"].items())
    sw = r["slot_writer"]
    writer = sw["line"] if sw["line"] else "no slot writer summary in the log"
    if r["runs"]:
        cpus, rsss = [x["device_cpu_s"] for x in r["runs"]], [x["device_rss_kib"] / 1024 for x in r["runs"]]
        writer += (f". {len(r['runs'])} runs: CPU {min(cpus):.2f}-{max(cpus):.2f} s (median in the table), "
                   f"peak RSS {min(rsss):.1f}-{max(rsss):.1f} MiB (maximum in the table)")
    if r["base_read_mib"] is not None:
        reads = [x["base_reads"] for x in (r["runs"] or [r])]
        writer += f". Read of the booted slot (its loop device): {r['base_read_mib']:.1f} MiB at most, in {min(reads)}-{max(reads)} reads"
    if "wasted" in r:
        reason = next((l.split("] ", 1)[-1] for l in open(f"{logs}/{r['log']}.err", encoding="utf-8", errors="replace")
                       if "falling back to the full artifact" in l), "no fallback in the log").strip()
        writer += (f". Wasted over a plain full install: {r['wasted']:,} B (the whole patch and the head"
                   f"{', and the index upload' if r['uploaded'] else ''}). The client said: {reason}")
    out.append(f"- {r['method']} (`{r['artifact']}`, {r['artifact_bytes']:,} B): {files}. Slot writer: {writer}")
out.append(f"- Any base: `rustupdate index` on the device took {float(index_user):.2f} s user + {float(index_sys):.2f} s sys, "
           f"{int(index_rss) / 1024:.1f} MiB peak RSS, and wrote a {index_bytes:,} B index (the upload).")
if apt and anybase and delta:
    out.append(f"- apt would download {apt['total_bytes']:,} B for the same change ({len(apt['debs'])} .debs, "
               "bench/apt-download.sh); on the wire the any-base delta is "
               f"{anybase['on_the_wire'] / apt['total_bytes']:.2f}x that and the known-base delta "
               f"{delta['bytes'] / apt['total_bytes']:.2f}x.")
out += ["",
        f"Device: slot b = {target} filled with v1 before each run; a run is one `rustupdate install` (with `--delta` for "
        "the delta rows) under /usr/bin/time; v1 is in the page cache, as for the peers. Bytes downloaded = HTTP response "
        "bodies counted by bench/lib/range_server.py; the delta rows also fetch the head of v2.rua; bytes uploaded = the "
        "block index the any-base device sends. The wrong-base rows run on a device whose slot a holds another build of "
        "v1 (another filesystem UUID): the client must fall back to the full artifact. Every result was compared with "
        "v2's sha256. MB = 10^6 bytes. Peer rows come from bench/delta-peers.sh (their settings in "
        "build/bench/delta/peers.md)."]
if built:
    out.append(f"Server side made in this run (seconds, niced, 2 cores): {built}.")
text = "\n".join(out) + "\n"
open(md_path, "w", encoding="utf-8").write(text)
with open(json_path, "w", encoding="utf-8") as f:
    json.dump({"date": day, "cores": int(cores), "image_bytes": size, "zstd19_whole_bytes": zstd19,
               "apt_bytes": apt and apt["total_bytes"], "index_upload_bytes": index_bytes,
               "rows": rows, "goals": goals}, f, indent=1)
    f.write("\n")
with open(missed_path, "w", encoding="utf-8") as f:
    for g in goals:
        if g["enforced"] and g["status"] != "PASS":
            f.write(f"{g['goal']}: {g['value']} (goal {g['op']} {g['limit']} {g['unit']}): {g['status']}\n")
print(text, end="")
PY
log "done in $SECONDS s: $OUT/results.md, $OUT/results.json"
((${#FAILED[@]} == 0)) || die "wrong or failed: ${FAILED[*]}"
if [[ -s $MISSED ]]; then
    while read -r line; do log "MISS: $line"; done <"$MISSED"
    if ((ENFORCE)); then
        log "error: $(wc -l <"$MISSED") enforced goal(s) missed"
        exit 2
    fi
    log "goals missed (not enforced without --enforce)"
fi
