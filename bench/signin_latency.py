"""``python -m bench.signin_latency``: how long a person waits for "Signed in as …".

Chromium (Playwright, Debian's build) signs in and out ``--trials`` times against a real
`authdemo run`, timing from the click on "Sign in" to ``#greeting`` being shown, and
prints p50/p99. Since issue 12 the greeting appears only once the browser holds its new
cookie, so this includes the ticket image's round trip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.prep import PASSWORD, migrate, signed_in_cookies
from bench.scenarios import authdemo, sqlite_url

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def measure(trials: int, chromium: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="authdemo-signin-") as tmp:
        workdir = Path(tmp)
        url = sqlite_url(workdir / "signin.db")
        migrate(url)
        signed_in_cookies(url, 1)  # creates the user bench0
        server = authdemo("signin", url, workdir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_context().new_page()
                page.goto(server.url)
                samples = []
                for _ in range(trials + 3):  # the first three warm up
                    page.wait_for_selector("form#login-form")
                    page.fill("input[name=username]", "bench0")
                    page.fill("input[name=password]", PASSWORD)
                    started = time.perf_counter()
                    page.click("form#login-form button[type=submit]")
                    page.wait_for_selector("#greeting")
                    samples.append(time.perf_counter() - started)
                    page.click("button#logout")
                browser.close()
        finally:
            server.stop()
    ms = sorted(s * 1000 for s in samples[3:])
    return {
        "trials": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    result = measure(args.trials, args.chromium)
    print(
        f"sign-in → #greeting in Chromium, {result['trials']} trials: "
        f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
