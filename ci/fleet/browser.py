#!/usr/bin/env python3
"""Drives Debian's chromium (headless) through Playwright as an operator would: optionally logs
in to the dashboard by typing the token into the login form and pressing "Log in" (a POST, as
a person does; no token in any URL), then opens pages in the same session, saving each page's
DOM and, when asked, a screenshot.

Runs in the venv ci/fleet/dashboard-test.sh makes (pinned playwright from PyPI, driving
/usr/bin/chromium: Playwright's own browser download is not used).

Usage: browser.py --base URL [--token-file FILE] --out DIR [--press PATH|TEXT]… [--dump NAME=PATH]…
                  [--shoot NAME=PATH]…
  --token-file  log in with the token in FILE first; the page the form leads to is saved as
                DIR/login.html, and the run fails unless that page is not the login form
                (--expect-login-failure: fails unless it still is)
  --press       PATH|TEXT: open PATH and press the button labelled TEXT (a form post), then
                wait for the page it leads to (before any --dump; in order)
  --dump        open PATH, save its DOM as DIR/NAME.html
  --shoot       open PATH at 1280x900, save DIR/NAME.png
Exit 0 done, 1 a failure (named on stderr).
"""

import argparse
import pathlib
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 30_000


def pairs(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path.startswith("/"):
            sys.exit(f"browser.py: expected NAME=/path, got {value!r}")
        out.append((name, path))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--token-file")
    parser.add_argument("--expect-login-failure", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--press", action="append", default=[])
    parser.add_argument("--dump", action="append", default=[])
    parser.add_argument("--shoot", action="append", default=[])
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = args.base.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            if args.token_file:
                token = pathlib.Path(args.token_file).read_text(encoding="utf-8").strip()
                page.goto(f"{base}/ui/login")
                page.fill("form[action='/ui/login'] input[name=token]", token)
                with page.expect_navigation():
                    page.click("form[action='/ui/login'] button")
                (out / "login.html").write_text(page.content(), encoding="utf-8")
                on_form = page.locator("input[name=token]").count() > 0
                if on_form != args.expect_login_failure:
                    print(
                        f"browser.py: after the login form the browser is at {page.url}, "
                        f"{'still' if on_form else 'no longer'} on the login form",
                        file=sys.stderr,
                    )
                    return 1
            for press in args.press:
                path, sep, text = press.partition("|")
                if not sep or not path.startswith("/") or not text:
                    sys.exit(f"browser.py: expected /path|button text, got {press!r}")
                page.goto(base + path)
                with page.expect_navigation():
                    page.get_by_role("button", name=text, exact=True).click()
            for name, path in pairs(args.dump):
                page.goto(base + path)
                (out / f"{name}.html").write_text(page.content(), encoding="utf-8")
            for name, path in pairs(args.shoot):
                page.goto(base + path)
                page.screenshot(path=str(out / f"{name}.png"))
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
