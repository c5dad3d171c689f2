# shellcheck shell=bash
# gooseBit (PyPI `goosebit`) for the ci/server-peers tests: install into a venv and start it on loopback
# with a fresh data directory. Sourced after ci/server-peers/lib.sh (uses log, fleet_fail, fleet_free_port,
# FLEET_PIDS, fleet_add_log, REPO_DIR).
#
# goosebit_install is also bench/fleet-load.sh's install (it sources this file; same version,
# same venv, so either script reuses the other's): a Python >= 3.11 venv in
# build/fleet-load/goosebit-venv with what gooseBit's own Dockerfile (docker/Dockerfile) installs:
# goosebit[postgresql]==GOOSEBIT_VERSION (asyncpg for PostgreSQL) and gunicorn, from PyPI. Only
# needs log, fleet_fail, REPO_DIR and WORK. The database schema is made by aerich, as that
# Dockerfile does before it starts the server; here the server is uvicorn with one worker
# (gooseBit supports no more, its issue #125). Device authentication stays off (gooseBit's
# default): any controller id is accepted and registered on its first poll, no Authorization
# header is needed.

readonly GOOSEBIT_VERSION=${GOOSEBIT_VERSION:-0.2.12}
# gunicorn is unpinned in gooseBit's Dockerfile; pinned here so that runs are repeatable.
readonly GOOSEBIT_GUNICORN_VERSION=${GOOSEBIT_GUNICORN_VERSION:-27.0.1}
readonly GOOSEBIT_VENV=$REPO_DIR/build/fleet-load/goosebit-venv
readonly GOOSEBIT_INSTALL_TIMEOUT_S=900
readonly GOOSEBIT_START_TIMEOUT_S=60

GOOSEBIT_PID=""
GOOSEBIT_URL=""
GOOSEBIT_SITE=""   # the installed package directory (goosebit/__init__.py lives there)

# A Python >= 3.11 (gooseBit's requirement): python3.11 first, as bench/fleet-load.sh uses.
goosebit_python() {
    local py
    for py in python3.11 python3.12 python3.13 python3; do
        command -v "$py" >/dev/null || continue
        "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v "$py"; return 0; }
    done
    return 1
}

# Installs gooseBit unless the venv already holds GOOSEBIT_VERSION with its PostgreSQL extra and
# GOOSEBIT_GUNICORN_VERSION.
goosebit_install() {
    local py have want="$GOOSEBIT_VERSION $GOOSEBIT_GUNICORN_VERSION"
    have=$("$GOOSEBIT_VENV/bin/python" -c 'import importlib.metadata as m, asyncpg; print(m.version("goosebit"), m.version("gunicorn"))' 2>/dev/null || true)
    if [[ ! -x $GOOSEBIT_VENV/bin/uvicorn || $have != "$want" ]]; then
        py=$(goosebit_python) || fleet_fail "gooseBit $GOOSEBIT_VERSION needs Python >= 3.11 (python3.11, python3.12, python3.13 or python3 on PATH)"
        log "installing goosebit $GOOSEBIT_VERSION into $GOOSEBIT_VENV"
        rm -rf "$GOOSEBIT_VENV"
        mkdir -p "$(dirname "$GOOSEBIT_VENV")"
        "$py" -m venv "$GOOSEBIT_VENV" || fleet_fail "python3.11 -m venv $GOOSEBIT_VENV failed"
        timeout "$GOOSEBIT_INSTALL_TIMEOUT_S" "$GOOSEBIT_VENV/bin/pip" install -q "goosebit[postgresql]==$GOOSEBIT_VERSION" \
            "gunicorn==$GOOSEBIT_GUNICORN_VERSION" \
            >"$WORK/goosebit-pip.log" 2>&1 ||
            { tail -n 20 "$WORK/goosebit-pip.log" >&2; fleet_fail "pip install goosebit[postgresql]==$GOOSEBIT_VERSION failed"; }
    fi
    GOOSEBIT_SITE=$("$GOOSEBIT_VENV/bin/python" -c 'import goosebit, os; print(os.path.dirname(goosebit.__file__))' 2>/dev/null) ||
        fleet_fail "goosebit does not import from $GOOSEBIT_VENV"
}

