#!/usr/bin/env bash
# Fleet server load benchmark: rustupdate-server on SQLite and on PostgreSQL, side by side with
# gooseBit (PyPI `goosebit`, a hawkBit DDI server in Python) deployed as its project deploys it
# for production, on this machine, loopback only. docs/fleet-load.md explains what is measured,
# gooseBit's settings and where they come from, and keeps the results table.
#
# Usage: bench/fleet-load.sh [--quick] [--with-all] [--enforce] [--no-sqlite] [--no-postgres]
#                            [--no-goosebit] [--no-deploy] [--table]
#   --quick        CI-sized run: rustupdate-server on SQLite only (unless --with-all), debug build,
#                  FL_DEVICES (default 500) devices every 10 s, 10 s phases; fails on any error
#                  against rustupdate-server.
#   --with-all     with --quick: also PostgreSQL and gooseBit (at the quick sizes).
#   --enforce      exit 1 unless every target this run measured is met (see "Targets" below).
#   --no-sqlite    skip rustupdate-server on SQLite.
#   --no-postgres  skip rustupdate-server on PostgreSQL.
#   --no-goosebit  skip gooseBit.
#   --no-deploy    skip the deployment phase (rollout + feedback path).
#   --table        run nothing: rebuild results.json and the table from the per-run JSON files
#                  left in build/fleet-load/ (e.g. after re-running one server alone).
# Sizes can be overridden from the environment: FL_DEVICES, FL_INTERVAL, FL_DURATION (interval
# phase), FL_FIXED_DEVICES, FL_FIXED_INTERVAL, FL_FIXED_DURATION (fixed-rate phase),
# FL_MAX_CONNECTIONS, FL_MAX_DEVICES, FL_MAX_DURATION (max phase), FL_GOOSEBIT_DBS (gooseBit
# databases, default "postgres sqlite"), GOOSEBIT_VERSION.
#
# Per server, in this order, against a fresh database:
#   0. register: every one of the FL_DEVICES devices sends its first-contact configData once
#      (32 connections); not a comparison, but every later phase starts from registered devices;
#   1. fixed: FL_FIXED_DEVICES devices, each polling once per FL_FIXED_INTERVAL s: a rate gooseBit
#      sustains, where server CPU and RSS are compared;
#   2. max: FL_MAX_CONNECTIONS keep-alive connections polling back to back over FL_MAX_DEVICES of
#      the registered devices (the same concurrency for every server): sustained throughput;
#   3. interval: FL_DEVICES devices, each polling once per FL_INTERVAL s (the fleet target);
#   4. deploy (rustupdate-server only): a foreign 1 MiB artifact and a one-phase rollout to all
#      bench-board devices are created with `rustupdate-server artifact upload` / `rollout create`,
#      then every device polls once more and runs the deployment (deploymentBase, proceeding
#      feedback, 1 KiB Range download, closed/success feedback).
# Phases 1-3 send polls only (no rollout on any server); their warm-up ends when every device has
# finished one cycle (the first full pass), and only then is measured. gooseBit gets phases 0-3: a
# rollout there needs a user, a parsed .swu upload and a feed per device through its UI API.
#
# Per run the script records the server's CPU (utime+stime of the server and its child processes
# from /proc over exactly the measured window; PostgreSQL's processes summed separately), its peak
# RSS in the window (VmHWM, reset through /proc/PID/clear_refs when the window starts), and
# backlog_s: how long the server kept more than a tenth of a core busy after the load stopped (an
# overloaded server works off requests whose clients have given up). A run is `steady` when it had
# no errors, no late cycles, a complete first-pass warm-up and a backlog under BACKLOG_LIMIT_S;
# otherwise `not_steady` says why, and no ratio is published from it. Ratios compare
# rust-sqlite with the best steady gooseBit run of the same phase.
#
# Targets (docs/fleet-load.md, DESIGN.md section 6): interval phase on SQLite and on PostgreSQL
# (each that ran) poll p99 < 50 ms and no errors; server peak RSS < 100 MiB in every phase; no
# errors and no backlog in any rustupdate-server phase; max-phase polls/s >= 10x gooseBit's when gooseBit ran steadily. The full
# run measures the p99 target at its size (10,000 devices at 60 s); --quick at its smaller load.
#
# Output: a table on stdout; per-run JSON reports and build/fleet-load/results.json.
# Installs what it needs: postgresql (via ci/postgres.sh), gooseBit with gunicorn in a venv under
# build/fleet-load/ (ci/server-peers/goosebit/goosebit.sh). Every server is killed by pid on exit; every
# step has a time limit.
# Exit codes: 0 done (with --enforce: and every measured target met), 1 failure or (with
# --enforce) a missed target, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# databases, default/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "bench/fleet-load.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

QUICK=0 WITH_ALL=0 ENFORCE=0 TABLE_ONLY=0 RUN_SQLITE=1 RUN_PG=1 RUN_GOOSE=1 RUN_DEPLOY=1
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --with-all) WITH_ALL=1 ;;
    --enforce) ENFORCE=1 ;;
    --no-sqlite) RUN_SQLITE=0 ;;
    --no-postgres) RUN_PG=0 ;;
    --no-goosebit) RUN_GOOSE=0 ;;
    --no-deploy) RUN_DEPLOY=0 ;;
    --table) TABLE_ONLY=1 ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
