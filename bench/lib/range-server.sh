# shellcheck shell=bash
# The HTTP side of the delta benchmarks, bench/delta-bench.sh and bench/delta-peers.sh (sourced,
# not run): bench/lib/range_server.py started on a free loopback port (it binds port 0 and writes
# the port to a file), every server stopped by its pid, and the EXIT trap that also detaches the
# slot's loop device. The sourcing script sets SERVER (range_server.py), SRV (the directory
# served) and LOGS, defines die and log, and puts the loop device it attached, if any, in LOOP.
# Nothing here kills by name.

SERVER_PIDS=()  # the range servers started and not stopped yet
LOOP=""         # the loop device over slot b, detached on exit

# start_server NAME: serves $SRV, logging to $LOGS/NAME.http.jsonl; sets URL.
start_server() {
    local name=$1 portfile=$LOGS/$1.port
    rm -f "$portfile" "$LOGS/$name.http.jsonl"
    python3 "$SERVER" serve "$SRV" --log "$LOGS/$name.http.jsonl" --port-file "$portfile" >/dev/null &
    SERVER_PIDS+=($!)
    for _ in $(seq 100); do [[ -s $portfile ]] && break; sleep 0.1; done
    [[ -s $portfile ]] || die "range_server.py did not start"
    # shellcheck disable=SC2034  # URL is read by the sourcing script
    URL=http://127.0.0.1:$(cat "$portfile")
}

# Stops every server start_server started (TERM, then waits for it).
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}

# The EXIT trap: the servers stopped, the loop device detached.
cleanup() {
    stop_servers
    if [[ -n $LOOP ]]; then
        losetup -d "$LOOP" 2>/dev/null || log "could not detach $LOOP"
        LOOP=""
    fi
}
