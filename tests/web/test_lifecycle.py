"""Session lifecycle on open connections: timeouts, renewal, live propagation, self-service."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.domain import AuditKind, Clock, StorageUnavailable
from authdemo.http.app import create_app
from authdemo.ui.components import DemoApp
from authdemo.ui.hooks import use_auth
from authdemo.ui.library import component, html
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient, text_of
from tests.support.live import Live, serve
from tests.web.test_login_flow import Creds, cookie, first_visit, sign_in

_names = itertools.count()
PASSWORD = "correct horse"


@asynccontextmanager
async def running(
    settings: Settings, root: Callable[[], Any] | None = None, clock: Clock | None = None
) -> AsyncIterator[Live]:
    app = create_app(
        settings,
        root,
        name=f"authdemo_lifecycle_{next(_names)}",
        clock=clock,
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        await live.app.ctx.service.create_user("alice", PASSWORD)
        yield live


def who_am_i_root(seen: list[str | None]) -> Callable[[], Any]:
    """A root whose button records the user an event handler runs as."""

    @component
    def Root() -> Any:
        auth = use_auth()

        def record(_: Any) -> None:
            seen.append(auth.user.username if auth.user else None)

        view = DemoApp()
        return html.div(html.button({"id": "whoami", "on_click": record}, "who"), view)

    return Root


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a server-side effect that sends nothing to the client."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def signed_out(client: IdomClient, timeout: float = 5.0) -> float:
    """Wait for the signed-out view; return when it arrived (monotonic seconds)."""
    await client.wait_for(lambda c: c.find("login-form") is not None, timeout)
    return time.monotonic()


# --- timeouts on open connections -------------------------------------------------------


async def test_an_open_view_signs_out_within_a_second_of_idle_expiry(settings: Settings) -> None:
    short = replace(settings, idle_timeout=timedelta(seconds=2))
    async with running(short) as live:
        client, _ = await sign_in(live, ("alice", PASSWORD))
        service = live.app.ctx.service  # the expiry the server computed at sign-in
        current = await service.current(await only_session_id(live))
        assert current is not None
        delay = (current.session.expires_at() - service.now()).total_seconds()
        started = time.monotonic()
        arrived = await signed_out(client, timeout=delay + 3)
        assert arrived - started - delay < 1.0
        await client.close()


async def only_session_id(live: Live) -> int:
    ((session, _),) = await live.app.ctx.service.live_sessions("alice")
    return session.id


async def test_activity_cannot_extend_a_session_past_its_absolute_expiry(
    settings: Settings,
) -> None:
    seen: list[str | None] = []
    short = replace(
        settings, idle_timeout=timedelta(milliseconds=1500), absolute_timeout=timedelta(seconds=3)
    )
    async with running(short, who_am_i_root(seen)) as live:
        client, _ = await sign_in(live, ("alice", PASSWORD))
        started = time.monotonic()
        while client.find("login-form") is None and time.monotonic() - started < 6:
            await client.click("whoami")  # activity every 0.4 s keeps the idle window open
            with contextlib.suppress(TimeoutError):
                await client.wait_for(lambda c: c.find("login-form") is not None, 0.4)
        elapsed = time.monotonic() - started
        assert client.find("login-form") is not None
        assert 2.0 < elapsed < 4.0  # the absolute 3 s, not the 1.5 s idle window
        await client.close()


async def test_no_event_runs_as_the_user_once_the_session_has_expired(
    settings: Settings,
) -> None:
    seen: list[str | None] = []
    clock = FakeClock(datetime.now(UTC))
    async with running(settings, who_am_i_root(seen), clock) as live:
        client, _ = await sign_in(live, ("alice", PASSWORD))
        await client.click("whoami")
        await until(lambda: seen == ["alice"])
        clock.advance(timedelta(minutes=31))  # the timer has not fired: only time moved
        await client.click("whoami")
        await signed_out(client)
        await asyncio.sleep(0.2)
        assert seen == ["alice"]
        await client.click("whoami")  # a new event, on the new (signed-out) view
        await until(lambda: len(seen) == 2)
        assert seen == ["alice", None]
        await client.close()


async def test_ui_events_slide_the_idle_expiry_writing_only_when_due(settings: Settings) -> None:
    seen: list[str | None] = []
    clock = FakeClock(datetime.now(UTC))
    async with running(settings, who_am_i_root(seen), clock) as live:
        service = live.app.ctx.service
        client, _ = await sign_in(live, ("alice", PASSWORD))
        session_id = await only_session_id(live)
        first = (await service.current(session_id)).session  # type: ignore[union-attr]
        clock.advance(timedelta(minutes=10))
        await client.click("whoami")
        await until(lambda: len(seen) == 1)
        assert (await service.current(session_id)).session == first  # type: ignore[union-attr]
        clock.advance(timedelta(minutes=10))  # 20 minutes in: less than half is left
        await client.click("whoami")
        await until(lambda: len(seen) == 2)
        renewed = (await service.current(session_id)).session  # type: ignore[union-attr]
        assert renewed.idle_expires_at == clock.now() + timedelta(minutes=30)
        assert renewed.last_seen_at == clock.now()
        await client.close()


# --- live propagation -------------------------------------------------------------------


async def test_signing_out_in_one_tab_switches_the_other_within_a_second(
    live: Live, alice: Creds
) -> None:
    tab_a, token = await sign_in(live, alice)
    tab_b = await IdomClient.connect(live.base_url, cookie=cookie(token))
    assert tab_b.find("greeting") is not None
    await tab_a.click("logout")
    started = time.monotonic()
    await signed_out(tab_b, timeout=1.0)
    assert time.monotonic() - started < 1.0
    await tab_a.close()
    await tab_b.close()


async def test_sign_out_other_sessions_switches_other_devices_live(
    live: Live, alice: Creds
) -> None:
    laptop, _ = await sign_in(live, alice)
    phone, _ = await sign_in(live, alice)
    await laptop.click("logout-others")
    await signed_out(phone, timeout=1.0)
    await laptop.wait_for_id("logout-others-done")
    assert laptop.text("logout-others-done") == "Signed out 1 other session."
    await laptop.wait_for(lambda c: len(c.find_all("li")) == 1)
    assert laptop.find("greeting") is not None
    await laptop.close()
    await phone.close()


async def database_away(*args: Any, **kwargs: Any) -> Any:
    """Stands in for a service call while the database cannot be reached."""
    raise StorageUnavailable()


async def test_a_sign_out_the_database_cannot_take_says_so_and_stays_signed_in(
    live: Live, alice: Creds, monkeypatch: pytest.MonkeyPatch
) -> None:
    tab, _ = await sign_in(live, alice)
    service = live.app.ctx.service
    real_logout = service.logout

    monkeypatch.setattr(service, "logout", database_away)
    await tab.click("logout")
    await tab.wait_for_id("account-error")
    assert "temporarily unavailable" in tab.text("account-error")
    assert tab.find("greeting") is not None  # not shown as signed out while it is not
    monkeypatch.setattr(service, "logout", real_logout)
    await tab.click("logout")  # once the database is back, signing out works
    await signed_out(tab)
    await tab.close()


async def test_a_session_list_the_database_cannot_read_leaves_the_view_working(
    live: Live, alice: Creds, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(live.app.ctx.service, "account_snapshot", database_away)
    with caplog.at_level(logging.WARNING):
        tab, _ = await sign_in(live, alice)
        await until(lambda: "session list not refreshed" in caplog.text)
    assert tab.find("greeting") is not None and tab.find("sessions") is not None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback
    await tab.close()


async def test_a_revocation_made_by_another_process_reaches_open_tabs(
    live: Live, alice: Creds, settings: Settings
) -> None:
    tab, _ = await sign_in(live, alice)
    async with runtime(settings, hasher_factory=cheap_hasher) as other_process:
        await other_process.service.revoke_user_sessions("alice")
    started = time.monotonic()
    await signed_out(tab, timeout=1.0)
    assert time.monotonic() - started < 1.0
    await tab.close()


async def test_disabling_an_account_elsewhere_signs_its_tabs_out(
    live: Live, alice: Creds, settings: Settings
) -> None:
    tab, _ = await sign_in(live, alice)
    async with runtime(settings, hasher_factory=cheap_hasher) as other_process:
        await other_process.service.set_active("alice", False)
    await signed_out(tab, timeout=1.0)
    await tab.close()


# --- self-service -----------------------------------------------------------------------


async def test_the_sessions_list_shows_each_live_session_and_this_device(
    live: Live, alice: Creds
) -> None:
    first, _ = await sign_in(live, alice)
    second, _ = await sign_in(live, alice)
    await second.wait_for(lambda c: len(c.find_all("li")) == 2)
    badges = [
        n for n in second.find_all("span") if n.get("attributes", {}).get("class_name") == "badge"
    ]
    assert len(badges) == 1
    await first.close()
    await second.close()


async def test_session_times_read_naturally_with_the_exact_moment_in_a_time_element(
    live: Live, alice: Creds, app_clock: FakeClock
) -> None:
    first, _ = await sign_in(live, alice)
    await first.wait_for(lambda c: len(c.find_all("time")) == 2)
    signed_in_at = first.find_all("time")[0]
    assert text_of(signed_in_at) == "just now"
    moment = datetime.fromisoformat(signed_in_at["attributes"]["datetime"])
    assert abs(moment - app_clock.now()) < timedelta(seconds=1)
    assert signed_in_at["attributes"]["title"] == moment.strftime("%Y-%m-%d %H:%M UTC")
    app_clock.advance(timedelta(minutes=5))
    second, _ = await sign_in(live, alice)  # the list re-reads when a session opens
    await first.wait_for(lambda c: len(c.find_all("time")) == 4)
    said = [text_of(t) for t in first.find_all("time")]
    assert said.count("5 min ago") == 2 and said.count("just now") == 2, said
    await first.close()
    await second.close()


async def test_change_password_over_the_websocket(live: Live, alice: Creds) -> None:
    tab, token = await sign_in(live, alice)
    elsewhere, _ = await sign_in(live, alice)
    await tab.wait_for(lambda c: c.ticket_src() is None)

    await tab.submit(
        "change-password", {"current_password": "nope nope", "new_password": "brand new pw"}
    )
    await tab.wait_for_id("change-password-error")
    # The form has no username: the message names what was wrong.
    assert tab.text("change-password-error") == "The current password is not right."

    await tab.submit(
        "change-password", {"current_password": PASSWORD, "new_password": "brand new pw"}
    )
    await tab.wait_for_id("change-password-ok")  # said once the rotated cookie is held
    await signed_out(elsewhere, timeout=1.0)
    assert tab.find("greeting") is not None
    assert await tab.tickets_fetched() == [303, 303]
    new_token = tab.token()
    assert new_token not in (None, token)
    async with await IdomClient.connect(live.base_url, cookie=cookie(token)) as old:
        assert old.find("login-form") is not None
    async with await IdomClient.connect(live.base_url, cookie=cookie(new_token or "")) as new:
        assert new.find("greeting") is not None
    await tab.close()
    await elsewhere.close()


async def test_a_weak_new_password_is_refused_with_the_policy_message(
    live: Live, alice: Creds
) -> None:
    tab, _ = await sign_in(live, alice)
    await tab.submit("change-password", {"current_password": PASSWORD, "new_password": "short"})
    await tab.wait_for_id("change-password-error")
    assert "at least 8" in (tab.text("change-password-error") or "")
    await tab.close()


async def test_repeated_failures_show_when_to_retry(live: Live, alice: Creds) -> None:
    async with await IdomClient.connect(live.base_url, cookie=cookie(await first_visit(live))) as c:
        for attempt in range(6):
            await c.login("alice", f"wrong {attempt}")
            # Each refusal renders a fresh form (its password field empty): wait for it.
            await c.wait_for(
                lambda c, n=attempt: (
                    (c.find("login-form") or {}).get("key") == f"login-form-{n + 1}"
                )
            )
        await c.login("alice", PASSWORD)
        await c.wait_for(lambda c: "Too many attempts" in (c.text("login-error") or ""))
        assert "try again in" in (c.text("login-error") or "")
        assert c.find("greeting") is None
    events = await live.app.ctx.service.audit_events("alice", 20)
    assert AuditKind.THROTTLED in [e.kind for e in events]