# goosebit_schema DATA_DIR LOG NAME=VALUE...: gooseBit's database schema, made as its Dockerfile
# does before it starts the server (aerich upgrade with the installed package's migrations), in
# DATA_DIR with the environment NAME=VALUE... (the server's); aerich's output goes to LOG. cwd is
# DATA_DIR: gooseBit also reads ./goosebit.yaml, which must not be a stray one. Returns aerich's
# status; the caller reports a failure. Used by goosebit_start and bench/fleet-load.sh.
goosebit_schema() {
    local dir=$1 log=$2
    shift 2
    printf '[tool.aerich]\ntortoise_orm = "goosebit.db.config.TORTOISE_CONF"\nlocation = "%s/db/migrations"\n' \
        "$GOOSEBIT_SITE" >"$dir/aerich.toml"
    (cd "$dir" && env "$@" timeout 120 "$GOOSEBIT_VENV/bin/aerich" --config aerich.toml upgrade) >"$log" 2>&1
}

# The environment gooseBit reads its settings from (pydantic-settings, prefix GOOSEBIT_): the
# server and ci/server-peers/goosebit/add_software.py must see the same database and artifacts dir.
# Usage: goosebit_env DATA_DIR POLL_TIME(HH:MM:SS) -> prints NAME=VALUE lines for `env`.
goosebit_env() {
    local dir=$1 poll=$2
    printf '%s\n' "GOOSEBIT_DB_URI=sqlite://$dir/db.sqlite3" "GOOSEBIT_ARTIFACTS_DIR=$dir/artifacts" \
        "GOOSEBIT_POLL_TIME=$poll" "GOOSEBIT_TRACK_DEVICE_IP=true"
}

# Starts gooseBit on a free loopback port with a fresh data directory DATA_DIR; sets GOOSEBIT_URL
# and GOOSEBIT_PID (stopped by lib.sh's EXIT trap). Usage: goosebit_start DATA_DIR POLL_TIME
goosebit_start() {
    local dir=$1 poll=$2 port deadline
    local -a env_vars
    mapfile -t env_vars < <(goosebit_env "$dir" "$poll")
    rm -rf "$dir"
    mkdir -p "$dir/artifacts"
    goosebit_schema "$dir" "$dir/aerich.log" "${env_vars[@]}" ||
        { tail -n 20 "$dir/aerich.log" >&2; fleet_fail "aerich upgrade (gooseBit schema) failed"; }
    port=$(fleet_free_port)
    GOOSEBIT_URL=http://127.0.0.1:$port
    # cwd = the data dir: gooseBit also reads ./goosebit.yaml, which must not be a stray one.
    (cd "$dir" && exec env "${env_vars[@]}" "$GOOSEBIT_VENV/bin/uvicorn" goosebit:app \
        --host 127.0.0.1 --port "$port" --workers 1) >"$dir/goosebit.log" 2>&1 </dev/null &
    GOOSEBIT_PID=$!
    FLEET_PIDS+=("$GOOSEBIT_PID")
    fleet_add_log "$dir/goosebit.log"
    deadline=$((SECONDS + GOOSEBIT_START_TIMEOUT_S))
    # /login answers 302 (to /setup) without users: up, and no device is registered by probing.
    until curl -s -o /dev/null -m 2 "$GOOSEBIT_URL/login"; do
        kill -0 "$GOOSEBIT_PID" 2>/dev/null || fleet_fail "gooseBit exited during start-up (log: $dir/goosebit.log)"
        ((SECONDS < deadline)) || fleet_fail "gooseBit did not answer $GOOSEBIT_URL/login within ${GOOSEBIT_START_TIMEOUT_S}s"
        sleep 0.2
    done
    log "gooseBit $GOOSEBIT_VERSION up at $GOOSEBIT_URL (pid $GOOSEBIT_PID)"
}
