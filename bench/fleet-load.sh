#!/usr/bin/env bash
# Fleet server load benchmark: rustupdate-server on SQLite and on PostgreSQL, side by side with
# gooseBit (PyPI `goosebit`, a hawkBit DDI server in Python), on this machine, loopback only.
# docs/fleet-load.md explains what is measured and keeps the results table.
#
# Usage: bench/fleet-load.sh [--quick] [--no-sqlite] [--no-postgres] [--no-goosebit] [--no-deploy]
#   --quick        CI-sized smoke run: rustupdate-server on SQLite only (unless --with-all),
#                  200 devices, 10 s phases; fails unless the load generator saw zero errors.
#   --with-all     with --quick: also PostgreSQL and gooseBit (at the quick sizes).
#   --no-sqlite    skip rustupdate-server on SQLite.
#   --no-postgres  skip rustupdate-server on PostgreSQL.
#   --no-goosebit  skip gooseBit.
#   --no-deploy    skip the deployment phase (rollout + feedback path).
#   --table        run nothing: rebuild results.json and the table from the per-run JSON files
#                  left in build/fleet-load/ (e.g. after re-running one server alone).
# Sizes can be overridden from the environment: FL_DEVICES, FL_INTERVAL, FL_WARMUP, FL_DURATION
# (interval phase), FL_MAX_CONNECTIONS, FL_MAX_DEVICES, FL_MAX_DURATION (max phase),
# GOOSEBIT_VERSION.
#
# Per server, in this order, against a fresh database:
#   1. interval: FL_DEVICES devices, each polling once per FL_INTERVAL s (first contact
#      configData during the warm-up), measured for FL_DURATION s after a warm-up of one interval;
#   2. max: FL_MAX_CONNECTIONS keep-alive connections polling back to back over FL_MAX_DEVICES of
#      the registered devices (the same concurrency for every server);
#   3. deploy (rustupdate-server only): a foreign 1 MiB artifact and a one-phase rollout to all
#      bench-board devices are created with `rustupdate-server artifact upload` / `rollout create`,
#      then every device polls once more and runs the deployment (deploymentBase, proceeding
#      feedback, 1 KiB Range download, closed/success feedback).
# gooseBit gets phases 1 and 2 only: a rollout there needs a user, a parsed .swu upload and a
# feed per device through its UI API. Phases 1 and 2 carry no rollout on either side, so the
# comparison is poll-only and fair; the deploy phase is rustupdate-server's feedback path alone.
#
# Server CPU is utime+stime from /proc/PID/stat over the measured window, peak RSS is VmHWM from
# /proc/PID/status (PostgreSQL's own processes are summed separately). The load generator runs
# single-threaded on the same 2 cores; its CPU is reported so a client-bound max phase is visible.
#
# Output: a table on stdout; per-run JSON reports and build/fleet-load/results.json.
# Installs what it needs: postgresql (via ci/postgres.sh), a Python 3.11 venv with gooseBit
# under build/fleet-load/. Every server is killed by pid on exit; every step has a time limit.
# Exit codes: 0 done (targets are reported, not enforced, except --quick's zero-error check),
# 1 failure, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# GOOSEBIT_VERSION/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "bench/fleet-load.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

QUICK=0 WITH_ALL=0 TABLE_ONLY=0 RUN_SQLITE=1 RUN_PG=1 RUN_GOOSE=1 RUN_DEPLOY=1
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --with-all) WITH_ALL=1 ;;
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

# Targets from the issue.
readonly TARGET_DEVICES=10000 TARGET_INTERVAL=60 TARGET_P99_MS=50 TARGET_RATIO=10 TARGET_RSS_MIB=100

if ((QUICK)); then
    DEVICES=${FL_DEVICES:-200} INTERVAL=${FL_INTERVAL:-10} DURATION=${FL_DURATION:-10}
    MAX_CONNECTIONS=${FL_MAX_CONNECTIONS:-16} MAX_DEVICES=${FL_MAX_DEVICES:-200}
    MAX_DURATION=${FL_MAX_DURATION:-10}
else
    DEVICES=${FL_DEVICES:-$TARGET_DEVICES} INTERVAL=${FL_INTERVAL:-$TARGET_INTERVAL}
    DURATION=${FL_DURATION:-60}
    MAX_CONNECTIONS=${FL_MAX_CONNECTIONS:-32} MAX_DEVICES=${FL_MAX_DEVICES:-2000}
    MAX_DURATION=${FL_MAX_DURATION:-30}
