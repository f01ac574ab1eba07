"""What a view tells its person: why it was signed out when they did not ask for it, in
one sentence (``#signed-out-reason`` above the sign-in form; nothing for a sign-out they
asked for, in any tab of the session; the operator's causes are in test_accounts_api),
and that two-factor sign-in is unavailable on a server without a key, up front."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.security import hash_token
from authdemo.ui.connection.state import SIGNED_OUT_REASONS
from tests.support.fakes import FakeClock
from tests.support.mfa import PASSWORD
from tests.web.test_accounts_api import (
    Tab,
    open_tab,
    running,
    settings,  # noqa: F401 - the fixture, IDOM on both databases
    signed_out_within,
    tab_with,
)
from tests.web.test_lifecycle import PASSWORD as LIFECYCLE_PASSWORD
from tests.web.test_lifecycle import running as lifecycle_app
from tests.web.test_lifecycle import signed_out, who_am_i_root
from tests.web.test_login_flow import sign_in as lifecycle_sign_in

CLIENT = ClientInfo("::1", "another device")


async def reason_of(tab: Tab) -> str | None:
    await signed_out_within(tab.client, 1.0)
    return tab.client.text("signed-out-reason")


async def test_a_password_changed_on_another_device_says_so(settings: Settings) -> None:  # noqa: F811
    async with running(settings) as live:
        here, there = await open_tab(live), await open_tab(live)
        await live.app.ctx.service.change_password(
            there.session_id, PASSWORD, "a new passphrase", hash_token(there.token), CLIENT
        )
        assert await reason_of(here) == SIGNED_OUT_REASONS["password_changed"]
        await here.client.close()
        await there.client.close()


async def test_sign_out_other_sessions_elsewhere_says_so(settings: Settings) -> None:  # noqa: F811
    async with running(settings) as live:
        here, there = await open_tab(live), await open_tab(live)
        await live.app.ctx.service.revoke_other_sessions(
            there.session_id, CLIENT, hash_token(there.token)
        )
        assert await reason_of(here) == SIGNED_OUT_REASONS["signed_out_elsewhere"]
        await here.client.close()
        await there.client.close()


async def test_a_sign_out_in_another_tab_of_the_session_says_nothing(settings: Settings) -> None:  # noqa: F811
    async with running(settings) as live:
        first = await open_tab(live)
        second = await tab_with(live, first.token, first.session_id)  # the same session
        await second.client.click("logout")
        await signed_out_within(first.client, 1.0)
        assert first.client.find("signed-out-reason") is None
        await first.client.close()
        await second.client.close()


async def test_an_expired_session_says_so_and_signing_in_again_clears_it(
    settings: Settings,  # noqa: F811
) -> None:
    seen: list[str | None] = []
    clock = FakeClock(datetime.now(UTC))
    async with lifecycle_app(settings, who_am_i_root(seen), clock) as live:
        client, _ = await lifecycle_sign_in(live, ("alice", LIFECYCLE_PASSWORD))
        clock.advance(timedelta(minutes=31))  # past the 30-minute idle window
        await client.click("whoami")
        await signed_out(client)
        assert client.text("signed-out-reason") == SIGNED_OUT_REASONS["expired"]
        await client.login("alice", LIFECYCLE_PASSWORD)
        await client.wait_for(lambda c: c.find("login-form") is None)
        await client.click("logout")
        await signed_out(client)
        assert client.find("signed-out-reason") is None  # asked for: nothing to explain
        await client.close()


async def test_without_a_key_the_two_factor_card_says_unavailable_up_front(
    db_url: str,
) -> None:
    """Not after asking for the password, and in words for a person, not a setting's name."""
    async with running(Settings(database_url=db_url)) as live:
        tab = await open_tab(live)
        await tab.client.wait_for_id("mfa-unavailable")
        assert tab.client.text("mfa-unavailable") == (
            "Two-factor sign-in is not available on this server."
        )
        assert tab.client.find("mfa-start") is None and tab.client.find("mfa-password") is None
        await tab.client.close()