done
if ((QUICK && !WITH_ALL)); then RUN_PG=0 RUN_GOOSE=0; fi

# Targets (DESIGN.md section 6).
readonly TARGET_DEVICES=10000 TARGET_INTERVAL=60 TARGET_P99_MS=50 TARGET_RATIO=10 TARGET_RSS_MIB=100
# The dashboard's device search (issue 20): every search answered within this, at the fleet size.
readonly TARGET_SEARCH_MS=200 SEARCH_ROUNDS=3

if ((QUICK)); then
    # 50 polls/s from a debug build: well inside what a loaded 2-core CI machine sustains (the
    # debug server measured 100 polls/s at p99 27 ms beside other builds; the release server
    # holds 10,000 devices at 60 s, 167 polls/s, with a p99 of a few ms). Its p99 is then set by
    # the machine's scheduling noise, not by the load.
    DEVICES=${FL_DEVICES:-500} INTERVAL=${FL_INTERVAL:-10} DURATION=${FL_DURATION:-10}
    FIXED_DEVICES=${FL_FIXED_DEVICES:-200} FIXED_INTERVAL=${FL_FIXED_INTERVAL:-10}
    FIXED_DURATION=${FL_FIXED_DURATION:-10}
    MAX_CONNECTIONS=${FL_MAX_CONNECTIONS:-16} MAX_DEVICES=${FL_MAX_DEVICES:-200}
    MAX_DURATION=${FL_MAX_DURATION:-10}
else
    DEVICES=${FL_DEVICES:-$TARGET_DEVICES} INTERVAL=${FL_INTERVAL:-$TARGET_INTERVAL}
    DURATION=${FL_DURATION:-60}
    FIXED_DEVICES=${FL_FIXED_DEVICES:-2000} FIXED_INTERVAL=${FL_FIXED_INTERVAL:-40}
    FIXED_DURATION=${FL_FIXED_DURATION:-60}
    MAX_CONNECTIONS=${FL_MAX_CONNECTIONS:-32} MAX_DEVICES=${FL_MAX_DEVICES:-2000}
    MAX_DURATION=${FL_MAX_DURATION:-30}
fi
read -r -a GOOSEBIT_DBS <<<"${FL_GOOSEBIT_DBS:-postgres sqlite}"
readonly REGISTER_CONNECTIONS=32 REGISTER_LIMIT_S=900 REQUEST_TIMEOUT=10
# A first-pass warm-up longer than this many poll intervals (interval phases) or seconds (max
# phase) means the server does not keep up; the window then starts anyway, marked incomplete.
readonly WARMUP_LIMIT_INTERVALS=2 MAX_WARMUP_LIMIT_S=120
# Busy seconds after the load stopped that still count as steady (the last in-flight requests),
# and the longest a backlog is measured (recorded as at least this).
readonly BACKLOG_LIMIT_S=2 BACKLOG_MAX_S=60
((MAX_DEVICES <= DEVICES)) || die "FL_MAX_DEVICES must not exceed FL_DEVICES (all phases use registered devices)"
((FIXED_DEVICES <= DEVICES)) || die "FL_FIXED_DEVICES must not exceed FL_DEVICES (all phases use registered devices)"
for db in "${GOOSEBIT_DBS[@]}"; do
    [[ $db == postgres || $db == sqlite ]] || die "FL_GOOSEBIT_DBS: postgres and/or sqlite, not $db"
done

readonly OUT=$ROOT/build/fleet-load
# --quick is a CI run: debug builds, which ci/server-test.sh has already made, save a release
# build of several minutes; its latencies are checked against the targets with margin to spare,
# but they are not the benchmark's figures.
if ((QUICK)); then PROFILE=debug; else PROFILE=release; fi
readonly PROFILE
readonly SERVER_BIN=$ROOT/tools/server/target/$PROFILE/rustupdate-server
readonly FL_BIN=$ROOT/tools/server/target/$PROFILE/fleet-load
readonly USER_HZ=100
mkdir -p "$OUT"
RESULTS=()   # JSON files of this run, merged into results.json at the end
PG_STOP=0    # stop the PostgreSQL cluster on exit (we started it)

# PIDS, stop_pid, free_port and cleanup (which calls cleanup_extra).
# shellcheck source=lib/common.sh
source "$ROOT/bench/lib/common.sh"
cleanup_extra() {
    if ((PG_STOP)); then ci/postgres.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# proc_tree, cpu_ticks, pg_cpu_ticks, tree_kib, reset_peak_rss, backlog_seconds, watch_window.
# shellcheck source=lib/proc-stats.sh
source "$ROOT/bench/lib/proc-stats.sh"

wait_http() {
    local url=$1 pid=$2 log=$3 i
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "server exited during start-up (log: $log)"; }
        curl -s -o /dev/null -m 2 "$url" && return 0
        sleep 0.5
    done
    tail -n 30 "$log" >&2
    die "no answer from $url after 60 s (log: $log)"
}

