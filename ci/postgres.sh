#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests of rustupdate-server, from Debian's packages
# (postgresql-15 on bookworm; the binaries are found under /usr/lib/postgresql/*/bin).
#
# Data lives in build/postgres/data, the log in build/postgres/postgres.log. The cluster listens
# on 127.0.0.1:54329 only (TCP; no Unix socket, so nothing outside build/ is touched), trusts
# every local and 127.0.0.1 connection, and has a database `rustupdate`. Durability settings are
# PostgreSQL's defaults, so load numbers taken against it are honest.
#
# Usage: ci/postgres.sh start          initdb on first use, start (idempotent), print the URL
#        ci/postgres.sh stop           pg_ctl stop -m fast; fine when not running
#        ci/postgres.sh url            print postgres://postgres@127.0.0.1:54329/rustupdate
#        ci/postgres.sh createdb NAME  (re)create database NAME empty, starting the cluster if
#                                      needed; print its URL. An existing NAME is dropped first
#                                      (with its connections), so each test gets a fresh one.
#        ci/postgres.sh destroy        stop and delete build/postgres
# Exit codes: 0 ok, 1 failure, 2 usage.
# As root (CI), the server runs as user `postgres` (via runuser); otherwise as the caller.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PORT=54329
readonly HOST=127.0.0.1
readonly DEFAULT_DB=rustupdate
readonly START_TIMEOUT_S=60
readonly PG_ROOT=build/postgres
readonly PGDATA_DIR=$PG_ROOT/data
readonly PG_LOG=$PG_ROOT/postgres.log

die() { echo "ci/postgres.sh: $*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Exit codes/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

url_for() { echo "postgres://postgres@$HOST:$PORT/$1"; }

pg_bindir() {
    local dir
    # Newest installed major version first.
    for dir in $(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -t/ -k5 -rn); do
        [[ -x $dir/pg_ctl ]] && { echo "$dir"; return 0; }
    done
    return 1
}

ensure_packages() {
    if ! pg_bindir >/dev/null; then
        ci/apt-install.sh postgresql-15 >&2
    fi
    BIN=$(pg_bindir) || die "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
}

# Runs a PostgreSQL program as the cluster owner.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [[ -f $PGDATA_DIR/PG_VERSION ]] && as_owner "$BIN/pg_ctl" status -D "$ABS_PGDATA" >/dev/null 2>&1
}

init_cluster() {
    [[ -f $PGDATA_DIR/PG_VERSION ]] && return 0
    echo "initdb in $PGDATA_DIR" >&2
    rm -rf "$PGDATA_DIR"
    mkdir -p "$PGDATA_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        # The owner must reach the data directory through every parent.
        local d
        d=$ABS_PGDATA
        while [[ $d != / ]]; do
            d=$(dirname "$d")
            runuser -u postgres -- test -x "$d" || die "user postgres cannot enter $d (needs o+x)"
        done
        chown postgres: "$PG_ROOT" "$PGDATA_DIR"
    fi
    chmod 700 "$PGDATA_DIR"
    as_owner "$BIN/initdb" -D "$ABS_PGDATA" -U postgres --auth-local=trust --auth-host=trust \
        --encoding=UTF8 --no-locale --no-instructions >"$PG_ROOT/initdb.log" 2>&1 ||
        { cat "$PG_ROOT/initdb.log" >&2; die "initdb failed"; }
    as_owner tee -a "$ABS_PGDATA/postgresql.conf" >/dev/null <<EOF

# ci/postgres.sh: TCP on loopback only, no Unix socket.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = ''
max_connections = 200
EOF
}

port_busy() {
    # Any listener on the port that is not our cluster.
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

psql_admin() {
    "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d postgres "$@"
}

ensure_db() {
    local name=$1
    if [[ -z $(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
        "$BIN/createdb" -h "$HOST" -p "$PORT" -U postgres "$name"
    fi
}

cmd_start() {
    ensure_packages
    (
        # One start at a time (parallel test jobs may all call start).
        flock -w "$START_TIMEOUT_S" 9 || die "timed out waiting for $PG_ROOT/lock"
        if ! is_running; then
            init_cluster
            port_busy && die "$HOST:$PORT is in use by another program"
            if [[ $(id -u) -eq 0 ]]; then
                touch "$PG_LOG"
                chown postgres: "$PG_LOG"
            fi
            # 9>&-: the postmaster must not inherit (and so hold forever) the start lock.
            as_owner "$BIN/pg_ctl" start -D "$ABS_PGDATA" -l "$ABS_PG_LOG" -w -t "$START_TIMEOUT_S" >/dev/null 9>&- ||
                { tail -n 30 "$PG_LOG" >&2; die "pg_ctl start failed (log: $PG_LOG)"; }
        fi
        ensure_db "$DEFAULT_DB"
    ) 9>"$PG_ROOT/lock"
}

cmd_stop() {
    [[ -f $PGDATA_DIR/PG_VERSION ]] || return 0
    ensure_packages
    if is_running; then
        as_owner "$BIN/pg_ctl" stop -D "$ABS_PGDATA" -m fast -w -t "$START_TIMEOUT_S" >/dev/null
    fi
}

cmd_createdb() {
    local name=$1
    [[ $name =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name must match [a-z_][a-z0-9_]*: $name"
    cmd_start
    PGOPTIONS="-c client_min_messages=warning" "$BIN/dropdb" -h "$HOST" -p "$PORT" -U postgres --if-exists --force "$name"
    "$BIN/createdb" -h "$HOST" -p "$PORT" -U postgres "$name"
}

mkdir -p "$PG_ROOT"
ABS_PGDATA=$(realpath -m "$PGDATA_DIR")
ABS_PG_LOG=$(realpath -m "$PG_LOG")
BIN=""

case "${1:-}" in
start)
    [[ $# -eq 1 ]] || usage
    cmd_start
    url_for "$DEFAULT_DB"
    ;;
stop)
    [[ $# -eq 1 ]] || usage
    cmd_stop
    ;;
url)
    [[ $# -eq 1 ]] || usage
    url_for "$DEFAULT_DB"
    ;;
createdb)
    [[ $# -eq 2 ]] || usage
    cmd_createdb "$2"
    url_for "$2"
    ;;
destroy)
    [[ $# -eq 1 ]] || usage
    cmd_stop
    rm -rf "$PG_ROOT"
    ;;
*) usage ;;
esac