fi
WARMUP=${FL_WARMUP:-$INTERVAL}
readonly MAX_WARMUP=3 REQUEST_TIMEOUT=10
readonly GOOSEBIT_VERSION=${GOOSEBIT_VERSION:-0.2.12}
((MAX_DEVICES <= DEVICES)) || die "FL_MAX_DEVICES must not exceed FL_DEVICES (max mode reuses registered devices)"

readonly OUT=$ROOT/build/fleet-load
# --quick is a smoke test (CI): debug builds, which ci/server-test.sh has already made, save a
# release build of several minutes; its numbers are not benchmark figures.
if ((QUICK)); then PROFILE=debug; else PROFILE=release; fi
readonly PROFILE
readonly SERVER_BIN=$ROOT/tools/server/target/$PROFILE/rustupdate-server
readonly FL_BIN=$ROOT/tools/server/target/$PROFILE/fleet-load
readonly USER_HZ=100 SETTLE_MAX_S=300
mkdir -p "$OUT"
RESULTS=()   # JSON files of this run, merged into results.json at the end
PIDS=()      # servers started by this script
PG_STOP=0    # stop the PostgreSQL cluster on exit (we started it)

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if ((PG_STOP)); then ci/postgres.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime+stime of a process in ticks (fields after the parenthesised command name).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# utime+stime+cutime+cstime over all processes of the PostgreSQL cluster owner.
pg_cpu_ticks() {
    local total=0 pid t
    for pid in $(pgrep -u postgres || true); do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + t))
    done
    echo "$total"
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

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

# Waits (at most SETTLE_MAX_S) until the server uses less than a tenth of a core over a second,
# so that a phase does not start while the server still works off the previous one's backlog
# (an overloaded server keeps answering requests whose clients have timed out).
settle() {
    local pid=$1 name=$2 i c0 c1
    for ((i = 0; i < SETTLE_MAX_S; i++)); do
        c0=$(cpu_ticks "$pid")
        sleep 1
        c1=$(cpu_ticks "$pid")
        ((c1 - c0 <= USER_HZ / 10)) && return 0
    done
    echo "warning: $name still busy after ${SETTLE_MAX_S} s; starting the next phase anyway" >&2
}

# run_load NAME PHASE PID PG(0|1) FLEET_LOAD_ARGS...: runs the generator, adds the server's CPU
# over the measured window and its peak RSS to the JSON report.
run_load() {
    local name=$1 phase=$2 pid=$3 pg=$4
    shift 4
    local json=$OUT/$name-$phase.json warm dur mark=$OUT/.cpu-mark
    warm=$(printf '%s\n' "$@" | awk 'p { print; exit } /^--warmup$/ { p = 1 }')
    dur=$(printf '%s\n' "$@" | awk 'p { print; exit } /^--duration$/ { p = 1 }')
    settle "$pid" "$name"
    log "$name: $phase ($(printf '%s ' "$@" | sed -E 's/gateway:[^ ]+/gateway:<token>/'))"
    rm -f "$mark"
    # The server's CPU counters at the start of the measured window.
    (sleep "$warm"; echo "$(cpu_ticks "$pid") $( ((pg)) && pg_cpu_ticks || echo 0)" >"$mark") &
    local marker=$!
    timeout $((${warm%.*} + ${dur%.*} + REQUEST_TIMEOUT + 60)) \
        "$FL_BIN" --timeout "$REQUEST_TIMEOUT" --json --out "$json" "$@" >/dev/null ||
        die "fleet-load failed for $name $phase"
    wait "$marker" || true
    local c1 p1 c0 p0
    c1=$(cpu_ticks "$pid")
    p1=$( ((pg)) && pg_cpu_ticks || echo 0)
    read -r c0 p0 <"$mark"
    local hwm rss
    hwm=$(status_kib "$pid" VmHWM)
    rss=$(status_kib "$pid" VmRSS)
    jq --arg name "$name" --arg phase "$phase" \
        --argjson cpu "$((c1 - c0))" --argjson pgcpu "$((p1 - p0))" --argjson hz $USER_HZ \
        --argjson hwm "$hwm" --argjson rss "$rss" \
        '. + {server: $name, phase: $phase,
              server_cpu_s: ($cpu / $hz), server_cpu_cores: (($cpu / $hz) / .duration_s),
              postgres_cpu_cores: (($pgcpu / $hz) / .duration_s),
              server_peak_rss_mib: ($hwm / 1024), server_rss_mib: ($rss / 1024)}' \
        "$json" >"$json.tmp" && mv "$json.tmp" "$json"
    jq -r '"   polls/s \(.polls_per_s), poll p50 \(.latency_ms.poll.p50) ms p99 \(.latency_ms.poll.p99) ms, errors \(.error_total), server cpu \(.server_cpu_cores * 100 | floor) %, peak rss \(.server_peak_rss_mib | floor) MiB"' "$json" >&2
    RESULTS+=("$json")
}

