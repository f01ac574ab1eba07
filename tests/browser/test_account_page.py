"""``AccountPage`` in Chromium, in an app written with public names only
(``tests/apps``, served by ``sanic … --factory`` as an app author serves theirs), on
IDOM and on ReactPy: two-factor on, signing in with a code and with a recovery code,
ending one chosen session from another browser's list, new recovery codes, a new
password, two-factor off."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.browser.conftest import PASSWORD, create_users, shown
from tests.support.db import ROOT
from tests.support.mfa import MFA_KEY_TEXT
from tests.support.ports import free_port
from tests.support.server import READY_POLL

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new password"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
)


@contextlib.contextmanager
def public_app(db_url: str, log: Path, ui_name: str, app: str = "account") -> Iterator[str]:
    """``sanic tests.apps.<app>_<ui>:make_app --factory``; yields its base URL."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "sanic"),
                f"tests.apps.{app}_{ui_name}:make_app",
                "--factory",
                "--single-process",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, "AUTHDEMO_DATABASE_URL": db_url, "AUTHDEMO_MFA_KEY": MFA_KEY_TEXT},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                with urllib.request.urlopen(base_url + "/", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(READY_POLL)
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


def new_page(browser: Any, user_agent: str | None = None) -> Any:
    context = browser.new_context(**({"user_agent": user_agent} if user_agent else {}))
    context.set_default_timeout(15_000)
    return context.new_page()


def password_step(page: Any, password: str = PASSWORD) -> None:
    shown(page, "form#login-form")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.click("form#login-form button[type=submit]")


def code_step(page: Any, code: str) -> None:
    shown(page, "form#mfa-form")
    page.fill("form#mfa-form input[name=code]", code)
    page.click("form#mfa-form button[type=submit]")
    shown(page, "#greeting")


def sign_out(page: Any) -> None:
    page.click("button#logout")
    shown(page, "form#login-form")


def rows(page: Any, n: int) -> None:
    """Until the session list shows ``n`` rows (no string evaluation: the page's CSP
    forbids it)."""
    from playwright.sync_api import expect

    expect(page.locator("#sessions li")).to_have_count(n, timeout=15_000)


def test_an_app_of_public_names_runs_the_whole_account_page(
    browser: Any, db_url: str, tmp_path: Path, ui_name: str
) -> None:
    create_users(db_url, "alice")
    with public_app(db_url, tmp_path / "sanic.log", ui_name) as base_url:
        page = new_page(browser)
        page.goto(base_url)
        password_step(page)
        shown(page, "#greeting")
        shown(page, "#app-card")  # the app's own card, inside AccountPage

        # Two-factor on: the password again, the key as shown, a first code.
        page.fill("#mfa-password", PASSWORD)
        page.click("button#mfa-enable")
        shown(page, "img#mfa-qr")
        assert page.eval_on_selector("img#mfa-qr", "img => img.naturalWidth") > 0
        totp = pyotp.TOTP(page.inner_text("#mfa-secret").replace(" ", ""))
        page.fill("form#mfa-confirm input[name=code]", totp.now())
        page.click("form#mfa-confirm button[type=submit]")
        shown(page, "#mfa-recovery-codes li")
        codes = page.locator("#mfa-recovery-codes li").all_inner_texts()
        assert len(codes) == 10
        page.click("button#mfa-recovery-done")
        shown(page, "#mfa-recovery-left")

        # Signed out, back in with the password and a code (the next step's: the
        # current one confirmed the key), then with a recovery code.
        sign_out(page)
        password_step(page)
        code_step(page, totp.at(time.time() + 30))
        sign_out(page)
        password_step(page)
        code_step(page, codes[0])
        shown(page, "#mfa-recovery-used")

        # Two more browsers of alice's; this one ends one of them from its list.
        firefox, edge = new_page(browser, FIREFOX), new_page(browser, EDGE)
        for other, code in ((firefox, codes[1]), (edge, codes[2])):
            other.goto(base_url)
            password_step(other)
            code_step(other, code)
        rows(page, 3)
        row = page.locator("#sessions li", has_text="Firefox on Linux")
        started = time.monotonic()
        row.locator("button.end-session").click()
        shown(firefox, "form#login-form")
        assert time.monotonic() - started < 1.0, "that browser was not signed out within 1 s"
        rows(page, 2)
        assert edge.locator("#greeting").count() == 1  # the others stay
        edge.reload()
        shown(edge, "#greeting")  # its cookie still signs it in
        assert page.locator("#sessions li", has_text="Firefox on Linux").count() == 0

        # New recovery codes: the password and a (recovery) code; the old ones die.
        page.fill("#mfa-renew-password", PASSWORD)
        page.fill("#mfa-renew-code", codes[3])
        page.click("button#mfa-recovery-renew")
        shown(page, "#mfa-renewed")
        fresh = page.locator("#mfa-recovery-codes li").all_inner_texts()
        assert len(fresh) == 10 and not set(fresh) & set(codes)
        page.click("button#mfa-recovery-done")

        # A new password: every other session ends, live; this one stays.
        page.fill("#current-password", PASSWORD)
        page.fill("#new-password", NEW_PASSWORD)
        page.click("form#change-password button[type=submit]")
        shown(page, "#change-password-ok")
        shown(edge, "form#login-form")

        # Two-factor off, with the new password and one of the new codes.
        page.fill("#mfa-disable-password", NEW_PASSWORD)
        page.fill("#mfa-disable-code", fresh[0])
        page.click("button#mfa-disable")
        shown(page, "#mfa-off")
        sign_out(page)
        password_step(page, NEW_PASSWORD)
        shown(page, "#greeting")  # no code asked for any more
        for each in (page, firefox, edge):
            each.context.close()
