# shellcheck shell=bash
# Process counters for the server benchmarks (sourced, not run): CPU ticks and /proc/PID/status
# fields summed over a server's process tree, its peak RSS reset, the backlog after a load and a
# measured window between the load generator's start and end marks. Reads /proc only; kills
# nothing. The sourcing script sets USER_HZ (clock ticks per second) and BACKLOG_MAX_S (the
# longest a backlog is measured) before it calls backlog_seconds.

# The server process and its children (gunicorn's worker), one pid a line.
proc_tree() { echo "$1"; pgrep -P "$1" || true; }
# stat_ticks "FIELD..." PID...: the given fields of /proc/PID/stat (numbered after the
# parenthesised command name) summed over the PIDs (one that is gone counts nothing).
stat_ticks() {
    local fields=$1 total=0 pid t
    shift
    for pid in "$@"; do
        t=$(awk -v f="$fields" '{ sub(/^.*\) /, ""); n = split(f, k, " "); s = 0
                                 for (i = 1; i <= n; i++) s += $k[i]; print s }' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + t))
    done
    echo "$total"
}
# utime+stime of a process tree in ticks.
cpu_ticks() {
    local pids
    mapfile -t pids < <(proc_tree "$1")
    stat_ticks "12 13" "${pids[@]}"
}
# utime+stime+cutime+cstime over all processes of the PostgreSQL cluster owner.
pg_cpu_ticks() {
    local pids
    mapfile -t pids < <(pgrep -u postgres || true)
    stat_ticks "12 13 14 15" "${pids[@]}"
}
# A /proc/PID/status field in KiB summed over a process tree.
tree_kib() {
    local total=0 pid v
    for pid in $(proc_tree "$1"); do
        v=$(awk -v k="$2:" '$1 == k { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# Resets VmHWM to the current RSS for a process tree (Linux >= 4.0, clear_refs value 5).
reset_peak_rss() {
    local pid
    for pid in $(proc_tree "$1"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}

# Prints the seconds (at most BACKLOG_MAX_S) until the server tree uses at most a tenth of a core
# over one second: 0 when it is idle at once.
backlog_seconds() {
    local pid=$1 i c0 c1
    for ((i = 0; i < BACKLOG_MAX_S; i++)); do
        c0=$(cpu_ticks "$pid")
        sleep 1
        c1=$(cpu_ticks "$pid")
        ((c1 - c0 <= USER_HZ / 10)) && { echo "$i"; return 0; }
    done
    echo "$BACKLOG_MAX_S"
}

# watch_window MARK OUT PID PG LIMIT_S: waits for the generator's `start` mark, resets the
# server's peak RSS and samples the CPU counters; at the `end` mark samples them again and writes
# "cpu_ticks pg_ticks peak_rss_kib rss_kib" to OUT. Gives up after LIMIT_S.
watch_window() {
    local mark=$1 out=$2 pid=$3 pg=$4 deadline=$((SECONDS + $5)) c0 p0 c1 p1
    until grep -qx start "$mark" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
    reset_peak_rss "$pid"
    c0=$(cpu_ticks "$pid")
    p0=$( ((pg)) && pg_cpu_ticks || echo 0)
    until grep -qx end "$mark" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
    c1=$(cpu_ticks "$pid")
    p1=$( ((pg)) && pg_cpu_ticks || echo 0)
    echo "$((c1 - c0)) $((p1 - p0)) $(tree_kib "$pid" VmHWM) $(tree_kib "$pid" VmRSS)" >"$out"
}