interval_args() {
    echo --devices "$DEVICES" --poll-interval "$INTERVAL" --warmup "$WARMUP" --duration "$DURATION"
}
max_args() {
    echo --devices "$MAX_DEVICES" --max "$MAX_CONNECTIONS" --warmup "$MAX_WARMUP" --duration "$MAX_DURATION"
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
    # shellcheck disable=SC2046
    run_load "$name" interval "$pid" "$pg" --url "$url" --auth "$auth" $(interval_args)
    # shellcheck disable=SC2046
    run_load "$name" max "$pid" "$pg" --url "$url" --auth "$auth" $(max_args)
    if ((RUN_DEPLOY)); then
        deploy_rust "$name" "$url" "$dir" "$pid" "$pg" "$auth"
    fi
    stop_pid "$pid"
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
    run_load "$name" deploy "$pid" "$pg" --url "$url" --auth "$auth" --devices "$DEVICES" \
        --poll-interval "$INTERVAL" --warmup 0 --duration "$((INTERVAL + 5))" --download
    curl -s -m 10 -H "Authorization: Bearer $(cat "$dir/admin.token")" \
        "$url/api/v1/rollouts/$(jq -r .id "$OUT/$name-rollout.json")" >"$OUT/$name-rollout-status.json" || true
}

start_postgres() {
    local before=1
    (exec 3<>/dev/tcp/127.0.0.1/54329) 2>/dev/null || before=0
    PG_URL=$(timeout 300 ci/postgres.sh createdb fleet_load | tail -n 1) || die "ci/postgres.sh failed"
    ((before)) || PG_STOP=1
}

# --- gooseBit ---------------------------------------------------------------------------------

