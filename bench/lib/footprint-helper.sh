# shellcheck shell=bash
# The Python helper of bench/daemon-footprint.sh (sourced, not run): write_helper writes it to
# $HELPER, which the sourcing script sets. The helper is a TCP relay that logs every request line
# (the polls the daemon makes), a /proc sampler of the daemon, and the analysis that prints the
# table and writes results.json. Python 3's standard library only.

write_helper() {
    cat >"$HELPER" <<'PY'
"""Helpers of bench/daemon-footprint.sh (written by it from bench/lib/footprint-helper.sh; edit that,
not this file).

relay PORT_FILE UPSTREAM_PORT LOG   TCP relay on 127.0.0.1 logging "time request-line" per request
sample PID OUT PERIOD               /proc samples of PID until it exits
report OUT JSON_ARGS                analysis, table and results.json
"""
import json, os, re, socket, statistics, sys, threading, time

METHODS = (b"GET", b"PUT", b"POST", b"HEAD", b"DELETE")
POLL = re.compile(r"^GET /[^/]+/controller/v1/[^/ ]+ HTTP")


def relay(port_file, upstream, log_path):
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)

    def pump(src, dst, requests):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if requests and data.split(b" ", 1)[0] in METHODS:
                    line = data.split(b"\r\n", 1)[0].decode("latin-1")
                    with lock:
                        log.write(f"{time.time():.6f} {line}\n")
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    while True:
        client, _ = server.accept()
        try:
            up = socket.create_connection(("127.0.0.1", int(upstream)))
        except OSError:
            client.close()
            continue
        threading.Thread(target=pump, args=(client, up, True), daemon=True).start()
        threading.Thread(target=pump, args=(up, client, False), daemon=True).start()


def read(path):
    with open(path) as f:
        return f.read()


def sample(pid, out, period):
    period = float(period)
    f = open(out, "a", buffering=1)
    due = time.time()
    while True:
        try:
            status = read(f"/proc/{pid}/status")
            stat = read(f"/proc/{pid}/stat")
            tasks = os.listdir(f"/proc/{pid}/task")
            ns = runs = 0
            for task in tasks:
                try:
                    fields = read(f"/proc/{pid}/task/{task}/schedstat").split()
                except OSError:
                    continue
                ns += int(fields[0])
                runs += int(fields[2])
            try:
                io = dict(l.split(": ") for l in read(f"/proc/{pid}/io").splitlines())
                syscalls = int(io["syscr"]) + int(io["syscw"])
            except (OSError, KeyError, ValueError):
                syscalls = -1
        except (OSError, IndexError, ValueError):
            break
        t = time.time()
        st = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        kib = lambda k: int(st[k].split()[0]) if k in st else 0
        after = stat.rsplit(")", 1)[1].split()
        ticks = int(after[11]) + int(after[12])  # utime + stime, whole process
        if after[0] == "Z":
            break
        f.write(
            f"{t:.3f} {kib('VmRSS')} {kib('VmHWM')} {int(st['Threads'])} {ticks} {ns} {runs} "
            f"{kib('voluntary_ctxt_switches')} {kib('nonvoluntary_ctxt_switches')} {syscalls}\n"
        )
        due += period
        time.sleep(max(0.0, due - time.time()))


COLS = ("t", "rss", "hwm", "threads", "ticks", "ns", "runs", "vctx", "nvctx", "syscalls")


def samples(path):
    rows = []
    for line in open(path):
        parts = line.split()
        if len(parts) == len(COLS):
            rows.append(dict(zip(COLS, map(float, parts))))
    return rows


def requests(path):
    out = []
    if os.path.exists(path):
        for line in open(path):
            t, _, rest = line.rstrip("\n").partition(" ")
            out.append((float(t), rest))
    return out


def markers(run):
    out = {}
    path = os.path.join(run, "markers")
    if os.path.exists(path):
        for line in open(path):
            name, t = line.split()
            out[name] = float(t)
    return out


def first_at(rows, t):
    return next((r for r in rows if r["t"] >= t), None)


def last_at(rows, t):
    return next((r for r in reversed(rows) if r["t"] <= t), None)


def delta(a, b, key):
    return b[key] - a[key]


