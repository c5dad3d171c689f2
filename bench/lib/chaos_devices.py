#!/usr/bin/env python3
"""Simulated devices for bench/chaos.sh: each takes the deployment the server offers and reports
it the way rustupdate's daemon does (deploymentBase, "proceeding", a pause for the install, then
"closed"/"success"), resending what was not acknowledged: a refused connection, a timeout or a
503 is retried after a short wait, so a result the device owes is delivered once the server
answers again. Runs until every device's result is acknowledged or the deadline passes.

Records per device the action ids it was given and whether its result was acknowledged, and
counts every request by outcome. Prints one JSON object on stdout.

Usage: chaos_devices.py --url URL --tokens FILE --deadline-s N [--install-s MIN MAX]
                         [--start-spread-s S] [--seed N]
  --install-s       the pause between "proceeding" and "closed" (default 2 to 6 s)
  --start-spread-s  devices start at random times within S seconds (default 20), so that
                    requests arrive all through the chaos
  --tokens  lines "controller_id token"
Exit 0 (the caller judges the counts), 2 usage.
"""

import argparse
import dataclasses
import json
import random
import threading
import time
import urllib.error
import urllib.request
from typing import Any

TENANT = "DEFAULT"
REQUEST_TIMEOUT_S = 10
RETRY_WAIT_S = 0.5


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_outcome: dict[str, int] = {}

    def add(self, outcome: str) -> None:
        with self.lock:
            self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1


@dataclasses.dataclass
class Record:
    """What one device saw: the action ids it was given, the one whose result was acknowledged."""

    actions: set[int] = dataclasses.field(default_factory=set)
    acknowledged: int | None = None


def request(url: str, token: str, counts: Counts, body: object = None,
            replay_possible: bool = False) -> tuple[int, Any]:
    """One request (POST with a body, else GET); (status, parsed body or None). Status 0: no
    answer (refused, reset, timeout). replay_possible: an earlier attempt of this very request
    got no answer, so a 409 is counted as "409-after-lost-answer"."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Authorization", f"TargetToken {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as r:
            text = r.read()
            counts.add(str(r.status))
            return int(r.status), json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        replayed = e.code == 409 and replay_possible and data is not None
        counts.add("409-after-lost-answer" if replayed else str(e.code))
        e.read()
        return e.code, None
    except OSError:
        counts.add("no-answer")
        return 0, None


def retried(deadline: float, url: str, token: str, counts: Counts, body: object = None) -> tuple[int, Any]:
    """Repeats the request while the server does not answer or answers 503, until the deadline.
    A feedback resent after an attempt got no answer may find that attempt applied: the server
    then refuses the replay with 409, which means delivered (returned as 200, counted apart as
    "409-after-lost-answer", which is not a failure)."""
    lost = False
    while True:
        status, answer = request(url, token, counts, body, replay_possible=lost)
        if status == 409 and lost and body is not None:
            return 200, answer
        if status not in (0, 503) or time.monotonic() >= deadline:
            return status, answer
        lost = lost or status == 0
        time.sleep(RETRY_WAIT_S)


def offered_action(poll: Any) -> int | None:
    """The action id of the poll's deploymentBase link, if it offers one."""
    href = ((poll or {}).get("_links") or {}).get("deploymentBase", {}).get("href")
    return int(href.rsplit("/", 1)[1].split("?", 1)[0]) if href else None


def feedback_body(action: int, cid: str, execution: str, finished: str) -> dict[str, Any]:
    return {
        "id": str(action),
        "status": {
            "execution": execution,
            "result": {"finished": finished},
            "details": [f"{execution} on {cid}"],
        },
    }


def device(base: str, cid: str, token: str, deadline: float, install: tuple[float, float],
           start_spread: float, rng: random.Random, counts: Counts, record: Record) -> None:
    root = f"{base}/{TENANT}/controller/v1/{cid}"
    time.sleep(rng.uniform(0, start_spread))
    while time.monotonic() < deadline:
        status, poll = retried(deadline, root, token, counts)
        action = offered_action(poll) if status == 200 else None
        if action is None:
            time.sleep(1)
            continue
        record.actions.add(action)
        status, _ = retried(deadline, f"{root}/deploymentBase/{action}", token, counts)
        if status != 200:
            time.sleep(1)
            continue
        feedback = f"{root}/deploymentBase/{action}/feedback"
        retried(deadline, feedback, token, counts, feedback_body(action, cid, "proceeding", "none"))
        time.sleep(rng.uniform(*install))  # the install and the reboot
        closed = feedback_body(action, cid, "closed", "success")
        status, _ = retried(deadline, feedback, token, counts, closed)
        if status == 200:
            record.acknowledged = action
            return
        # Anything else: poll again (the server decides whether the action is still open).
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--deadline-s", type=float, required=True)
    parser.add_argument("--install-s", type=float, nargs=2, default=(2.0, 6.0))
    parser.add_argument("--start-spread-s", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with open(args.tokens, encoding="utf-8") as lines:
        devices = [line.split() for line in lines if line.strip()]
    deadline = time.monotonic() + args.deadline_s
    counts = Counts()
    records = {cid: Record() for cid, _ in devices}
    threads = [
        threading.Thread(
            target=device,
            args=(args.url.rstrip("/"), cid, token, deadline, (args.install_s[0], args.install_s[1]),
                  args.start_spread_s, random.Random(args.seed * 7919 + i), counts, records[cid]),
        )
        for i, (cid, token) in enumerate(devices)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({
        "requests": counts.by_outcome,
        "devices": {cid: {"actions": sorted(r.actions), "acknowledged": r.acknowledged}
                    for cid, r in records.items()},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
