"""Accounts by e-mail over the websocket, on IDOM and ReactPy, SQLite and PostgreSQL: the
app's own outbox sender delivers to a real SMTP server (aiosmtpd, STARTTLS on a
self-signed certificate), and the codes are read from the messages it received."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from authdemo.config import Settings
from authdemo.domain import ClientInfo, InvalidCredentials
from authdemo.events import EventKind, SessionEvent
from authdemo.ui.components.email import SENT
from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient
from tests.support.live import Live
from tests.support.mfa import MFA_KEY, code_at, enrol
from tests.support.mfa import PASSWORD as MFA_PASSWORD
from tests.support.smtp import SmtpServer
from tests.web.test_login_flow import cookie, first_visit

PASSWORD = "correct horse"
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
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return replace(
        settings,
        signup=True,
        smtp_url=smtp.url,
        mail_from="noreply@example.org",
        mfa_keys=(MFA_KEY,),
    )


async def browser(live: Live) -> IdomClient:
    return await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live)))


async def mail_text(smtp: SmtpServer, seen: int, to: str) -> str:
    """The text of the mail after the first ``seen`` ones, once it arrived."""
    deadline = time.monotonic() + 10
    while len(smtp.inbox) <= seen:
        assert time.monotonic() < deadline, "no mail arrived"
        await asyncio.sleep(0.02)
    got = smtp.inbox[seen]
    assert got.recipients == [to]
    body = got.message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def next_code(smtp: SmtpServer, seen: int, to: str) -> str:
    text = await mail_text(smtp, seen, to)
    (code,) = [line for line in text.splitlines() if re.fullmatch(r"\d{8}", line)]
    return code


async def test_sign_up_verify_and_land_signed_in(live: Live, smtp: SmtpServer) -> None:
    async with await browser(live) as tab:
        await tab.click("show-signup")
        await tab.wait_for_id("signup-form")
        await tab.submit(
            "signup-form",
            {"email": "ann@example.org", "username": "ann", "password": PASSWORD},
        )
        await tab.wait_for_id("verify-email-form")
        assert "ann@example.org" in (tab.text("verify-hint") or "")
        code = await next_code(smtp, 0, "ann@example.org")
        await tab.submit("verify-email-form", {"code": "00000000" if code != "00000000" else "1"})
        await tab.wait_for_id("verify-error")
        await tab.submit("verify-email-form", {"code": code})
        await tab.wait_for_id("greeting")
        assert "ann" in (tab.text("greeting") or "")
        assert await tab.tickets_fetched() == [303]
        assert "ann@example.org" in (tab.text("email-current") or "")


async def test_an_unverified_account_is_offered_the_code_step_and_a_new_code(
    live: Live, smtp: SmtpServer
) -> None:
    async with await browser(live) as tab:
        await tab.click("show-signup")
        await tab.wait_for_id("signup-form")
        await tab.submit(
            "signup-form", {"email": "bo@example.org", "username": "bo", "password": PASSWORD}
        )
        await tab.wait_for_id("verify-email-form")
        await next_code(smtp, 0, "bo@example.org")
    async with await browser(live) as tab:
        await tab.login("bo", PASSWORD)
        await tab.wait_for_id("verify-email-form")
        await tab.click("resend-code")
        await tab.wait_for_id("verify-notice")
        code = await next_code(smtp, 1, "bo@example.org")
        await tab.submit("verify-email-form", {"code": code})
        await tab.wait_for_id("greeting")


async def test_reset_says_the_same_for_any_address_and_signs_out_every_other_session(
    live: Live, smtp: SmtpServer
) -> None:
    service = live.app.ctx.service
    await service.create_user_with_email("alice", PASSWORD, "alice@example.org")
    async with await browser(live) as other:
        await other.login("alice", PASSWORD)
        await other.wait_for_id("greeting")
        async with await browser(live) as stranger:
            await stranger.click("forgot-password")
            await stranger.wait_for_id("reset-request-form")
            await stranger.submit("reset-request-form", {"email": "nobody@example.org"})
            await stranger.wait_for_id("reset-sent")
            unknown = stranger.text("reset-sent")
        async with await browser(live) as tab:
            await tab.click("forgot-password")
            await tab.wait_for_id("reset-request-form")
            await tab.submit("reset-request-form", {"email": "Alice@example.org"})
            await tab.wait_for_id("reset-sent")
            assert tab.text("reset-sent") == unknown == SENT
            assert "no account has this address" in await mail_text(smtp, 0, "nobody@example.org")
            code = await next_code(smtp, 1, "alice@example.org")
            revoked_at: list[float] = []

            def note(event: SessionEvent) -> None:  # published as the reset commits
                if event.kind == EventKind.REVOKED and event.reason == "password_changed":
                    revoked_at.append(time.monotonic())

            live.app.ctx.events.subscribe_all(note)
            await tab.submit("reset-form", {"code": code, "password": NEW_PASSWORD})
            # The other session's end is timed from the revoke to its view, alone (not
            # after this tab's own sign-in, which a slow machine made take over 1 s).
            await other.wait_for_id("signed-out-reason")
            assert revoked_at, "the reset revoked nothing"
            assert time.monotonic() - revoked_at[0] < 1.0
            await tab.wait_for_id("greeting")
    with pytest.raises(InvalidCredentials):  # the old password no longer works
        await service.login("x" * 64, "alice", PASSWORD, ClientInfo())


async def test_a_new_address_from_the_account_view(live: Live, smtp: SmtpServer) -> None:
    service = live.app.ctx.service
    await service.create_user_with_email("alice", PASSWORD, "alice@example.org")
    async with await browser(live) as tab:
        await tab.login("alice", PASSWORD)
        await tab.wait_for_id("email-form")
        await tab.submit("email-form", {"email": "alice@new.example"})
        await tab.wait_for_id("email-code-form")
        code = await next_code(smtp, 0, "alice@new.example")
        await tab.submit("email-code-form", {"code": code})
        await tab.wait_for_id("email-notice")
        await tab.wait_for(lambda c: "alice@new.example" in (c.text("email-current") or ""))
        assert tab.find("email-form") is not None  # ready for another change
        assert tab.find("email-code-form") is None
    deadline = time.monotonic() + 10
    while len(smtp.inbox) < 2:  # the notice to the old address
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert smtp.inbox[1].recipients == ["alice@example.org"]


async def test_without_mail_the_form_offers_neither_reset_nor_sign_up(
    live: Live,
) -> None:
    live.app.ctx.service.email = replace(
        live.app.ctx.service.email, mail_available=False, signup_open=True
    )
    async with await browser(live) as tab:
        await tab.wait_for_id("login-form")
        assert tab.find("forgot-password") is None and tab.find("show-signup") is None


async def test_a_reset_of_a_two_factor_account_asks_for_a_code_from_the_app(
    live: Live, smtp: SmtpServer, app_clock: FakeClock
) -> None:
    service = live.app.ctx.service
    await service.create_user_with_email("alice", MFA_PASSWORD, "alice@example.org")
    secret, _ = await enrol(service, "alice")
    app_clock.advance(timedelta(seconds=30))
    async with await browser(live) as tab:
        await tab.click("forgot-password")
        await tab.wait_for_id("reset-request-form")
        await tab.submit("reset-request-form", {"email": "alice@example.org"})
        await tab.wait_for_id("reset-form")
        code = await next_code(smtp, 0, "alice@example.org")
        await tab.submit("reset-form", {"code": code, "password": NEW_PASSWORD})
        await tab.wait_for_id("reset-second-factor")
        assert "two-factor" in (tab.text("reset-error") or "")
        await tab.submit(
            "reset-form",
            {
                "code": code,
                "password": NEW_PASSWORD,
                "second_factor": code_at(secret, app_clock.now()),
            },
        )
        await tab.wait_for_id("greeting")