# run_load NAME PHASE PID PG(0|1) LIMIT_S FLEET_LOAD_ARGS...: runs the generator (at most LIMIT_S
# plus margins), adds the server's CPU and peak RSS over the measured window, the backlog after
# it and the steady verdict to the JSON report.
run_load() {
    local name=$1 phase=$2 pid=$3 pg=$4 limit=$5
    shift 5
    local json=$OUT/$name-$phase.json mark=$OUT/.mark watch=$OUT/.window
    log "$name: $phase ($(printf '%s ' "$@" | sed -E 's/gateway:[^ ]+/gateway:<token>/'))"
    rm -f "$mark" "$watch"
    watch_window "$mark" "$watch" "$pid" "$pg" $((limit + 30)) &
    local watcher=$!
    timeout $((limit + REQUEST_TIMEOUT + 60)) \
        "$FL_BIN" --timeout "$REQUEST_TIMEOUT" --json --out "$json" --mark "$mark" "$@" >/dev/null ||
        { kill "$watcher" 2>/dev/null || true; die "fleet-load failed for $name $phase"; }
    wait "$watcher" || die "$name $phase: the measured window was not seen (no start/end mark)"
    local backlog cpu pgcpu hwm rss
    backlog=$(backlog_seconds "$pid")
    read -r cpu pgcpu hwm rss <"$watch"
    jq --arg name "$name" --arg phase "$phase" \
        --argjson cpu "$cpu" --argjson pgcpu "$pgcpu" --argjson hz $USER_HZ \
        --argjson hwm "$hwm" --argjson rss "$rss" --argjson backlog "$backlog" \
        --argjson backlog_limit "$BACKLOG_LIMIT_S" \
        '. + {server: $name, phase: $phase,
              server_cpu_s: ($cpu / $hz), server_cpu_cores: (($cpu / $hz) / .duration_s),
              postgres_cpu_cores: (($pgcpu / $hz) / .duration_s),
              server_peak_rss_mib: ($hwm / 1024), server_rss_mib: ($rss / 1024),
              backlog_s: $backlog}
         | .not_steady = ([if .error_total > 0 then "\(.error_total) errors" else empty end,
                           if .late_cycles > 0 then "\(.late_cycles) late cycles" else empty end,
                           if .warmup_complete then empty else "first pass not done after \(.warmup_s) s" end,
                           if $backlog >= $backlog_limit then "backlog: busy \($backlog) s after the load stopped" else empty end])
         | .steady = (.not_steady | length == 0)' \
        "$json" >"$json.tmp" && mv "$json.tmp" "$json"
    jq -r '"   polls/s \(.polls_per_s), poll p50 \(.latency_ms.poll.p50) ms p99 \(.latency_ms.poll.p99) ms, errors \(.error_total), server cpu \(.server_cpu_cores * 100 | floor) %, window peak rss \(.server_peak_rss_mib | floor) MiB, warm-up \(.warmup_s) s, backlog \(.backlog_s) s\(if .steady then "" else " NOT STEADY: " + (.not_steady | join("; ")) end)"' "$json" >&2
    RESULTS+=("$json")
}

# register NAME PID PG URL AUTH: phase 0, every device's configData once; all must succeed.
register() {
    local name=$1 pid=$2 pg=$3 url=$4 auth=$5 json
    run_load "$name" register "$pid" "$pg" "$REGISTER_LIMIT_S" --url "$url" --auth "$auth" \
        --devices "$DEVICES" --register "$REGISTER_CONNECTIONS" --duration "$REGISTER_LIMIT_S"
    json=$OUT/$name-register.json
    jq -e --argjson n "$DEVICES" '.latency_ms["config-data"].count == $n and .error_total == 0' "$json" >/dev/null ||
        die "$name: registration incomplete: $(jq -c '{registered: .latency_ms["config-data"].count, errors}' "$json")"
}

# poll_phases NAME PID PG URL AUTH: phases 1-3 (fixed, max, interval) on registered devices.
poll_phases() {
    local name=$1 pid=$2 pg=$3 url=$4 auth=$5 limit
    local common=(--url "$url" --auth "$auth" --registered --warmup pass)
    if ((FIXED_DEVICES > 0)); then
        limit=$((FIXED_INTERVAL * WARMUP_LIMIT_INTERVALS))
        run_load "$name" fixed "$pid" "$pg" $((limit + FIXED_DURATION)) "${common[@]}" \
            --devices "$FIXED_DEVICES" --poll-interval "$FIXED_INTERVAL" --warmup-limit "$limit" \
            --duration "$FIXED_DURATION"
    fi
    run_load "$name" max "$pid" "$pg" $((MAX_WARMUP_LIMIT_S + MAX_DURATION)) "${common[@]}" \
        --devices "$MAX_DEVICES" --max "$MAX_CONNECTIONS" --warmup-limit "$MAX_WARMUP_LIMIT_S" \
        --duration "$MAX_DURATION"
    limit=$((INTERVAL * WARMUP_LIMIT_INTERVALS))
    run_load "$name" interval "$pid" "$pg" $((limit + DURATION)) "${common[@]}" \
        --devices "$DEVICES" --poll-interval "$INTERVAL" --warmup-limit "$limit" --duration "$DURATION"
}

# --- rustupdate-server ------------------------------------------------------------------------

