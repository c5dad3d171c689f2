# shellcheck shell=bash
# shellcheck disable=SC2034  # variables set here are read by the sourcing test scripts
# Shared by the ci/server-peers/*-test.sh scripts (sourced, not run): a scratch directory, a
# rustupdate-server on a free loopback port, its CLI, bounded waits, and cleanup of exactly the
# processes the test started (by pid, or by the process group a test created with setsid).
#
# A test calls, in order:  fleet_init NAME  ->  fleet_start_server BIN [serve flags…]  ->  …
# and may call fleet_fail MESSAGE at any point; the EXIT trap prints the logs on failure, stops
# what was started and removes the scratch directory (kept when FLEET_KEEP=1 or on failure).

FLEET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$FLEET_DIR/../.." && pwd)
readonly FLEET_DIR REPO_DIR
readonly FLEET_SERVER_START_TIMEOUT_S=30
readonly FLEET_STOP_TIMEOUT_S=10

FLEET_NAME=""
WORK=""
SERVER_BIN=""
SERVER_PID=""
SERVER_PORT=""
SERVER_URL=""
DATA_DIR=""
FLEET_OK=0
FLEET_PIDS=()   # plain processes, stopped by pid
FLEET_PGIDS=()  # process groups created by setsid, stopped as a group
FLEET_LOGS=()   # printed on failure

log() { printf '[%s %s] %s\n' "$FLEET_NAME" "$(date +%T)" "$*" >&2; }

fleet_fail() {
    log "FAIL: $*"
    exit 1
}

