"""The mail outbox across real processes: a reset asked for while the SMTP server is
down, authdemo restarted (with two workers) while it is still down, then the SMTP server
back — the mail arrives, exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from tests.support.db import in_thread
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow
PASSWORD = "correct horse"


def wait_until(condition: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


async def ask_for_a_reset(base_url: str) -> None:
    async with await IdomClient.connect(base_url) as tab:
        await tab.click("forgot-password")
        await tab.wait_for_id("reset-request-form")
        await tab.submit("reset-request-form", {"email": "alice@example.org"})
        await tab.wait_for_id("reset-sent")


def test_an_outage_and_a_restart_lose_no_mail_and_send_it_once(
    db_url: str, tmp_path: Path, ui_name: str
) -> None:
    async def create() -> None:
        async with runtime(Settings(database_url=db_url)) as rt:
            await rt.service.create_user_with_email("alice", PASSWORD, "alice@example.org")

    in_thread(lambda: asyncio.run(create()))
    smtp = SmtpServer(tmp_path)  # not started: the mail server is down
    env = {"AUTHDEMO_SMTP_URL": smtp.url, "AUTHDEMO_MAIL_FROM": "noreply@example.org"}
    first = ServerProcess(db_url, tmp_path / "first.log", env=env, ui=ui_name).start()
    try:
        assert f"mail: sending through smtp://mailer@127.0.0.1:{smtp.port}" in first.log()
        assert "smtp secret" not in first.log()  # never the password
        in_thread(lambda: asyncio.run(ask_for_a_reset(first.base_url)))
        wait_until(lambda: "not sent (attempt 1)" in first.log(), 10, "no attempt was made")
    finally:
        first.stop()  # authdemo restarts while the mail server is still down
    second = ServerProcess(db_url, tmp_path / "second.log", env=env, ui=ui_name, workers=2)
    second.start()
    try:
        smtp.start()  # and the mail server comes back
        try:
            wait_until(lambda: smtp.inbox, 30, "the mail never arrived")
            time.sleep(3)  # both workers keep polling: nothing more goes out
            inbox = smtp.inbox
        finally:
            smtp.stop()
    finally:
        second.stop()
    assert [r.recipients for r in inbox] == [["alice@example.org"]]
    assert inbox[0].tls and inbox[0].authenticated