bench_goosebit() {
    local venv=$OUT/goosebit-venv work=$OUT/goosebit-data port pid py site
    py=$(command -v python3.11) || die "gooseBit needs python3.11"
    if ! [[ -x $venv/bin/uvicorn ]] ||
        [[ $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("goosebit"))' 2>/dev/null) != "$GOOSEBIT_VERSION" ]]; then
        log "installing goosebit $GOOSEBIT_VERSION into $venv"
        rm -rf "$venv"
        "$py" -m venv "$venv"
        timeout 900 "$venv/bin/pip" install -q "goosebit==$GOOSEBIT_VERSION" >"$OUT/goosebit-pip.log" 2>&1 ||
            { tail -n 20 "$OUT/goosebit-pip.log" >&2; die "pip install goosebit failed"; }
    fi
    site=$("$venv/bin/python" -c 'import goosebit, os; print(os.path.dirname(goosebit.__file__))')
    rm -rf "$work"
    mkdir -p "$work/artifacts"
    # The database schema is made by aerich, as gooseBit's Dockerfile does before starting.
    printf '[tool.aerich]\ntortoise_orm = "goosebit.db.config.TORTOISE_CONF"\nlocation = "%s/db/migrations"\n' \
        "$site" >"$work/aerich.toml"
    port=$(free_port)
    (
        cd "$work"
        GOOSEBIT_POLL_TIME=$(printf '00:%02d:%02d' $((INTERVAL / 60)) $((INTERVAL % 60)))
        export GOOSEBIT_DB_URI=sqlite://$work/db.sqlite3 GOOSEBIT_ARTIFACTS_DIR=$work/artifacts \
            GOOSEBIT_POLL_TIME
        timeout 120 "$venv/bin/aerich" --config aerich.toml upgrade >"$OUT/goosebit-aerich.log" 2>&1 ||
            { tail -n 20 "$OUT/goosebit-aerich.log" >&2; exit 1; }
        # As gooseBit's Dockerfile runs it: one worker (it does not support more), no access log
        # (gunicorn's default there); default SQLite database, device auth off (the default:
        # devices register on first poll).
        exec "$venv/bin/uvicorn" goosebit:app --host 127.0.0.1 --port "$port" --workers 1 \
            --no-access-log >"$OUT/goosebit.log" 2>&1
    ) &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/DEFAULT/controller/v1/fleet-load-probe" "$pid" "$OUT/goosebit.log"
    # shellcheck disable=SC2046
    run_load goosebit interval "$pid" 0 --url "http://127.0.0.1:$port" --auth none $(interval_args)
    # shellcheck disable=SC2046
    run_load goosebit max "$pid" 0 --url "http://127.0.0.1:$port" --auth none $(max_args)
    stop_pid "$pid"
}

# --- main -------------------------------------------------------------------------------------

command -v jq >/dev/null || ci/apt-install.sh jq
command -v curl >/dev/null || ci/apt-install.sh curl
if ((TABLE_ONLY)); then
    for f in "$OUT"/{rust-sqlite,rust-postgres,goosebit}-{interval,max,deploy}.json; do
        [[ -f $f ]] && RESULTS+=("$f")
    done
    ((${#RESULTS[@]})) || die "no per-run JSON files in $OUT"
else
    build_rust
    if ((RUN_SQLITE)); then bench_rust rust-sqlite; fi
    if ((RUN_PG)); then
        start_postgres
        bench_rust rust-postgres --database "$PG_URL"
    fi
    if ((RUN_GOOSE)); then bench_goosebit; fi
fi

jq -s --arg quick "$QUICK" --arg ts "$(date -u +%FT%TZ)" \
    --arg rev "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    '{date: $ts, revision: $rev, quick: ($quick == "1"), runs: .}' "${RESULTS[@]}" >"$OUT/results.json"

python3 - "$OUT/results.json" "$TARGET_DEVICES" "$TARGET_INTERVAL" "$TARGET_P99_MS" "$TARGET_RATIO" \
    "$TARGET_RSS_MIB" <<'PY'
import json, sys
path, t_dev, t_int, t_p99, t_ratio, t_rss = sys.argv[1], *map(float, sys.argv[2:])
doc = json.load(open(path))
runs = {(r["server"], r["phase"]): r for r in doc["runs"]}
servers = [s for s in ("rust-sqlite", "rust-postgres", "goosebit") if any(k[0] == s for k in runs)]

def get(server, phase, f):
    r = runs.get((server, phase))
    if r is None:
        return None
    try:
        return f(r)
    except (KeyError, TypeError, ZeroDivisionError):
        return None

# (label, phase, getter, format, ratio: "up" = rust-sqlite / gooseBit, "down" = gooseBit / rust-sqlite)
rows = [
    ("interval: devices", "interval", lambda r: r["devices"], "{:.0f}", None),
    ("interval: poll interval s", "interval", lambda r: r["load"]["poll_interval_s"], "{:.0f}", None),
    ("interval: polls/s", "interval", lambda r: r["polls_per_s"], "{:.1f}", None),
    ("interval: poll p50 ms", "interval", lambda r: r["latency_ms"]["poll"]["p50"], "{:.2f}", "down"),
    ("interval: poll p99 ms", "interval", lambda r: r["latency_ms"]["poll"]["p99"], "{:.2f}", "down"),
    ("interval: poll max ms", "interval", lambda r: r["latency_ms"]["poll"]["max"], "{:.2f}", "down"),
    ("interval: errors", "interval", lambda r: r["error_total"], "{:.0f}", None),
    ("interval: server CPU %", "interval", lambda r: 100 * r["server_cpu_cores"], "{:.1f}", "down"),
    ("interval: postgres CPU %", "interval", lambda r: 100 * r["postgres_cpu_cores"], "{:.1f}", None),
    ("interval: server peak RSS MiB", "interval", lambda r: r["server_peak_rss_mib"], "{:.1f}", "down"),
    ("max: connections", "max", lambda r: r["load"]["connections"], "{:.0f}", None),
    ("max: polls/s", "max", lambda r: r["polls_per_s"], "{:.0f}", "up"),
    ("max: poll p50 ms", "max", lambda r: r["latency_ms"]["poll"]["p50"], "{:.2f}", "down"),
    ("max: poll p99 ms", "max", lambda r: r["latency_ms"]["poll"]["p99"], "{:.2f}", "down"),
    ("max: errors", "max", lambda r: r["error_total"], "{:.0f}", None),
    ("max: server CPU cores", "max", lambda r: r["server_cpu_cores"], "{:.2f}", None),
    ("max: postgres CPU cores", "max", lambda r: r["postgres_cpu_cores"], "{:.2f}", None),
    ("max: client CPU cores", "max", lambda r: r["client_cpu_s"] / (r["duration_s"] + r["warmup_s"]), "{:.2f}", None),
    ("max: polls per server CPU s", "max", lambda r: r["polls_per_s"] / r["server_cpu_cores"], "{:.0f}", "up"),
    ("max: server peak RSS MiB", "max", lambda r: r["server_peak_rss_mib"], "{:.1f}", "down"),
    ("deploy: completed", "deploy", lambda r: r["deployments_completed"], "{:.0f}", None),
    ("deploy: feedback p50 ms", "deploy", lambda r: r["latency_ms"]["feedback"]["p50"], "{:.2f}", None),
    ("deploy: feedback p99 ms", "deploy", lambda r: r["latency_ms"]["feedback"]["p99"], "{:.2f}", None),
    ("deploy: deploymentBase p99 ms", "deploy", lambda r: r["latency_ms"]["deployment-base"]["p99"], "{:.2f}", None),
    ("deploy: all requests/s", "deploy", lambda r: r["requests_per_s"], "{:.1f}", None),
    ("deploy: all p99 ms", "deploy", lambda r: r["latency_ms"]["all"]["p99"], "{:.2f}", None),
    ("deploy: errors", "deploy", lambda r: r["error_total"], "{:.0f}", None),
    ("deploy: server CPU %", "deploy", lambda r: 100 * r["server_cpu_cores"], "{:.1f}", None),
]
head = f"{'metric':<32}" + "".join(f"{s:>15}" for s in servers)
compare = "rust-sqlite" in servers and "goosebit" in servers
if compare:
    head += f"{'rust-sqlite vs gooseBit':>26}"
print(head)
for label, phase, f, fmt, ratio in rows:
    vals = [get(s, phase, f) for s in servers]
    if all(v is None for v in vals):
        continue
    line = f"{label:<32}" + "".join(f"{(fmt.format(v) if v is not None else '-'):>15}" for v in vals)
    if compare and ratio:
        a, g = get("rust-sqlite", phase, f), get("goosebit", phase, f)
        same = get("rust-sqlite", phase, lambda r: r["devices"]) == get("goosebit", phase, lambda r: r["devices"])
        if a and g and same:
            x = a / g if ratio == "up" else g / a
            line += f"{x:>24.1f} x"
    print(line)
if "goosebit" in servers:
    print("phases interval and max are poll-only (no rollout) for every server; the deploy phase runs on rustupdate-server only.")

print()
print("targets:")
def verdict(ok):
    return "PASS" if ok else "FAIL"
iv = runs.get(("rust-sqlite", "interval"))
if iv:
    full = iv["devices"] >= t_dev and iv["load"]["poll_interval_s"] <= t_int
    p99 = iv["latency_ms"]["poll"]["p99"]
    ok = p99 < t_p99 and iv["error_total"] == 0
    note = "" if full else f" (not measured at target size: {iv['devices']} devices @ {iv['load']['poll_interval_s']:.0f} s)"
    print(f"  [{verdict(ok) if full else 'n/a'}] {t_dev:.0f} devices @ {t_int:.0f} s on SQLite, poll p99 < {t_p99:.0f} ms: "
          f"p99 {p99:.2f} ms, {iv['error_total']} errors{note}")
    rss = iv["server_peak_rss_mib"]
    print(f"  [{verdict(rss < t_rss) if full else 'n/a'}] server RSS < {t_rss:.0f} MiB at {t_dev:.0f} devices: peak {rss:.1f} MiB{note}")
mr, mg = runs.get(("rust-sqlite", "max")), runs.get(("goosebit", "max"))
if mr and mg:
    ratio = mr["polls_per_s"] / mg["polls_per_s"] if mg["polls_per_s"] else float("inf")
    client = mr["client_cpu_s"] / (mr["duration_s"] + mr["warmup_s"])
    bound = " (load generator near one full core: rustupdate-server's figure is a lower bound)" if client > 0.85 else ""
    print(f"  [{verdict(ratio >= t_ratio)}] max-mode polls/s >= {t_ratio:.0f}x gooseBit at {mr['load']['connections']} connections: "
          f"{mr['polls_per_s']:.0f} vs {mg['polls_per_s']:.0f} = {ratio:.1f}x{bound}")
else:
    print("  [n/a] max-mode ratio to gooseBit (gooseBit not run)")
dp = runs.get(("rust-sqlite", "deploy"))
if dp:
    print(f"  [info] deployment phase on SQLite: {dp['deployments_completed']} of {dp['devices']} devices completed, "
          f"{dp['error_total']} errors")
print(f"results: {path}")
PY

if ((QUICK)); then
    bad=$(jq '[.runs[] | select(.server | startswith("rust-")) | .error_total] | add' "$OUT/results.json")
    [[ $bad == 0 ]] || die "quick run: fleet-load saw $bad errors against rustupdate-server"
    echo "quick run: no errors against rustupdate-server"
fi
