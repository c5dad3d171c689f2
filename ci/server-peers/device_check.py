#!/usr/bin/env python3
"""Checks the JSON of `rustupdate-server device show ID --json` (read on stdin) against
expectations about the device's newest action. Used in bounded polling loops.

Exit 0: all expectations hold. Exit 1: not (yet); the reason is printed to stderr.
Exit 2: never will: the action ended in another state than the one expected (failed, canceled),
so the caller can stop waiting at once.

Usage: device_check.py [--state S] [--min-feedback EXECUTION=N]… [--detail TEXT]…
                       [--finished F] [--attribute KEY=VALUE]… [--quiet]
"""

import argparse
import json
import sys
from typing import NoReturn

ENDED = {"succeeded", "failed", "canceled"}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--state", help="the newest action's state, e.g. succeeded")
    p.add_argument("--min-feedback", action="append", default=[], metavar="EXECUTION=N",
                   help="at least N deployment feedbacks with this execution (proceeding, closed, …)")
    p.add_argument("--detail", action="append", default=[],
                   help="some feedback detail line contains this text")
    p.add_argument("--finished", help="some feedback has this result.finished (success, failure, none)")
    p.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true", help="no reason on stderr")
    args = p.parse_args()

    def no(reason: str, code: int = 1) -> NoReturn:
        if not args.quiet:
            print(f"device_check: {reason}", file=sys.stderr)
        sys.exit(code)

    try:
        doc = json.load(sys.stdin)
    except ValueError as e:
        no(f"not JSON: {e}")

    attributes = doc.get("device", {}).get("attributes", {})
    for kv in args.attribute:
        key, _, value = kv.partition("=")
        if attributes.get(key) != value:
            no(f"attribute {key}={attributes.get(key)!r}, want {value!r}")

    actions = doc.get("actions", [])
    if not actions:
        if args.state or args.min_feedback or args.detail or args.finished:
            no("the device has no action")
        return
    action = max(actions, key=lambda a: a["id"])
    state = action.get("state")
    feedback = [f for f in action.get("feedback", []) if f.get("channel", "deployment") == "deployment"]

    if args.state and state != args.state:
        if state in ENDED:
            no(f"action {action['id']} ended {state} (reason: {action.get('reason')}), "
               f"want {args.state}; feedback: {json.dumps(feedback)}", 2)
        no(f"action {action['id']} is {state}, want {args.state}")
    for spec in args.min_feedback:
        execution, _, n = spec.partition("=")
        have = sum(1 for f in feedback if f.get("execution") == execution)
        if have < int(n):
            no(f"{have} '{execution}' feedbacks, want at least {n}")
    for text in args.detail:
        if not any(text in line for f in feedback for line in f.get("details", [])):
            no(f"no feedback detail contains {text!r}")
    if args.finished and not any(f.get("finished") == args.finished for f in feedback):
        no(f"no feedback with finished={args.finished}")


if __name__ == "__main__":
    main()
