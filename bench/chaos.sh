#!/usr/bin/env bash
# Chaos run of the fleet server (issue 20, operations): devices run a rollout while the database
# restarts and the server is killed, and afterwards no action is lost or given out twice.
#
# Per backend, against a fresh database: rustupdate-server (poll interval 1 s) with CHAOS_DEVICES
# registered devices and a started one-phase rollout; bench/lib/chaos_devices.py runs every device
# as rustupdate's daemon does (deploymentBase, proceeding, an install of 2-6 s, closed/success),
# starting at random times within the first 25 s so that requests arrive all through the chaos,
# resending what was not acknowledged. Meanwhile, at fixed times:
#   PostgreSQL only: `ci/postgres.sh stop` (fast shutdown, clients disconnected) at 4 s, started
#   again at 14 s (longer than the server's 5 s wait for a connection): requests in between must
#   be answered 503 (or find no answer), never 500;
#   both: the server is killed with SIGKILL at 20 s and started again on the same port at 22 s.
# Afterwards, from the management API: every device must have exactly one action of the rollout
# (doubled: devices given two), every acknowledged success must be stored as succeeded (lost: any
# that is not), and the rollout must count every device succeeded.
#
# Usage: bench/chaos.sh [--quick] [--enforce] [--no-sqlite] [--no-postgres]
#   --quick     debug build (as ci/server-test.sh builds it), CHAOS_DEVICES default 60
#   --enforce   exit 1 unless lost = 0, doubled = 0, no answer other than 2xx/503 and every
#               device succeeded, on every backend run
# Output: a line per backend and build/chaos/results.json. docs/server.md keeps the figures.
# Exit codes: 0 done (with --enforce: and every check held), 1 failure, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^# Output:/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "bench/chaos.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

QUICK=0 ENFORCE=0 RUN_SQLITE=1 RUN_PG=1
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --enforce) ENFORCE=1 ;;
    --no-sqlite) RUN_SQLITE=0 ;;
    --no-postgres) RUN_PG=0 ;;
    *) usage ;;
    esac
done
if ((QUICK)); then PROFILE=debug DEVICES=${CHAOS_DEVICES:-60}; else PROFILE=release DEVICES=${CHAOS_DEVICES:-200}; fi
readonly SERVER_BIN=$ROOT/tools/server/target/$PROFILE/rustupdate-server
readonly OUT=$ROOT/build/chaos
readonly PG_STOP_AT=4 PG_START_AT=14 KILL_AT=20 RESTART_AT=22 DEADLINE_S=90
mkdir -p "$OUT"

