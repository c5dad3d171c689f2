#!/usr/bin/env python3
"""Prints the visible text of an HTML document (read on stdin, e.g. chromium --dump-dom), one
whitespace-collapsed line per block, and checks it. Tests assert on what a person sees, not on
markup, so the dashboard's HTML can change freely.

Usage: page_text.py [--contains TEXT]… [--absent TEXT]… [--regex RE]… [--print]
Exit 0 when every --contains/--regex is found and no --absent is; 1 otherwise (the reasons and
the page's text are printed to stderr).
"""

import argparse
import html.parser
import re
import sys

HIDDEN = {"head", "script", "style", "template", "noscript"}
BLOCK = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "table", "section", "header", "main",
         "footer", "br", "ul", "ol", "form", "dt", "dd", "pre", "article", "nav"}


class Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif tag in BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")
        # Form values are visible too (e.g. a prefilled field).
        if tag == "input" and not self.hidden:
            a = dict(attrs)
            if a.get("type", "text") not in ("hidden", "password") and a.get("value"):
                self.parts.append(f" {a['value']} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(document: str) -> str:
    parser = Text()
    parser.feed(document)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--contains", action="append", default=[])
    p.add_argument("--absent", action="append", default=[])
    p.add_argument("--regex", action="append", default=[], help="Python regex, searched case-insensitively")
    p.add_argument("--print", action="store_true", help="print the text to stdout")
    args = p.parse_args()

    text = visible_text(sys.stdin.read())
    if args.print:
        print(text)
    problems = [f"missing {t!r}" for t in args.contains if t not in text]
    problems += [f"present but must not be: {t!r}" for t in args.absent if t in text]
    problems += [f"no match for /{r}/" for r in args.regex if not re.search(r, text, re.I | re.S)]
    if problems:
        print("page_text: " + "; ".join(problems), file=sys.stderr)
        print("----- visible text -----\n" + text[:4000] + "\n------------------------", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