build_rust() {
    log "building rustupdate-server and fleet-load ($PROFILE)"
    local release=()
    [[ $PROFILE == release ]] && release=(--release)
    timeout 3600 cargo build "${release[@]}" --manifest-path tools/server/Cargo.toml \
        -p rustupdate-server -p fleet-load >"$OUT/build.log" 2>&1 ||
        { tail -n 30 "$OUT/build.log" >&2; die "cargo build failed (log: $OUT/build.log)"; }
}

# bench_rust NAME [--database URL]
bench_rust() {
    local name=$1
    shift
    local dir=$OUT/$name-data port pid pg=0
    [[ ${1:-} == --database ]] && pg=1
    rm -rf "$dir"
    mkdir -p "$dir"
    port=$(free_port)
    "$SERVER_BIN" --data-dir "$dir" --listen "127.0.0.1:$port" --poll-interval "$INTERVAL" "$@" \
        >"$OUT/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/" "$pid" "$OUT/$name.log"
    [[ -s $dir/gateway.token ]] || die "$dir/gateway.token missing after start"
    local url=http://127.0.0.1:$port auth
    auth=gateway:$(cat "$dir/gateway.token")
    register "$name" "$pid" "$pg" "$url" "$auth"
    search_rust "$name" "$url" "$dir" "$pid" "$@"
    poll_phases "$name" "$pid" "$pg" "$url" "$auth"
    if ((RUN_DEPLOY)); then
        deploy_rust "$name" "$url" "$dir" "$pid" "$pg" "$auth"
    fi
    stop_pid "$pid"
}

# search_rust NAME URL DATA_DIR PID [--database URL]: the dashboard's device search over the
# registered fleet, as an operator uses it: a viewer account (made on the host), logged in by the
# form, then, once the server is idle after the registration (it writes the registered devices'
# contact times in batches behind), SEARCH_ROUNDS rounds of searches by id part, type, version,
# attribute, newest action and silence, and a deep page; each answer timed by curl (time to the
# last byte). Writes NAME-search.json; the slowest must stay under TARGET_SEARCH_MS (with
# --enforce, checked below).
search_rust() {
    local name=$1 url=$2 dir=$3 pid=$4 settle
    shift 4
    local jar=$OUT/$name-cookies password=bench-viewer-password-1234 times=$OUT/$name-search.times
    rm -f "$jar" "$times"
    printf '%s\n' "$password" | "$SERVER_BIN" user add bench-viewer --role viewer --data-dir "$dir" "$@" \
        >/dev/null || die "$name: user add failed"
    curl -s -m 30 -c "$jar" -o /dev/null -w '%{http_code}' --data-urlencode name=bench-viewer \
        --data-urlencode "password=$password" "$url/ui/login" | grep -qx 303 || die "$name: dashboard login failed"
    settle=$(backlog_seconds "$pid")
    log "$name: server idle ${settle} s after the registration; searching"
    local last_page=$(((DEVICES + 49) / 50)) round query code
    local queries=("q=0042" "type=bench-board" "version=1.0.0" "attribute=hw_rev%3D3"
        "state=failed" "silent_hours=1" "page=$((last_page / 2 + 1))" "version=1.0.0&page=$last_page")
    for ((round = 0; round < SEARCH_ROUNDS; round++)); do
        for query in "${queries[@]}"; do
            read -r code time < <(curl -s -m 30 -b "$jar" -o /dev/null -w '%{http_code} %{time_total}\n' \
                "$url/ui/devices?$query")
            [[ $code == 200 ]] || die "$name: GET /ui/devices?$query answered $code"
            echo "$query $time" >>"$times"
        done
    done
    python3 - "$times" "$name" "$DEVICES" >"$OUT/$name-search.json" <<'PY'
import json, statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
ms = sorted(float(t) * 1000 for _, t in rows)
slowest = max(rows, key=lambda r: float(r[1]))
print(json.dumps({"server": sys.argv[2], "phase": "search", "devices": int(sys.argv[3]),
                  "searches": len(ms), "median_ms": round(statistics.median(ms), 1),
                  "max_ms": round(ms[-1], 1), "slowest_query": slowest[0]}))
PY
    log "$name: dashboard search over $DEVICES devices: $(jq -c '{median_ms, max_ms, slowest_query}' "$OUT/$name-search.json")"
}

deploy_rust() {
    local name=$1 url=$2 dir=$3 pid=$4 pg=$5 auth=$6 artifact id
    local client=(--server "$url" --admin-token-file "$dir/admin.token" --json)
    artifact=$OUT/bench-artifact.bin
    [[ -s $artifact ]] || head -c 1048576 /dev/urandom >"$artifact"
    id=$(timeout 60 "$SERVER_BIN" artifact upload "$artifact" --foreign --name fleet-load \
        --version 2.0.0 --device-type bench-board "${client[@]}" | jq -r .id) ||
        die "$name: artifact upload failed"
    if ! timeout 60 "$SERVER_BIN" rollout create --name fleet-load --artifact "$id" \
        --device-type bench-board --phases 100 --error-threshold 100% --start "${client[@]}" \
        >"$OUT/$name-rollout.log" 2>&1; then
        # The CLI may fail to read an answer although the server created the rollout: check the
        # management API itself.
        echo "warning: rollout create exited non-zero: $(head -c 300 "$OUT/$name-rollout.log")" >&2
    fi
    curl -s -m 10 -H "Authorization: Bearer $(cat "$dir/admin.token")" "$url/api/v1/rollouts" |
        jq -e '[.[] | select(.name == "fleet-load" and .state == "running")][0]' \
            >"$OUT/$name-rollout.json" || die "$name: no running rollout after rollout create"
    # Every device polls once within one interval and runs its deployment; the window is the
    # interval plus a margin, no warm-up.
    run_load "$name" deploy "$pid" "$pg" $((INTERVAL + 5)) --url "$url" --auth "$auth" --registered \
        --devices "$DEVICES" --poll-interval "$INTERVAL" --warmup 0 --duration "$((INTERVAL + 5))" --download
    curl -s -m 10 -H "Authorization: Bearer $(cat "$dir/admin.token")" \
        "$url/api/v1/rollouts/$(jq -r .id "$OUT/$name-rollout.json")" >"$OUT/$name-rollout-status.json" || true
}