# shellcheck source=lib/common.sh
source "$ROOT/bench/lib/common.sh"
PG_STARTED=0
cleanup_extra() { if ((PG_STARTED)); then ci/postgres.sh stop >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then ci/apt-install.sh jq curl >&2; fi
if [[ ! -x $SERVER_BIN ]]; then
    log "building rustupdate-server ($PROFILE)"
    flags=()
    [[ $PROFILE == release ]] && flags=(--release)
    cargo build "${flags[@]}" --locked -q --manifest-path tools/server/Cargo.toml --bin rustupdate-server
fi

# start_server DIR PORT LOG [serve flags…]: starts it, waits for /healthz; sets SERVER_PID.
start_server() {
    local dir=$1 port=$2 logfile=$3 i
    shift 3
    "$SERVER_BIN" --data-dir "$dir" --listen "127.0.0.1:$port" --poll-interval 1 "$@" >>"$logfile" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for ((i = 0; i < 300; i++)); do
        curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$port/healthz" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "rustupdate-server exited (log: $logfile)"
        sleep 0.1
    done
    die "rustupdate-server did not answer within 30 s (log: $logfile)"
}

# run_backend NAME [--database URL]
run_backend() {
    local name=$1
    shift
    local dir=$OUT/$name-data port logfile=$OUT/$name-server.log url tokens=$OUT/$name-tokens
    rm -rf "$dir" "$logfile" "$tokens"
    mkdir -p "$dir"
    port=$(free_port)
    url=http://127.0.0.1:$port
    start_server "$dir" "$port" "$logfile" "$@"
    local client=(--server "$url" --admin-token-file "$dir/admin.token" --json) i
    for ((i = 0; i < DEVICES; i++)); do
        printf 'chaos-%04d %s\n' "$i" "$("$SERVER_BIN" device add "$(printf 'chaos-%04d' "$i")" \
            --device-type chaos-board "${client[@]}" | jq -r .token)" >>"$tokens"
    done
    head -c 65536 /dev/urandom >"$OUT/artifact.bin"
    local artifact rollout
    artifact=$("$SERVER_BIN" artifact upload "$OUT/artifact.bin" --foreign --name chaos --version 2.0.0 \
        --device-type chaos-board "${client[@]}" | jq -r .id)
    rollout=$("$SERVER_BIN" rollout create --name chaos --artifact "$artifact" --device-type chaos-board \
        --phases 100 --error-threshold 100% --start "${client[@]}" | jq -r .id)
    log "$name: $DEVICES devices, rollout $rollout started; chaos begins"
    python3 bench/lib/chaos_devices.py --url "$url" --tokens "$tokens" --deadline-s "$DEADLINE_S" --seed "$RANDOM" \
        --start-spread-s 25 \
        >"$OUT/$name-devices.json" &
    local driver=$!
    PIDS+=("$driver")
    local start=$SECONDS events=()
    if [[ $name == postgres ]]; then
        sleep $((PG_STOP_AT - (SECONDS - start)))
        ci/postgres.sh stop >/dev/null
        events+=("postgres stopped at $((SECONDS - start)) s")
        sleep $((PG_START_AT - (SECONDS - start)))
        ci/postgres.sh start >/dev/null
        events+=("postgres started at $((SECONDS - start)) s")
    fi
    sleep $((KILL_AT - (SECONDS - start)))
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    events+=("server killed (SIGKILL) at $((SECONDS - start)) s")
    sleep $((RESTART_AT - (SECONDS - start)))
    start_server "$dir" "$port" "$logfile" "$@"
    events+=("server restarted at $((SECONDS - start)) s")
    wait "$driver" || die "$name: the device driver failed"
    curl -fsS -m 10 -H "Authorization: Bearer $(cat "$dir/admin.token")" "$url/api/v1/rollouts/$rollout" \
        >"$OUT/$name-rollout.json"
    : >"$OUT/$name-actions.jsonl"
    while read -r id _; do
        curl -fsS -m 10 -H "Authorization: Bearer $(cat "$dir/admin.token")" "$url/api/v1/devices/$id" |
            jq -c --arg id "$id" --argjson r "$rollout" \
                '{id: $id, actions: [.actions[] | select(.rollout_id == $r) | {id, state}]}' >>"$OUT/$name-actions.jsonl"
    done <"$tokens"
    stop_pid "$SERVER_PID"
    python3 - "$name" "$OUT/$name-devices.json" "$OUT/$name-actions.jsonl" "$OUT/$name-rollout.json" \
        "$(printf '%s\n' "${events[@]}")" >"$OUT/$name.json" <<'PY'
import json, sys
name, devices_path, actions_path, rollout_path, events = sys.argv[1:6]
driver = json.load(open(devices_path))
stored = {row["id"]: row["actions"] for row in map(json.loads, open(actions_path))}
rollout = json.load(open(rollout_path))
requests = driver["requests"]
lost = [d for d, r in driver["devices"].items()
        if r["acknowledged"] is not None
        and not any(a["id"] == r["acknowledged"] and a["state"] == "succeeded" for a in stored.get(d, []))]
doubled = [d for d, r in driver["devices"].items() if len(r["actions"]) > 1 or len(stored.get(d, [])) > 1]
succeeded = sum(p["succeeded"] for p in rollout["phases"])
print(json.dumps({
    "backend": name, "devices": len(driver["devices"]), "events": events.splitlines(),
    "requests": sum(requests.values()), "answered_503": requests.get("503", 0),
    "no_answer": requests.get("no-answer", 0),
    # A feedback resent after its answer was lost, refused as a replay (409): delivered, no failure.
    "replayed_after_lost_answer": requests.get("409-after-lost-answer", 0),
    "other_failures": sum(n for k, n in requests.items()
                          if k not in ("200", "503", "no-answer", "409-after-lost-answer")),
    "by_status": requests, "acknowledged": sum(r["acknowledged"] is not None for r in driver["devices"].values()),
    "succeeded": succeeded, "actions_lost": len(lost), "actions_doubled": len(doubled),
    "lost": lost[:10], "doubled": doubled[:10],
}))
PY
    log "$name: $(jq -c '{requests, answered_503, no_answer, replayed_after_lost_answer, other_failures, succeeded, actions_lost, actions_doubled}' "$OUT/$name.json")"
}

RESULTS=()
if ((RUN_SQLITE)); then
    run_backend sqlite
    RESULTS+=("$OUT/sqlite.json")
fi
if ((RUN_PG)); then
    # Stopped at the end only if this script started it (ci/server-test.sh has its own).
    if ! (exec 3<>/dev/tcp/127.0.0.1/54329) 2>/dev/null; then PG_STARTED=1; fi
    run_backend postgres --database "$(ci/postgres.sh createdb chaos)"
    RESULTS+=("$OUT/postgres.json")
fi
((${#RESULTS[@]})) || die "nothing to run"
jq -s '{date: (now | todate), runs: .}' "${RESULTS[@]}" >"$OUT/results.json"
failed=0
for json in "${RESULTS[@]}"; do
    if jq -e '.actions_lost == 0 and .actions_doubled == 0 and .other_failures == 0 and .succeeded == .devices' \
        "$json" >/dev/null; then
        echo "[held] $(jq -r '"\(.backend): \(.devices) devices, \(.requests) requests, \(.answered_503) answered 503, \(.no_answer) unanswered, 0 other failures; lost 0, doubled 0, all succeeded"' "$json")"
    else
        failed=1
        echo "[BROKEN] $(jq -c '{backend, other_failures, by_status, succeeded, devices, actions_lost, actions_doubled, lost, doubled}' "$json")"
    fi
done
echo "results: $OUT/results.json"
if ((ENFORCE && failed)); then die "--enforce: a chaos check did not hold"; fi
