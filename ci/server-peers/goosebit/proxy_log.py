"""Checks on the JSON-lines request log of flaky_proxy.py (what the daemon sent, and when).

Usage: proxy_log.py LOG last                  -> number of the last request (0 if none)
       proxy_log.py LOG show [--after N]      -> one line per request (for logs and the summary)
       proxy_log.py LOG count [--after N] [--method M] [--path-contains S] [--status CODE]
       proxy_log.py LOG config-data --after N KEY=VALUE…
           the last configData PUT after request N carries these attributes (exit 1 if not)
       proxy_log.py LOG feedback --after N EXECUTION:FINISHED [--details-contains TEXT]…
           some deploymentBase feedback after request N has this execution and result
       proxy_log.py LOG backoff --faults K --base S --max-interval S --min-ratio R
           the first K requests were faulted; checks the gaps between the K+1 attempts:
           the first gap is at least S/2 (no immediate retry), each gap is at least R times the
           one before (doubling with jitter), none exceeds --max-interval, and request K+1
           was forwarded and answered 200 (the daemon got through)
Exit codes: 0 holds, 1 does not (printed), 2 usage or unreadable log.
"""

import argparse
import itertools
import json
import sys
from typing import Any

Entry = dict[str, Any]  # one request as flaky_proxy.py logs it (a JSON line)


def load(path: str) -> list[Entry]:
    try:
        with open(path, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
            # Written when a request is done; numbered (and timed) when it arrived.
            return sorted(entries, key=lambda e: e["n"])
    except (OSError, ValueError) as e:
        print(f"proxy_log.py: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)


def after(entries: list[Entry], n: int) -> list[Entry]:
    return [e for e in entries if e["n"] > n]


def show(entries: list[Entry]) -> None:
    t0 = entries[0]["t"] if entries else 0.0
    for e in entries:
        body = f" {e['body'][:160]}" if "body" in e else ""
        print(f"  #{e['n']:<3} +{e['t'] - t0:7.2f}s {e['action']:<7} {e['status'] or '-':>4} "
              f"{e['method']:<4} {e['path']}{body}")


def config_data(entries: list[Entry], pairs: list[str]) -> int:
    puts = [e for e in entries
            if e["method"] == "PUT" and e["path"].endswith("/configData") and e["status"] == 200]
    if not puts:
        print("no configData PUT answered 200")
        return 1
    data = json.loads(puts[-1].get("body", "{}")).get("data", {})
    wrong = []
    for pair in pairs:
        key, _, value = pair.partition("=")
        if str(data.get(key)) != value:
            wrong.append(f"{key}={data.get(key)!r} (want {value!r})")
    if wrong:
        print(f"configData attributes differ: {', '.join(wrong)}; sent: {json.dumps(data)}")
        return 1
    return 0


def feedback(entries: list[Entry], want: str, details: list[str]) -> int:
    execution, _, finished = want.partition(":")
    seen = []
    for e in entries:
        if e["method"] != "POST" or "/deploymentBase/" not in e["path"] \
                or not e["path"].endswith("/feedback"):
            continue
        status = json.loads(e.get("body", "{}")).get("status", {})
        got = f"{status.get('execution')}:{status.get('result', {}).get('finished')}"
        text = "\n".join(status.get("details") or [])
        seen.append(f"#{e['n']} {got} -> HTTP {e['status']} {text[:200]!r}")
        if got == want and e["status"] == 200 and all(d in text for d in details):
            return 0
    with_details = f", with details {details!r}" if details else ""
    print(f"no feedback {execution}:{finished} (answered 200{with_details});"
          f" feedback seen: {seen or 'none'}")
    return 1


def backoff(entries: list[Entry], a: argparse.Namespace) -> int:
    if len(entries) < a.faults + 1:
        print(f"only {len(entries)} requests, want at least {a.faults + 1}")
        return 1
    attempts = entries[: a.faults + 1]
    faulted = [e for e in attempts[: a.faults] if e["action"] != "forward"]
    if len(faulted) != a.faults:
        print(f"the first {a.faults} requests were not all faulted")
        return 1
    gaps = [b["t"] - x["t"] for x, b in itertools.pairwise(attempts)]
    print("retry gaps: " + ", ".join(f"{g:.2f}s" for g in gaps))
    wrong = []
    if gaps[0] < a.base / 2:
        wrong.append(f"first retry after {gaps[0]:.2f}s, want >= {a.base / 2:.2f}s (base {a.base}s)")
    for i in range(1, len(gaps)):
        if gaps[i] < a.min_ratio * gaps[i - 1]:
            wrong.append(f"gap {i + 1} ({gaps[i]:.2f}s) is not >= {a.min_ratio} x gap {i} "
                         f"({gaps[i - 1]:.2f}s)")
    if max(gaps) > a.max_interval:
        wrong.append(f"a gap of {max(gaps):.2f}s exceeds the cap {a.max_interval}s")
    last = attempts[-1]
    if last["action"] != "forward" or last["status"] != 200:
        wrong.append(f"attempt {last['n']} after the faults was {last['action']} / {last['status']}, "
                     "want forward / 200")
    if wrong:
        print("; ".join(wrong))
        return 1
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("last")
    s = sub.add_parser("show")
    s.add_argument("--after", type=int, default=0)
    s = sub.add_parser("count")
    s.add_argument("--after", type=int, default=0)
    s.add_argument("--method")
    s.add_argument("--path-contains")
    s.add_argument("--status", type=int)
    s = sub.add_parser("config-data")
    s.add_argument("--after", type=int, default=0)
    s.add_argument("pairs", nargs="+")
    s = sub.add_parser("feedback")
    s.add_argument("--after", type=int, default=0)
    s.add_argument("want")
    s.add_argument("--details-contains", action="append", default=[])
    s = sub.add_parser("backoff")
    s.add_argument("--faults", type=int, required=True)
    s.add_argument("--base", type=float, required=True)
    s.add_argument("--max-interval", type=float, required=True)
    s.add_argument("--min-ratio", type=float, required=True)
    a = p.parse_args()
    entries = load(a.log)

    if a.cmd == "last":
        print(entries[-1]["n"] if entries else 0)
    elif a.cmd == "show":
        show(after(entries, a.after))
    elif a.cmd == "count":
        print(sum(1 for e in after(entries, a.after)
                  if (a.method is None or e["method"] == a.method)
                  and (a.path_contains is None or a.path_contains in e["path"])
                  and (a.status is None or e["status"] == a.status)))
    elif a.cmd == "config-data":
        return config_data(after(entries, a.after), a.pairs)
    elif a.cmd == "feedback":
        return feedback(after(entries, a.after), a.want, a.details_contains)
    elif a.cmd == "backoff":
        return backoff(entries, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