# Starts the cluster of ci/postgres.sh unless it runs; stopped on exit if started here. Call it in
# the main shell (not in $(…)), so that PG_STOP survives.
start_postgres() {
    local before=1
    (exec 3<>/dev/tcp/127.0.0.1/54329) 2>/dev/null || before=0
    ((before)) && return 0
    # The cluster outlives this command: it must not inherit our descriptors, above all the
    # lock file of a `flock /tmp/heavy.lock bench/fleet-load.sh` around us, which it would
    # otherwise hold until it stops.
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-"; fi
        done
        exec timeout 300 ci/postgres.sh start
    ) >/dev/null || die "ci/postgres.sh start failed"
    PG_STOP=1
}

# pg_database NAME: a fresh, empty database; prints its URL. The cluster must run (start_postgres).
pg_database() {
    timeout 120 ci/postgres.sh createdb "$1" | tail -n 1 || die "ci/postgres.sh createdb $1 failed"
}

# --- gooseBit ---------------------------------------------------------------------------------

# gooseBit's install and schema are ci/server-peers/goosebit/goosebit.sh's goosebit_install (what
# gooseBit's Dockerfile installs: goosebit[postgresql] and gunicorn) and goosebit_schema; they
# need these four names.
REPO_DIR=$ROOT WORK=$OUT
fleet_fail() { die "$*"; }
# shellcheck source=../ci/server-peers/goosebit/goosebit.sh
source "$ROOT/ci/server-peers/goosebit/goosebit.sh"

# bench_goosebit DB(postgres|sqlite): gooseBit as its Dockerfile (docker/Dockerfile) runs it in
# production: schema by `aerich upgrade`, then gunicorn with one uvicorn worker
# (GUNICORN_CMD_ARGS="--workers 1 --enable-stdio-inheritance": gooseBit does not support more,
# its issue #125), gunicorn's defaults otherwise (no access log); PostgreSQL as in its Compose
# deployment (docker/demo/docker-compose.yml; asyncpg) or SQLite, its default. Device
# authentication off (the default), poll_time = the interval phase's interval.
bench_goosebit() {
    local db=$1 name=goosebit-$1 dir port pid db_uri poll
    dir=$OUT/$name-data
    case $db in
    postgres) db_uri=$(pg_database goosebit_load) ;;
    sqlite) db_uri=sqlite://$dir/db.sqlite3 ;;
    esac
    rm -rf "$dir"
    mkdir -p "$dir/artifacts"
    poll=$(printf '00:%02d:%02d' $((INTERVAL / 60)) $((INTERVAL % 60)))
    local env_vars=(GOOSEBIT_DB_URI="$db_uri" GOOSEBIT_ARTIFACTS_DIR="$dir/artifacts"
        GOOSEBIT_POLL_TIME="$poll" GUNICORN_CMD_ARGS="--workers 1 --enable-stdio-inheritance")
    goosebit_schema "$dir" "$OUT/$name-aerich.log" "${env_vars[@]}" ||
        { tail -n 20 "$OUT/$name-aerich.log" >&2; die "$name: aerich upgrade failed"; }
    # cwd = the data dir: gooseBit also reads ./goosebit.yaml, which must not be a stray one.
    port=$(free_port)
    (cd "$dir" && exec env "${env_vars[@]}" "$GOOSEBIT_VENV/bin/gunicorn" \
        --worker-class uvicorn.workers.UvicornWorker --bind "127.0.0.1:$port" goosebit:app) \
        >"$OUT/$name.log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    # /login answers 302 without users: up, and no device is registered by probing.
    wait_http "http://127.0.0.1:$port/login" "$pid" "$OUT/$name.log"
    # One device first, alone: on a fresh PostgreSQL database, 32 concurrent first requests leave
    # gooseBit 0.2.12 answering 500 to every later device request (seen on every try here; cause
    # not investigated). A deployment that grows device by device meets that first request alone.
    curl -sf -m 30 -X PUT -H 'Content-Type: application/json' -d '{"mode":"merge","data":{}}' \
        "http://127.0.0.1:$port/DEFAULT/controller/v1/fleet-load-probe/configData" >/dev/null ||
        die "$name: the first configData failed (log: $OUT/$name.log)"
    local pg=0
    [[ $db == postgres ]] && pg=1
    register "$name" "$pid" "$pg" "http://127.0.0.1:$port" none
    poll_phases "$name" "$pid" "$pg" "http://127.0.0.1:$port" none
    stop_pid "$pid"
}