def idle_window(run, start, end):
    rows, reqs = samples(os.path.join(run, "samples.tsv")), requests(os.path.join(run, "relay.log"))
    a, b = first_at(rows, start), last_at(rows, end)
    if a is None or b is None or b["t"] <= a["t"]:
        raise SystemExit(f"{run}: no samples in the window")
    inside = [r for r in rows if a["t"] <= r["t"] <= b["t"]]
    polls = [t for t, line in reqs if a["t"] < t <= b["t"] and POLL.match(line)]
    other = [line for t, line in reqs if a["t"] < t <= b["t"] and not POLL.match(line)]
    n = max(len(polls), 1)
    ns = delta(a, b, "ns")
    wake = delta(a, b, "vctx") + delta(a, b, "nvctx")
    return {
        "window_s": round(b["t"] - a["t"], 1),
        "polls": len(polls),
        "other_requests": other,
        "cpu_ticks": int(delta(a, b, "ticks")),
        "cpu_ms": round(ns / 1e6, 2),
        "cpu_ms_per_poll": round(ns / 1e6 / n, 3),
        "cpu_ticks_per_poll": round(delta(a, b, "ticks") / n, 3),
        "context_switches_per_poll": round(wake / n, 1),
        "rw_syscalls_per_poll": round(delta(a, b, "syscalls") / n, 1) if a["syscalls"] >= 0 else None,
        "rss_steady_kib": int(statistics.median(r["rss"] for r in inside)),
        "rss_min_kib": int(min(r["rss"] for r in inside)),
        "rss_max_kib": int(max(r["rss"] for r in inside)),
        "hwm_kib": int(b["hwm"]),
        "threads": int(max(r["threads"] for r in inside)),
    }


def gaps(run):
    rows, reqs = samples(os.path.join(run, "samples.tsv")), requests(os.path.join(run, "relay.log"))
    polls = [t for t, line in reqs if POLL.match(line)]
    out = []
    for p, q in zip(polls, polls[1:]):
        a, b = first_at(rows, p + 1), last_at(rows, q - 1)
        if a is None or b is None or b["t"] - a["t"] < 1:
            continue
        between = [line for t, line in reqs if a["t"] < t < b["t"]]
        out.append({
            "quiet_s": round(b["t"] - a["t"], 1),
            "poll_to_poll_s": round(q - p, 2),
            "cpu_ticks": int(delta(a, b, "ticks")),
            "cpu_ns": int(delta(a, b, "ns")),
            "context_switches": int(delta(a, b, "vctx") + delta(a, b, "nvctx")),
            "rw_syscalls": int(delta(a, b, "syscalls")) if a["syscalls"] >= 0 else None,
            "requests": len(between),
            "threads": int(max(r["threads"] for r in rows if a["t"] <= r["t"] <= b["t"])),
        })
    last = rows[-1] if rows else None
    return out, (int(last["hwm"]) if last else None), (int(last["rss"]) if last else None)


def install(run, rollout, end):
    rows, reqs = samples(os.path.join(run, "samples.tsv")), requests(os.path.join(run, "relay.log"))
    start = next((t for t, line in reqs if t >= rollout and "/deploymentBase/" in line), rollout)
    a, b = last_at(rows, start - 0.01), first_at(rows, end + 0.5) or rows[-1]
    inside = [r for r in rows if a["t"] <= r["t"] <= b["t"]]
    return {
        "seconds": round(end - start, 1),
        "rss_before_kib": int(a["rss"]),
        "rss_after_kib": int(b["rss"]),
        "hwm_kib": int(b["hwm"]),
        "rss_max_sampled_kib": int(max(r["rss"] for r in inside)),
        "threads_max": int(max(r["threads"] for r in inside)),
        "cpu_s": round(delta(a, b, "ticks") / os.sysconf("SC_CLK_TCK"), 2),
    }


