"""Accounts by e-mail in Chromium against a real `authdemo run` (IDOM and ReactPy, SQLite
and PostgreSQL) that mails through a real SMTP server (aiosmtpd, STARTTLS on a
self-signed certificate): sign up and land signed in; a reset signs another browser
of the user out within a second, and the old password stops working."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.browser.conftest import PASSWORD, shown
from tests.support.db import in_thread
from tests.support.server import ServerProcess
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.browser

NEW_PASSWORD = "battery staple"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail_server(
    db_url: str, tmp_path: Path, ui_name: str, smtp: SmtpServer
) -> Iterator[ServerProcess]:
    async def create() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            await rt.service.create_user_with_email("alice", PASSWORD, "alice@example.org")

    in_thread(lambda: asyncio.run(create()))
    env = {
        "AUTHDEMO_SIGNUP": "open",
        "AUTHDEMO_SMTP_URL": smtp.url,
        "AUTHDEMO_MAIL_FROM": "noreply@example.org",
    }
    process = ServerProcess(db_url, tmp_path / "server.log", env=env, ui=ui_name).start()
    yield process
    process.stop()


def code_from(smtp: SmtpServer, index: int, to: str) -> str:
    deadline = time.monotonic() + 10
    while len(smtp.inbox) <= index:
        assert time.monotonic() < deadline, "no mail arrived"
        time.sleep(0.05)
    got = smtp.inbox[index]
    assert got.recipients == [to] and got.tls
    body = got.message.get_body(preferencelist=("plain",))
    assert body is not None
    (code,) = [line for line in body.get_content().splitlines() if re.fullmatch(r"\d{8}", line)]
    return str(code)


def sign_in(page: Any, password: str = PASSWORD) -> None:
    shown(page, "form#login-form")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.click("form#login-form button[type=submit]")


def test_sign_up_read_the_code_verify_and_land_signed_in(
    context: Any, mail_server: ServerProcess, smtp: SmtpServer
) -> None:
    page = context.new_page()
    page.goto(mail_server.base_url)
    page.click("button#show-signup")
    page.fill("form#signup-form input[name=email]", "ann@example.org")
    page.fill("form#signup-form input[name=username]", "ann")
    page.fill("form#signup-form input[name=password]", PASSWORD)
    submitted = time.monotonic()
    page.click("form#signup-form button[type=submit]")
    shown(page, "form#verify-email-form")
    code = code_from(smtp, 0, "ann@example.org")
    print(f"sign-up submit to mail received: {(smtp.inbox[0].at - submitted) * 1000:.0f} ms")
    page.fill("form#verify-email-form input[name=code]", code)
    page.click("form#verify-email-form button[type=submit]")
    shown(page, "#greeting")
    assert "ann" in page.inner_text("#greeting")
    page.reload()  # the browser holds the new session's cookie
    shown(page, "#greeting")


def test_a_reset_signs_the_other_browser_out_within_a_second(
    browser: Any, context: Any, mail_server: ServerProcess, smtp: SmtpServer
) -> None:
    other_context = browser.new_context()
    other_context.set_default_timeout(10_000)
    try:
        other = other_context.new_page()
        other.goto(mail_server.base_url)
        sign_in(other)
        shown(other, "#greeting")

        page = context.new_page()
        page.goto(mail_server.base_url)
        page.click("button#forgot-password")
        page.fill("form#reset-request-form input[name=email]", "alice@example.org")
        page.click("form#reset-request-form button[type=submit]")
        shown(page, "#reset-sent")
        code = code_from(smtp, 0, "alice@example.org")
        page.fill("form#reset-form input[name=code]", code)
        page.fill("form#reset-form input[name=password]", NEW_PASSWORD)
        page.click("form#reset-form button[type=submit]")
        shown(page, "#greeting")
        ended = time.monotonic()
        shown(other, "#signed-out-reason", timeout=5_000)
        took = time.monotonic() - ended
        assert took < 1.0, f"the other browser was signed out after {took:.2f} s"
        # The old password no longer works; the new one does.
        sign_in(other, PASSWORD)
        shown(other, "#login-error")
        sign_in(other, NEW_PASSWORD)
        shown(other, "#greeting")
    finally:
        other_context.close()
