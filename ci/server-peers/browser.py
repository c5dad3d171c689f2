#!/usr/bin/env python3
"""Drives Debian's chromium (headless) through Playwright as an operator would: optionally logs
in to the dashboard by typing an account's name and password into the login form and pressing
"Log in" (a POST, as a person does; no credential in any URL), then works in the same session:
steps that fill forms and press buttons, pages whose DOM it saves, screenshots.

Runs in the venv ci/server-peers/dashboard-test.sh makes (pinned playwright from PyPI, driving
/usr/bin/chromium: Playwright's own browser download is not used).

Usage: browser.py --base URL [--user NAME --password-file FILE] --out DIR [--step STEP]…
                  [--press PATH|TEXT]… [--dump NAME=PATH]… [--shoot NAME=PATH]…
  --user, --password-file
                log in as NAME with the password in FILE first; the page the form leads to is
                saved as DIR/login.html, and the run fails unless that page is not the login form
                (--expect-login-failure: fails unless it still is)
  --step        in order, before any --press: "goto PATH", "visit URL" (another site's page
                that sends the browser on: waits until it has left it), "fill FIELD=VALUE", "select
                FIELD=LABEL", "check FIELD", "file FIELD=PATH" (form fields by name), "press
                TEXT" (a button; waits for the page it leads to), "save NAME" (the DOM as
                DIR/NAME.html), "shoot NAME" (DIR/NAME.png)
  --press       PATH|TEXT: open PATH and press the button labelled TEXT (a form post), then
                wait for the page it leads to (before any --dump; in order)
  --dump        open PATH, save its DOM as DIR/NAME.html
  --shoot       open PATH at 1280x900, save DIR/NAME.png
Exit 0 done, 1 a failure (named on stderr).
"""

import argparse
import pathlib
import sys

from playwright.sync_api import Page, sync_playwright

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


def run_step(page: Page, base: str, out: pathlib.Path, step: str) -> None:
    verb, _, arg = step.partition(" ")
    field, _, value = arg.partition("=")
    if verb == "goto":
        page.goto(base + arg)
    elif verb == "visit":
        # Another site's page that sends the browser on by itself (a form it submits): wait
        # until the browser has left it.
        page.goto(arg)
        page.wait_for_url(lambda url: not url.startswith(arg))
        page.wait_for_load_state("load")
    elif verb == "fill":
        page.fill(f"[name='{field}']", value)
    elif verb == "select":
        page.select_option(f"select[name='{field}']", label=value)
    elif verb == "check":
        page.check(f"[name='{arg}']")
    elif verb == "file":
        page.set_input_files(f"input[type=file][name='{field}']", value)
    elif verb == "press":
        with page.expect_navigation():
            page.get_by_role("button", name=arg, exact=True).click()
    elif verb == "save":
        (out / f"{arg}.html").write_text(page.content(), encoding="utf-8")
    elif verb == "shoot":
        page.screenshot(path=str(out / f"{arg}.png"), full_page=True)
    else:
        sys.exit(f"browser.py: unknown step {step!r}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password-file")
    parser.add_argument("--step", action="append", default=[])
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
            if args.user:
                if not args.password_file:
                    sys.exit("browser.py: --user needs --password-file")
                password = pathlib.Path(args.password_file).read_text(encoding="utf-8").strip()
                page.goto(f"{base}/ui/login")
                page.fill("form[action='/ui/login'] input[name=name]", args.user)
                page.fill("form[action='/ui/login'] input[name=password]", password)
                with page.expect_navigation():
                    page.click("form[action='/ui/login'] button")
                (out / "login.html").write_text(page.content(), encoding="utf-8")
                on_form = page.locator("input[name=password]").count() > 0
                if on_form != args.expect_login_failure:
                    print(
                        f"browser.py: after the login form the browser is at {page.url}, "
                        f"{'still' if on_form else 'no longer'} on the login form",
                        file=sys.stderr,
                    )
                    return 1
            for step in args.step:
                run_step(page, base, out, step)
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
