# shellcheck shell=bash
# Helpers shared by the bench/*.sh scripts (sourced, not run): stopping the processes a script
# started, by pid, and a free loopback port.
#
# A script appends the pid of every process it starts to PIDS and installs `trap cleanup EXIT`;
# cleanup stops them all and then runs the script's own cleanup_extra, if it defines one (e.g.
# stopping a PostgreSQL cluster it started). Nothing here kills by name.

PIDS=()   # every process the sourcing script started, stopped by cleanup

# Stops a process politely (TERM), then firmly (KILL) after 10 s; fine when it is gone already.
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

# Prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Stops every process in PIDS, then calls cleanup_extra when the script defines it.
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
}