# --- main -------------------------------------------------------------------------------------

command -v jq >/dev/null || ci/apt-install.sh jq
command -v curl >/dev/null || ci/apt-install.sh curl
readonly SERVERS=(rust-sqlite rust-postgres goosebit-postgres goosebit-sqlite)
if ((TABLE_ONLY)); then
    for name in "${SERVERS[@]}"; do
        for phase in register fixed max interval deploy; do
            [[ -f $OUT/$name-$phase.json ]] && RESULTS+=("$OUT/$name-$phase.json")
        done
    done
    ((${#RESULTS[@]})) || die "no per-run JSON files in $OUT"
else
    build_rust
    if ((RUN_SQLITE)); then bench_rust rust-sqlite; fi
    if ((RUN_PG)) || { ((RUN_GOOSE)) && [[ " ${GOOSEBIT_DBS[*]} " == *" postgres "* ]]; }; then
        start_postgres
    fi
    if ((RUN_PG)); then bench_rust rust-postgres --database "$(pg_database fleet_load)"; fi
    if ((RUN_GOOSE)); then
        goosebit_install
        for db in "${GOOSEBIT_DBS[@]}"; do bench_goosebit "$db"; done
    fi
fi

GOOSEBIT_STACK=null
if [[ -x ${GOOSEBIT_VENV:-}/bin/python ]]; then
    GOOSEBIT_STACK=$("$GOOSEBIT_VENV/bin/python" -c 'import importlib.metadata as m, json, sys
print(json.dumps({p: m.version(p) for p in ("goosebit", "gunicorn", "uvicorn", "fastapi", "tortoise-orm", "asyncpg", "aiosqlite")} | {"python": sys.version.split()[0]}))' 2>/dev/null || echo null)
fi
jq -s --arg quick "$QUICK" --arg ts "$(date -u +%FT%TZ)" \
    --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" --argjson goosebit "$GOOSEBIT_STACK" \
    '{date: $ts, revision: $rev, quick: ($quick == "1"), goosebit: $goosebit, runs: .}' "${RESULTS[@]}" >"$OUT/results.json"

status=0
python3 - "$OUT/results.json" "$TARGET_DEVICES" "$TARGET_INTERVAL" "$TARGET_P99_MS" "$TARGET_RATIO" \
    "$TARGET_RSS_MIB" "$ENFORCE" <<'PY' || status=$?
import json, sys
path = sys.argv[1]
t_dev, t_int, t_p99, t_ratio, t_rss = map(float, sys.argv[2:7])
enforce = sys.argv[7] == "1"
doc = json.load(open(path))
runs = {(r["server"], r["phase"]): r for r in doc["runs"]}
order = ("rust-sqlite", "rust-postgres", "goosebit-postgres", "goosebit-sqlite")
servers = [s for s in order if any(k[0] == s for k in runs)]
geese = [s for s in servers if s.startswith("goosebit")]

def get(server, phase, f):
    r = runs.get((server, phase))
    if r is None:
        return None
    try:
        return f(r)
    except (KeyError, TypeError, ZeroDivisionError):
        return None

def steady(server, phase):
    r = runs.get((server, phase))
    return r is not None and r.get("steady", False)

# (label, phase, getter, format, ratio: "up" = rust-sqlite / gooseBit, "down" = gooseBit / rust-sqlite)
rows = [
    ("register: devices", "register", lambda r: r["devices"], "{:.0f}", None),
    ("register: configData/s", "register", lambda r: r["latency_ms"]["config-data"]["per_s"], "{:.0f}", None),
    ("fixed: devices", "fixed", lambda r: r["devices"], "{:.0f}", None),
    ("fixed: poll interval s", "fixed", lambda r: r["load"]["poll_interval_s"], "{:.0f}", None),
    ("fixed: polls/s", "fixed", lambda r: r["polls_per_s"], "{:.1f}", None),
    ("fixed: poll p50 ms", "fixed", lambda r: r["latency_ms"]["poll"]["p50"], "{:.2f}", "down"),
    ("fixed: poll p99 ms", "fixed", lambda r: r["latency_ms"]["poll"]["p99"], "{:.2f}", "down"),
    ("fixed: errors", "fixed", lambda r: r["error_total"], "{:.0f}", None),
    ("fixed: server CPU %", "fixed", lambda r: 100 * r["server_cpu_cores"], "{:.1f}", "down"),
    ("fixed: postgres CPU %", "fixed", lambda r: 100 * r["postgres_cpu_cores"], "{:.1f}", None),
    ("fixed: server peak RSS MiB", "fixed", lambda r: r["server_peak_rss_mib"], "{:.1f}", "down"),
    ("max: connections", "max", lambda r: r["load"]["connections"], "{:.0f}", None),
    ("max: warm-up (first pass) s", "max", lambda r: r["warmup_s"], "{:.1f}", None),
    ("max: polls/s", "max", lambda r: r["polls_per_s"], "{:.0f}", "up"),
    ("max: poll p50 ms", "max", lambda r: r["latency_ms"]["poll"]["p50"], "{:.2f}", "down"),
    ("max: poll p99 ms", "max", lambda r: r["latency_ms"]["poll"]["p99"], "{:.2f}", "down"),
    ("max: errors", "max", lambda r: r["error_total"], "{:.0f}", None),
    ("max: server CPU cores", "max", lambda r: r["server_cpu_cores"], "{:.2f}", None),
    ("max: postgres CPU cores", "max", lambda r: r["postgres_cpu_cores"], "{:.2f}", None),
    ("max: client CPU cores", "max", lambda r: r["client_cpu_s"] / (r["duration_s"] + r["warmup_s"]), "{:.2f}", None),
    ("max: polls per server CPU s", "max", lambda r: r["polls_per_s"] / r["server_cpu_cores"], "{:.0f}", "up"),
    ("max: server peak RSS MiB", "max", lambda r: r["server_peak_rss_mib"], "{:.1f}", None),
    ("interval: devices", "interval", lambda r: r["devices"], "{:.0f}", None),
    ("interval: poll interval s", "interval", lambda r: r["load"]["poll_interval_s"], "{:.0f}", None),
    ("interval: polls/s", "interval", lambda r: r["polls_per_s"], "{:.1f}", None),
    ("interval: poll p50 ms", "interval", lambda r: r["latency_ms"]["poll"]["p50"], "{:.2f}", "down"),
    ("interval: poll p99 ms", "interval", lambda r: r["latency_ms"]["poll"]["p99"], "{:.2f}", "down"),
    ("interval: poll max ms", "interval", lambda r: r["latency_ms"]["poll"]["max"], "{:.2f}", None),
    ("interval: errors", "interval", lambda r: r["error_total"], "{:.0f}", None),
    ("interval: server CPU %", "interval", lambda r: 100 * r["server_cpu_cores"], "{:.1f}", "down"),
    ("interval: postgres CPU %", "interval", lambda r: 100 * r["postgres_cpu_cores"], "{:.1f}", None),
    ("interval: server peak RSS MiB", "interval", lambda r: r["server_peak_rss_mib"], "{:.1f}", "down"),
    ("deploy: completed", "deploy", lambda r: r["deployments_completed"], "{:.0f}", None),
    ("deploy: feedback p50 ms", "deploy", lambda r: r["latency_ms"]["feedback"]["p50"], "{:.2f}", None),
    ("deploy: feedback p99 ms", "deploy", lambda r: r["latency_ms"]["feedback"]["p99"], "{:.2f}", None),
    ("deploy: deploymentBase p99 ms", "deploy", lambda r: r["latency_ms"]["deployment-base"]["p99"], "{:.2f}", None),
    ("deploy: all requests/s", "deploy", lambda r: r["requests_per_s"], "{:.1f}", None),
    ("deploy: all p99 ms", "deploy", lambda r: r["latency_ms"]["all"]["p99"], "{:.2f}", None),
    ("deploy: errors", "deploy", lambda r: r["error_total"], "{:.0f}", None),
    ("deploy: server CPU %", "deploy", lambda r: 100 * r["server_cpu_cores"], "{:.1f}", None),
    ("deploy: server peak RSS MiB", "deploy", lambda r: r["server_peak_rss_mib"], "{:.1f}", None),
]
phases = ("register", "fixed", "max", "interval", "deploy")

# A ratio is published only between steady runs: rust-sqlite against the best steady gooseBit
# run of the same phase and size.
ratios = []
def ratio(label, phase, f, kind):
    if not geese or "rust-sqlite" not in servers or (("rust-sqlite", phase) not in runs):
        return None
    entry = {"metric": label, "phase": phase}
    a = get("rust-sqlite", phase, f)
    size = get("rust-sqlite", phase, lambda r: (r["devices"], json.dumps(r["load"], sort_keys=True)))
    cands = [(g, get(g, phase, f)) for g in geese
             if steady(g, phase) and get(g, phase, lambda r: (r["devices"], json.dumps(r["load"], sort_keys=True))) == size]
    cands = [(g, v) for g, v in cands if v]
    if not steady("rust-sqlite", phase):
        entry["not_published"] = "rust-sqlite not steady: " + "; ".join(runs["rust-sqlite", phase]["not_steady"])
    elif not cands:
        why = [f"{g}: " + "; ".join(runs[g, phase]["not_steady"]) for g in geese if (g, phase) in runs and not steady(g, phase)]
        entry["not_published"] = "no steady gooseBit run" + (" (" + " | ".join(why) + ")" if why else "")
    elif a:
        g, v = (max if kind == "up" else min)(cands, key=lambda c: c[1])
        entry.update(goosebit=g, rust_sqlite=a, goosebit_value=v, ratio=round(a / v if kind == "up" else v / a, 2))
    ratios.append(entry)
    return entry

head = f"{'metric':<32}" + "".join(f"{s:>18}" for s in servers)
compare = "rust-sqlite" in servers and bool(geese)
if compare:
    head += f"{'rust-sqlite vs gooseBit':>26}"
print(head)
for label, phase, f, fmt, kind in rows:
    vals = [get(s, phase, f) for s in servers]
    if all(v is None for v in vals):
        continue
    line = f"{label:<32}" + "".join(f"{(fmt.format(v) if v is not None else '-'):>18}" for v in vals)
    if compare and kind:
        e = ratio(label, phase, f, kind)
        if e is not None:
            line += f"{e['ratio']:>24.1f} x" if "ratio" in e else f"{'not steady':>26}"
    print(line)
print(f"{'steady':<32}" + "".join(
    f"{' '.join(p[0] for p in phases if (s, p) in runs and not steady(s, p)) or 'yes':>18}" for s in servers))
print("  (steady: otherwise the first letters of the phases that were not: register fixed max interval deploy)")
for s in servers:
    for p in phases:
        r = runs.get((s, p))
        if r is not None and not r["steady"]:
            print(f"  {s} {p} not steady: " + "; ".join(r["not_steady"]))
if geese:
    print("phases fixed, max and interval are poll-only (no rollout) for every server; the deploy phase runs on rustupdate-server only.")

print()
print("targets:")
verdicts = []
def verdict(ok, text):
    verdicts.append(ok)
    print(f"  [{'PASS' if ok else 'FAIL'}] {text}")
for s, db in (("rust-sqlite", "SQLite"), ("rust-postgres", "PostgreSQL")):
    iv = runs.get((s, "interval"))
    if not iv:
        continue
    full = iv["devices"] >= t_dev and iv["load"]["poll_interval_s"] <= t_int
    size = f"{iv['devices']} devices @ {iv['load']['poll_interval_s']:.0f} s ({iv['polls_per_s']:.0f} polls/s)"
    note = "" if full else " [quick load, not the target size]"
    p99 = iv["latency_ms"]["poll"]["p99"]
    verdict(p99 < t_p99 and iv["error_total"] == 0,
            f"poll p99 < {t_p99:.0f} ms and no errors on {db} at {size}: p99 {p99:.2f} ms, {iv['error_total']} errors{note}")
for s in ("rust-sqlite", "rust-postgres"):
    mine = [r for (srv, _), r in runs.items() if srv == s]
    if not mine:
        continue
    peak = max(r["server_peak_rss_mib"] for r in mine)
    verdict(peak < t_rss, f"{s}: server peak RSS < {t_rss:.0f} MiB in every phase: {peak:.1f} MiB")
    bad = [f"{r['phase']}: " + "; ".join(r["not_steady"]) for r in mine if not r["steady"]]
    verdict(not bad, f"{s}: no errors, no late cycles, no backlog in any phase" + (": " + " | ".join(bad) if bad else ""))
mx = [e for e in ratios if e["metric"] == "max: polls/s"]
if mx and "ratio" in mx[0]:
    e = mx[0]
    mr = runs["rust-sqlite", "max"]
    client = mr["client_cpu_s"] / (mr["duration_s"] + mr["warmup_s"])
    bound = " (load generator near one full core: rustupdate-server's figure is a lower bound)" if client > 0.85 else ""
    verdict(e["ratio"] >= t_ratio, f"max-mode polls/s >= {t_ratio:.0f}x gooseBit's at {mr['load']['connections']} connections: "
            f"{e['rust_sqlite']:.0f} vs {e['goosebit_value']:.0f} ({e['goosebit']}) = {e['ratio']:.1f}x{bound}")
elif mx:
    print(f"  [n/a] max-mode ratio to gooseBit not published: {mx[0]['not_published']}")
else:
    print("  [n/a] max-mode ratio to gooseBit (rust-sqlite or gooseBit not run)")
dp = runs.get(("rust-sqlite", "deploy"))
if dp:
    print(f"  [info] deployment phase on SQLite: {dp['deployments_completed']} of {dp['devices']} devices completed, "
          f"{dp['error_total']} errors")

doc["ratios"] = ratios
doc["targets_met"] = all(verdicts)
with open(path + ".tmp", "w") as out:
    json.dump(doc, out, indent=1)
    out.write("\n")
import os
os.replace(path + ".tmp", path)
print(f"results: {path}")
if enforce and not all(verdicts):
    print(f"--enforce: {verdicts.count(False)} target(s) missed", file=sys.stderr)
    sys.exit(3)
PY
case $status in
0) ;;
3) die "--enforce: a target was missed (see targets above)" ;;
*) die "the results table failed (python exit $status)" ;;
esac
if ((QUICK)); then
    bad=$(jq '[.runs[] | select(.server | startswith("rust-")) | .error_total] | add' "$OUT/results.json")
    [[ $bad == 0 ]] || die "quick run: fleet-load saw $bad errors against rustupdate-server"
    echo "quick run: no errors against rustupdate-server"
fi
for json in "$OUT"/rust-*-search.json; do
    [[ -f $json && $json -nt $OUT/build.log ]] || continue
    max=$(jq .max_ms "$json")
    if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$max" "$TARGET_SEARCH_MS"; then
        echo "  [met] dashboard search $(jq -r .server "$json"): slowest $max ms < $TARGET_SEARCH_MS ms over $(jq .devices "$json") devices"
    else
        echo "  [MISSED] dashboard search $(jq -r .server "$json"): slowest $max ms >= $TARGET_SEARCH_MS ms ($(jq -r .slowest_query "$json"))"
        ((ENFORCE)) && die "--enforce: the dashboard search target was missed"
    fi
done
if ((ENFORCE)); then echo "--enforce: every measured target met"; fi