def report(out, args):
    args = json.loads(args)
    mib = lambda kib: kib / 1024
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **args["meta"], "sizes": args["sizes"]}
    idle_run, gap_run = os.path.join(out, "idle"), os.path.join(out, "gap")
    m = markers(idle_run)
    polls0 = [t for t, line in requests(os.path.join(idle_run, "relay.log")) if POLL.match(line)]
    idle = idle_window(idle_run, polls0[0] + 1, m["idle_end"])
    idle["server_poll_interval_s"] = args["poll_s"]
    result["idle"] = idle
    gap_list, gap_hwm, gap_rss = gaps(gap_run)
    result["gap"] = {"server_poll_interval_s": args["gap_poll_s"], "gaps": gap_list, "hwm_kib": gap_hwm, "rss_kib": gap_rss}
    if "install_start" in m and "install_end" in m:
        result["install"] = install(idle_run, m["install_start"], m["install_end"])
        result["install"]["image_mib"] = args["image_mib"]

    checks = []
    for s in args["sizes"]:
        if s.get("bytes"):
            ok = s["bytes"] < args["target_size_mib"] * 1048576
            checks.append((ok, f"stripped static client {s['arch']} < {args['target_size_mib']} MiB: {s['bytes'] / 1048576:.2f} MiB"))
    hwm = max(idle["hwm_kib"], gap_hwm or 0)
    checks.append((mib(hwm) < args["target_rss_mib"],
                   f"daemon idle RSS (VmHWM) < {args['target_rss_mib']} MiB: {mib(hwm):.2f} MiB"))
    quiet = sum(g["quiet_s"] for g in gap_list)
    ticks = sum(g["cpu_ticks"] for g in gap_list)
    checks.append((bool(gap_list) and ticks == 0,
                   f"no CPU between polls: {ticks} ticks over {quiet:.0f} s in {len(gap_list)} gaps"))
    result["checks"] = [{"pass": ok, "what": what} for ok, what in checks]
    result["pass"] = all(ok for ok, _ in checks)

    rows = []
    for s in args["sizes"]:
        if s.get("bytes"):
            rows.append((f"client size {s['arch']}, stripped", f"{s['bytes']:,} B = {s['bytes'] / 1048576:.2f} MiB"))
            rows.append((f"  as built (the profile strips symbols)", f"{s['built_bytes']:,} B"))
        else:
            rows.append((f"client size {s['arch']}", s.get("note", "not measured")))
    sw = args["meta"].get("swupdate")
    if sw:
        rows.append(("for comparison: Debian swupdate", f"{sw['bytes']:,} B = {sw['bytes'] / 1048576:.2f} MiB "
                     f"(version {sw['version']}, dynamically linked, {sw['shared_libraries']} shared libraries)"))
    rows += [
        ("idle: server poll interval", f"{args['poll_s']} s"),
        ("idle: window / polls", f"{idle['window_s']} s / {idle['polls']}"),
        ("idle: peak RSS (VmHWM)", f"{mib(idle['hwm_kib']):.2f} MiB"),
        ("idle: steady RSS (median VmRSS)", f"{mib(idle['rss_steady_kib']):.2f} MiB (min {mib(idle['rss_min_kib']):.2f}, max {mib(idle['rss_max_kib']):.2f})"),
        ("idle: threads", f"{idle['threads']}"),
        ("idle: CPU over window", f"{idle['cpu_ticks']} ticks, {idle['cpu_ms']:.1f} ms"),
        ("idle: CPU per poll", f"{idle['cpu_ms_per_poll']:.2f} ms ({idle['cpu_ticks_per_poll']:.2f} ticks)"),
        ("idle: context switches per poll", f"{idle['context_switches_per_poll']}"),
        ("idle: file read/write syscalls per poll", f"{idle['rw_syscalls_per_poll']}"),
        ("idle: other requests in window", f"{len(idle['other_requests'])}"),
        ("gap: server poll interval", f"{args['gap_poll_s']} s"),
    ]
    for i, g in enumerate(gap_list, 1):
        rows.append((f"gap {i}: quiet window (poll to poll)",
                     f"{g['quiet_s']} s ({g['poll_to_poll_s']} s): {g['cpu_ticks']} ticks, {g['cpu_ns']} ns, "
                     f"{g['context_switches']} context switches, {g['rw_syscalls']} r/w syscalls, {g['requests']} requests, "
                     f"{g['threads']} thread(s)"))
    if gap_hwm is not None:
        rows.append(("gap: peak RSS (VmHWM) / RSS at end", f"{mib(gap_hwm):.2f} / {mib(gap_rss):.2f} MiB"))
    if "install" in result:
        i = result["install"]
        rows += [
            ("install: image (random data)", f"{i['image_mib']} MiB, {i['seconds']} s from deploymentBase to reboot request"),
            ("install: peak RSS (VmHWM)", f"{mib(i['hwm_kib']):.2f} MiB"),
            ("install: max sampled RSS / threads", f"{mib(i['rss_max_sampled_kib']):.2f} MiB / {i['threads_max']}"),
            ("install: RSS before / 0.5 s after", f"{mib(i['rss_before_kib']):.2f} / {mib(i['rss_after_kib']):.2f} MiB"),
            ("install: CPU", f"{i['cpu_s']:.2f} s"),
        ]
    width = max(len(k) for k, _ in rows) + 2
    for k, v in rows:
        print(f"{k:<{width}}{v}")
    print()
    print("targets:")
    for ok, what in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {what}")
    path = os.path.join(out, "results.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"results: {path}")
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    {"relay": relay, "sample": sample, "report": report}[sys.argv[1]](*sys.argv[2:])
PY
}