fleet_init() {
    FLEET_NAME=$1
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/rustupdate-$FLEET_NAME.XXXXXX")
    trap fleet_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Registers a log file to print when the test fails.
fleet_add_log() { FLEET_LOGS+=("$1"); }

# Stops a process (by pid) politely, then firmly; waits a bounded time.
fleet_stop_pid() {
    local pid=$1 deadline
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + FLEET_STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for ${FLEET_STOP_TIMEOUT_S}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Stops a process group created with setsid (a daemon that forks workers, e.g. swupdate).
fleet_stop_group() {
    local pgid=$1 deadline
    kill -0 -- "-$pgid" 2>/dev/null || { wait "$pgid" 2>/dev/null || true; return 0; }
    kill -TERM -- "-$pgid" 2>/dev/null || true
    deadline=$((SECONDS + FLEET_STOP_TIMEOUT_S))
    while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 -- "-$pgid" 2>/dev/null; then
        log "process group $pgid ignored SIGTERM for ${FLEET_STOP_TIMEOUT_S}s, sending SIGKILL"
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    wait "$pgid" 2>/dev/null || true
    # Forget it, so cleanup never signals a group id the system may have reused.
    local kept=() g
    for g in "${FLEET_PGIDS[@]}"; do [[ $g == "$pgid" ]] || kept+=("$g"); done
    FLEET_PGIDS=("${kept[@]}")
}

# Starts CMD in the background in a new session (so its workers can be stopped as one group),
# output to LOG; sets FLEET_LAST_PGID. Usage: fleet_spawn_group LOG CMD…
fleet_spawn_group() {
    local out=$1
    shift
    setsid "$@" >"$out" 2>&1 </dev/null &
    local pid=$! deadline
    # Not a group leader in a non-interactive shell, so setsid did not fork: pid == pgid, once
    # the child has called setsid(); until then the group does not exist.
    FLEET_LAST_PGID=$pid
    FLEET_PGIDS+=("$pid")
    deadline=$((SECONDS + 5))
    until kill -0 -- "-$pid" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 0 # exited at once; the caller sees it
        ((SECONDS < deadline)) || fleet_fail "pid $pid did not become a process group: $*"
        sleep 0.05
    done
}

fleet_cleanup() {
    local rc=$? i f
    trap - EXIT
    for ((i = ${#FLEET_PGIDS[@]} - 1; i >= 0; i--)); do fleet_stop_group "${FLEET_PGIDS[i]}"; done
    for ((i = ${#FLEET_PIDS[@]} - 1; i >= 0; i--)); do fleet_stop_pid "${FLEET_PIDS[i]}"; done
    if [[ $rc -ne 0 || $FLEET_OK -ne 1 ]]; then
        for f in "${FLEET_LOGS[@]}"; do
            [[ -f $f ]] || continue
            printf '\n----- %s (last 150 lines) -----\n' "$f" >&2
            tail -n 150 "$f" >&2
        done
        [[ -n $WORK ]] && log "failed; scratch directory kept: $WORK"
        [[ $rc -eq 0 ]] && rc=1
    elif [[ ${FLEET_KEEP:-0} == 1 ]]; then
        log "scratch directory kept (FLEET_KEEP=1): $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# Polls "$@" until it succeeds; fails the test after TIMEOUT seconds. The command may exit 2 to
# say "this will never succeed" (e.g. the action failed), which fails the test at once.
# Usage: fleet_wait_for DESCRIPTION TIMEOUT_S INTERVAL_S CMD…
fleet_wait_for() {
    local what=$1 timeout=$2 interval=$3 deadline rc
    shift 3
    deadline=$((SECONDS + timeout))
    while :; do
        rc=0
        "$@" || rc=$?
        [[ $rc -eq 0 ]] && return 0
        [[ $rc -eq 2 ]] && fleet_fail "$what: gave up early (see above)"
        ((SECONDS >= deadline)) && fleet_fail "$what: not reached within ${timeout}s"
        sleep "$interval"
    done
}

fleet_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

fleet_server_up() {
    kill -0 "$SERVER_PID" 2>/dev/null || { log "rustupdate-server exited"; return 2; }
    curl -fsS -o /dev/null --max-time 2 "$SERVER_URL/healthz"
}

# Starts rustupdate-server on a free port with a fresh data dir (DATA_DIR, created before so a
# test may put keys into DATA_DIR/keys first). Extra serve flags are passed through. With
# FLEET_DATABASE=postgres://… (e.g. from `ci/postgres.sh createdb NAME`) it uses that database
# instead of SQLite in the data dir; the database must be empty.
# Sets SERVER_URL, SERVER_PORT, SERVER_PID.
fleet_start_server() {
    SERVER_BIN=$(realpath "$1")
    shift
    [[ -x $SERVER_BIN ]] || fleet_fail "server binary not executable: $SERVER_BIN"
    DATA_DIR=${DATA_DIR:-$WORK/data}
    mkdir -p "$DATA_DIR"
    local attempt
    for attempt in 1 2 3; do
        SERVER_PORT=$(fleet_free_port)
        SERVER_URL=http://127.0.0.1:$SERVER_PORT
        RUST_LOG=${RUST_LOG:-info} "$SERVER_BIN" --data-dir "$DATA_DIR" --listen "127.0.0.1:$SERVER_PORT" \
            ${FLEET_DATABASE:+--database "$FLEET_DATABASE"} "$@" >"$WORK/server.log" 2>&1 </dev/null &
        SERVER_PID=$!
        FLEET_PIDS+=("$SERVER_PID")
        fleet_add_log "$WORK/server.log"
        local deadline=$((SECONDS + FLEET_SERVER_START_TIMEOUT_S)) rc=1
        while ((SECONDS < deadline)); do
            rc=0
            fleet_server_up 2>/dev/null || rc=$?
            [[ $rc -eq 0 || $rc -eq 2 ]] && break
            sleep 0.2
        done
        if [[ $rc -eq 0 ]]; then
            [[ -s $DATA_DIR/admin.token ]] || fleet_fail "server is up but $DATA_DIR/admin.token is missing"
            log "rustupdate-server up at $SERVER_URL (pid $SERVER_PID)"
            return 0
        fi
        # Someone else may have taken the port between choosing and binding it: try another.
        if [[ $rc -eq 2 ]] && grep -qi 'address already in use' "$WORK/server.log"; then
            wait "$SERVER_PID" 2>/dev/null || true
            mv "$WORK/server.log" "$WORK/server.attempt$attempt.log"
            continue
        fi
        fleet_fail "rustupdate-server did not answer $SERVER_URL/healthz within ${FLEET_SERVER_START_TIMEOUT_S}s"
    done
    fleet_fail "could not find a free port for rustupdate-server"
}

# The operator CLI against the test's server.
fleet_cli() {
    "$SERVER_BIN" "$@" --server "$SERVER_URL" --admin-token-file "$DATA_DIR/admin.token"
}

# The CLI with --json; fails the test with the command line when the CLI fails (its own message
# is on stderr already). Use as VAR=$(fleet_cli_json …): the failure ends the caller too.
fleet_cli_json() {
    local out
    out=$(fleet_cli "$@" --json) || fleet_fail "rustupdate-server $* --json failed"
    printf '%s\n' "$out"
}

# Reads JSON on stdin and prints the value at a path of keys/indexes, e.g. `fleet_json id`,
# `fleet_json phases 0 succeeded`; strings plain, everything else as JSON.
fleet_json() {
    python3 -c '
import json, sys
text = sys.stdin.read()
try:
    v = json.loads(text)
    for k in sys.argv[1:]:
        v = v[int(k)] if isinstance(v, list) else v[k]
except (ValueError, KeyError, IndexError, TypeError) as e:
    sys.exit(f"fleet_json: no {sys.argv[1:]} ({type(e).__name__}: {e}) in: {text[:300]!r}")
print(v if isinstance(v, str) else json.dumps(v))' "$@"
}

# A DDI request as a device: fleet_ddi METHOD CONTROLLER_ID TOKEN PATH_SUFFIX [JSON_BODY]
# (PATH_SUFFIX "" is the poll). Prints the body; fails on HTTP errors.
fleet_ddi() {
    local method=$1 id=$2 token=$3 suffix=$4 body=${5:-}
    local args=(-fsS --max-time 10 -X "$method" -H "Authorization: TargetToken $token")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data "$body")
    curl "${args[@]}" "$SERVER_URL/DEFAULT/controller/v1/$id$suffix"
}
