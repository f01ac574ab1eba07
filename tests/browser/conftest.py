"""Playwright driving Debian's Chromium against a real `authdemo run` process."""

from __future__ import annotations

import asyncio
import os
import shutil
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
    context.set_default_timeout(30_000)
    yield context
    context.close()
