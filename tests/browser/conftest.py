"""Playwright driving Debian's Chromium against a real `authdemo run` process."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.support.db import in_thread
from tests.support.server import ServerProcess

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct horse"


HEADLESS_SHELL = "/usr/bin/chromium-headless-shell"
"""Debian's build of Chromium's headless shell (package ``chromium-headless-shell``): the
same Blink and V8 without the desktop browser around them, what Playwright itself runs
for headless tests. It takes about 40 % less CPU per page than full Chromium in
headless mode, and the browser tests are most of the suite's time."""


def chromium_path() -> str | None:
    """$AUTHDEMO_CHROMIUM; else Debian's headless shell; else Debian's Chromium."""
    configured = os.environ.get("AUTHDEMO_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in (HEADLESS_SHELL, "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def require_chromium() -> str:
    """Chromium's path; without it the test skips — or fails, under
    ``AUTHDEMO_REQUIRE_BROWSER=1`` (CI), so browser tests never skip into green."""
    path = chromium_path()
    if path is None:
        reason = (
            f"Chromium not found (looked at $AUTHDEMO_CHROMIUM, {HEADLESS_SHELL}, "
            "/usr/bin/chromium): install it with `apt-get install chromium-headless-shell` "
            "(or `chromium`) to run the browser tests"
        )
        if os.environ.get("AUTHDEMO_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (AUTHDEMO_REQUIRE_BROWSER=1 forbids skipping)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop running in this thread for
    # as long as it is open, which would break the async tests of other modules.
    path = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def create_users(db_url: str, *names: str) -> None:
    async def create() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            for name in names:
                await rt.service.create_user(name, PASSWORD)

    in_thread(lambda: asyncio.run(create()))


SHOWN = """([selector, text, timeout]) => new Promise((resolve) => {
    const shown = () => [...document.querySelectorAll(selector)].some((element) => {
        if (text !== null && !element.textContent.includes(text)) return false;
        const box = element.getBoundingClientRect();
        const visibility = getComputedStyle(element).visibility;
        return box.width > 0 && box.height > 0 && visibility === "visible";
    });
    if (shown()) return resolve(true);
    const end = (result) => {
        observer.disconnect();
        clearInterval(poll);
        clearTimeout(limit);
        resolve(result);
    };
    const look = () => { if (shown()) end(true); };
    const observer = new MutationObserver(look);
    const all = { subtree: true, childList: true, attributes: true, characterData: true };
    observer.observe(document, all);
    const poll = setInterval(look, 100);  // what changes with no mutation: a stylesheet
    const limit = setTimeout(() => end(false), timeout);
})"""
"""Resolves true once an element matching ``selector`` (holding ``text``, if given) is
visible as Playwright means it (a non-empty box, not hidden); false after ``timeout``
ms. It looks at every change of the DOM, and every 100 ms."""

DEFAULT_TIMEOUT_MS = 30_000
"""Playwright's own default, which ``context`` sets too."""


def shown(page: Any, selector: str, timeout: float | None = None, text: str | None = None) -> None:
    """``page.wait_for_selector(selector)`` without its backoff, for CSS selectors;
    ``text`` for Playwright's ``:has-text()``.

    Playwright's own wait looks again after 20, 50, 100 and 100 ms, then every 500 ms
    while its timeout (30 s here) allows. Most of what these tests wait for (a sign-in,
    a follow, a live update) takes 0.3 to 1 s, so that wait usually saw it a few hundred
    milliseconds late, on every step of every test. This one looks in the page when
    its DOM changes, and says which selector did not show.
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    limit = DEFAULT_TIMEOUT_MS if timeout is None else timeout
    deadline = time.monotonic() + limit / 1000
    while (left := deadline - time.monotonic()) > 0:
        try:
            if page.evaluate(SHOWN, [selector, text, left * 1000]):
                return
        except PlaywrightError as error:
            if "Execution context was destroyed" not in error.message:
                raise
            continue  # the page navigated while it looked: look in the new one
    shown_as = selector if text is None else f"{selector} holding {text!r}"
    raise PlaywrightTimeout(f"{shown_as!r} not shown within {limit:.0f} ms")


CONNECTED = {"idom": "IDOM WebSocket connected.", "reactpy": "[ReactPy] client connected"}
"""What each UI library's client logs when its websocket opens."""


def is_connected_message(text: str) -> bool:
    return any(message in text for message in CONNECTED.values())


@pytest.fixture
def server(db_url: str, tmp_path: Path, ui_name: str) -> Iterator[ServerProcess]:
    """`authdemo run` serving the demo, on each UI library in turn (``ui_name``)."""
    process = ServerProcess(db_url, tmp_path / "server.log", ui=ui_name)
    process.start(meanwhile=lambda: create_users(db_url, "alice", "bob"))
    yield process
    process.stop()
    print(f"--- server log, last lines:\n{process.log()[-3000:]}")  # shown on failure


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    # Playwright's own default. Only waits that set up a scene use it (a page loading, a
    # sign-in completing): the first minutes of a parallel run, with wheels building
    # and browsers starting beside it, once took more than 10 s to sign in. Every
    # latency the tests assert ("within a second") names its own timeout.
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield context
    context.close()
