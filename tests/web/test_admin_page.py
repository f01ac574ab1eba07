"""The admin page (``AdminPage``, the demo's ``/admin``) over the websocket: it follows
the viewer's admin rights live, its actions are checked on the server (rights read from
the database, a recent sign-in), and what they change reaches other users' open views."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from authdemo import Accounts
from authdemo.config import Settings
from authdemo.domain import AuditKind
from authdemo.events import EventKind, SessionEvent
from authdemo.http.app import AuthdemoApp
from authdemo.ui.connection.admin import AdminActions
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient, Model, text_of, walk
from tests.support.live import Live, serve
from tests.support.mfa import MFA_KEY, enrol
from tests.support.mfa import PASSWORD as DAVES_PASSWORD
from tests.web.test_login_flow import cookie, first_visit, sign_in

PASSWORD = "correct horse"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The variant's settings, with a two-factor key (an admin resets two-factor)."""
    return replace(settings, mfa_keys=(MFA_KEY,))


@pytest.fixture
async def demo(app: AuthdemoApp) -> AsyncIterator[Live]:
    async with serve(app) as running:
        for name in ("alice", "bob", "carol"):
            await running.app.ctx.service.create_user(name, PASSWORD)
        await running.app.ctx.service.grant_role("alice", "admin")
        yield running


@pytest.fixture
async def operator(settings: Settings) -> AsyncIterator[Accounts]:
    """As the CLI (or another host): its changes reach the server through the outbox."""
    async with Accounts.open(settings, hasher_factory=cheap_hasher) as accounts:
        yield accounts


async def admin_page(live: Live, username: str) -> IdomClient:
    """``/admin`` opened in a browser, signed in there as ``username``."""
    client = await IdomClient.connect(
        live.base_url,
        cookie=cookie(await first_visit(live)),
        path=f"/_{live.ui}/stream/admin",
    )
    await client.wait_for_id("login-form")
    await client.submit("login-form", {"username": username, "password": PASSWORD})
    await client.wait_for(lambda c: c.find("admin-page") or c.find("forbidden"))
    return client


def attributes(node: Model) -> dict[str, Any]:
    found: dict[str, Any] = node.get("attributes", {})
    return found


def classes(node: Model) -> list[str]:
    attrs = attributes(node)
    return str(attrs.get("className", attrs.get("class_name", ""))).split()


def user_row(client: IdomClient, username: str) -> Model | None:
    users = client.find("admin-users")
    return next((n for n in walk(users) if attributes(n).get("data-username") == username), None)


def control(
    client: IdomClient, username: str, css: str, role: str | None = None, tag: str = "button"
) -> Model:
    row = user_row(client, username)
    assert row is not None, f"no row for {username}"
    for node in walk(row):
        if node.get("tagName") != tag or css not in classes(node):
            continue
        if role is None or attributes(node).get("data-role") == role:
            return node
    raise AssertionError(f"no .{css} for {username}")


async def press(client: IdomClient, username: str, css: str, role: str | None = None) -> None:
    await client.catch_up()  # the buttons' handlers as last rendered, as a browser has them
    await client.fire(control(client, username, css, role), "on_click", {"target": {}})


def events(client: IdomClient) -> list[str]:
    listed = client.find("admin-events")
    return [text_of(n) for n in walk(listed) if n.get("tagName") == "li"]


async def test_bobs_open_admin_page_follows_a_grant_and_a_revoke_within_a_second(
    demo: Live, operator: Accounts
) -> None:
    bob = await admin_page(demo, "bob")
    assert bob.find("forbidden") is not None and bob.find("admin-users") is None

    started = time.monotonic()
    await operator.grant_role("bob", "admin")  # `authdemo role grant bob admin`
    await bob.wait_for(lambda c: user_row(c, "carol") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0 and bob.find("forbidden") is None

    started = time.monotonic()
    await operator.revoke_role("bob", "admin")
    await bob.wait_for(lambda c: c.find("forbidden") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0 and bob.find("admin-users") is None
    await bob.close()


async def test_an_action_from_a_stale_page_that_missed_the_revoke_is_refused(
    demo: Live, operator: Accounts
) -> None:
    await operator.grant_role("bob", "admin")
    bob = await admin_page(demo, "bob")
    await bob.wait_for(lambda c: user_row(c, "carol") is not None)
    await bob.catch_up(quiet=0.5)  # the page's own sign-in, read again once
    bus = demo.app.ctx.events
    dropped: list[SessionEvent] = []

    def suppressing(event: SessionEvent) -> None:
        # The page hears nothing from here on: neither the revoke, nor anything that
        # would make it read the page again (and so learn of the revoke that way).
        if event.kind is EventKind.RIGHTS_CHANGED:
            dropped.append(event)

    bus.deliver = suppressing  # type: ignore[method-assign]
    await operator.revoke_role("bob", "admin")
    for _ in range(100):
        if dropped:
            break
        await asyncio.sleep(0.05)
    assert dropped and bob.find("forbidden") is None  # the page never heard of it

    await press(bob, "carol", "disable-user")
    await bob.wait_for_id("admin-error")
    assert "do not have permission" in (bob.text("admin-error") or "")
    assert (await operator.get_user("carol")).is_active  # nothing changed
    await bob.close()


async def test_alice_disables_carol_and_carols_open_view_signs_out_with_the_reason(
    demo: Live,
) -> None:
    carol, _ = await sign_in(demo, ("carol", PASSWORD))
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "carol") is not None)

    started = time.monotonic()
    await press(alice, "carol", "disable-user")
    await carol.wait_for(lambda c: c.find("signed-out-reason") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert "disabled" in (carol.text("signed-out-reason") or "")
    await alice.wait_for(lambda c: "Disabled carol" in (c.text("admin-message") or ""))
    await alice.wait_for(lambda c: any("user_disabled carol" in e for e in events(c)))
    assert not (await demo.app.ctx.service.get_user("carol")).is_active
    await press(alice, "carol", "enable-user")
    await alice.wait_for(lambda c: "Enabled carol" in (c.text("admin-message") or ""))
    await carol.close()
    await alice.close()


async def test_granting_and_revoking_a_role_from_the_page_is_audited_and_live(
    demo: Live,
) -> None:
    bob = await admin_page(demo, "bob")
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "bob") is not None)
    select = control(alice, "bob", "grant-role", tag="select")
    await alice.fire(select, "on_change", {"target": {"value": "admin"}})
    await press(alice, "bob", "grant-role")
    await bob.wait_for(lambda c: c.find("admin-users") is not None, timeout=1.0)
    await alice.wait_for(
        lambda c: any("role_granted bob role admin by alice" in e for e in events(c))
    )

    await alice.wait_for(
        lambda c: user_row(c, "bob") is not None and "Revoke" in text_of(user_row(c, "bob"))
    )
    await press(alice, "bob", "revoke-role", "admin")
    await bob.wait_for(lambda c: c.find("forbidden") is not None, timeout=1.0)
    await bob.close()
    await alice.close()


async def test_a_change_after_the_recent_sign_in_window_asks_for_the_password_first(
    demo: Live, app_clock: FakeClock
) -> None:
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "carol") is not None)
    app_clock.advance(timedelta(minutes=11))

    await press(alice, "carol", "end-sessions")
    await alice.wait_for_id("reauth-form")
    assert alice.find("admin-message") is None  # nothing was done yet
    await alice.submit("reauth-form", {"username": "alice", "password": "wrong password"})
    await alice.wait_for_id("admin-error")
    assert alice.find("reauth-form") is not None

    await alice.submit("reauth-form", {"username": "alice", "password": PASSWORD})
    await alice.wait_for(lambda c: "Ended 0 session(s) of carol" in (c.text("admin-message") or ""))
    assert alice.find("reauth-form") is None
    await press(alice, "carol", "disable-user")  # within the window again: no prompt
    await alice.wait_for(lambda c: "Disabled carol" in (c.text("admin-message") or ""))
    await alice.close()


async def test_what_an_admin_changes_is_audited_as_that_admin_from_their_browser(
    demo: Live,
) -> None:
    service = demo.app.ctx.service
    await service.create_user("dave", DAVES_PASSWORD)
    await enrol(service, "dave")  # two-factor on, one session open
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "dave") is not None)
    for css, done in [
        ("end-sessions", "Ended 1 session(s) of dave"),
        ("reset-two-factor", "Reset two-factor sign-in of dave"),
        ("disable-user", "Disabled dave"),
    ]:
        await alice.wait_for(lambda c, css=css: user_row(c, "dave") is not None)
        await press(alice, "dave", css)
        await alice.wait_for(lambda c, done=done: done in (c.text("admin-message") or ""))
    await alice.close()
    rows = [
        (e.kind, e.detail, e.client_addr)
        for e in await service.audit_events("dave", 10)
        if e.kind in {AuditKind.REVOKED, AuditKind.MFA_RESET, AuditKind.USER_DISABLED}
    ]
    assert sorted(rows) == sorted(
        [
            (AuditKind.REVOKED, "1 session(s) by alice", "127.0.0.1"),
            (AuditKind.MFA_RESET, "by alice; 0 session(s) ended", "127.0.0.1"),
            (AuditKind.USER_DISABLED, "by alice", "127.0.0.1"),
        ]
    )


async def test_the_audit_trail_filters_by_user(demo: Live) -> None:
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: len(events(c)) > 0)
    assert any("bob" in e for e in events(alice)) or any("carol" in e for e in events(alice))
    await alice.fire(alice.find("events-user") or {}, "on_change", {"target": {"value": "bob"}})
    await alice.wait_for(lambda c: all(" bob " in e for e in events(c)) and events(c) != [])
    await alice.close()


def open_sessions(client: IdomClient, username: str) -> str:
    row = user_row(client, username)
    return text_of(row) if row is not None else ""


async def test_an_open_admin_page_follows_sessions_opened_and_ended_elsewhere_within_a_second(
    demo: Live, operator: Accounts
) -> None:
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: "0 open session(s)" in open_sessions(c, "carol"))

    started = time.monotonic()
    carol, _ = await sign_in(demo, ("carol", PASSWORD))  # carol signs in, elsewhere
    await alice.wait_for(lambda c: "1 open session(s)" in open_sessions(c, "carol"), timeout=2)
    # Measured from the sign-in's start (it includes carol's own sign-in round trips).
    assert time.monotonic() - started < 2.0

    started = time.monotonic()
    assert await operator.revoke_sessions("carol") == 1  # `authdemo revoke-sessions carol`
    await alice.wait_for(lambda c: "0 open session(s)" in open_sessions(c, "carol"), timeout=1)
    assert time.monotonic() - started < 1.0
    await carol.close()
    await alice.close()


async def test_a_signed_out_admin_page_is_rendered_once_so_its_form_keeps_its_handler(
    demo: Live,
) -> None:
    """A render gives the form a new submit handler, and a submit sent before the new one
    arrived is ignored by the UI library: a page rendered twice just after it connects
    lost the sign-in of whoever typed fast (or a slow network). Signed out, nothing
    changes after the first render."""
    for path in ("/admin", "/"):
        client = await IdomClient.connect(
            demo.base_url,
            cookie=cookie(await first_visit(demo)),
            path=f"/_{demo.ui}/stream{path}",
        )
        await client.wait_for_id("login-form")
        await client.catch_up(quiet=0.5)
        assert client.updates == 1, path
        await client.close()


async def test_a_refresh_that_finds_nothing_new_does_not_render_the_page_again(
    demo: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render gives every button a new handler, and a click that left the browser
    before the new ones arrived is ignored: a refresh that changed nothing must not
    cost the admin a click."""
    monkeypatch.setattr("authdemo.ui.components.admin.REFRESH_EVERY", timedelta(seconds=0.2))
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "carol") is not None)
    await alice.catch_up(quiet=0.5)  # the page's own sign-in, read again once
    updates = alice.updates
    await alice.catch_up(quiet=1.5)  # seven refreshes, none finding anything new
    assert alice.updates == updates
    await alice.close()


async def test_a_read_that_started_earlier_never_replaces_a_later_one_on_the_page(
    demo: Live, operator: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two reads in flight (two broadcasts a little apart): the one that started first
    may finish last, and its older picture must not replace the newer one."""
    original = AdminActions.admin_overview
    hold, holding, release = [False], asyncio.Event(), asyncio.Event()

    async def held_back(self: AdminActions, events_of: str | None, limit: int) -> Any:
        read = await original(self, events_of, limit)
        if hold[0]:
            hold[0] = False
            holding.set()
            await release.wait()  # read before "dave" existed, answered after
        return read

    monkeypatch.setattr(AdminActions, "admin_overview", held_back)
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "carol") is not None)
    await alice.catch_up(quiet=0.5)

    hold[0] = True
    await operator.grant_role("bob", "admin")  # a broadcast: the page reads again
    await asyncio.wait_for(holding.wait(), 5)
    await operator.create_user("dave", PASSWORD)
    await operator.grant_role("carol", "admin")  # another broadcast, another read
    await alice.wait_for(lambda c: user_row(c, "dave") is not None, timeout=5)
    release.set()
    await alice.catch_up(quiet=0.5)
    assert user_row(alice, "dave") is not None
    await alice.close()


async def test_what_no_event_announces_is_read_again_every_refresh_interval(
    demo: Live, operator: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("authdemo.ui.components.admin.REFRESH_EVERY", timedelta(seconds=0.5))
    alice = await admin_page(demo, "alice")
    await alice.wait_for(lambda c: user_row(c, "carol") is not None)
    assert user_row(alice, "dave") is None

    await operator.create_user("dave", PASSWORD)  # `authdemo create-user dave`: no event
    await alice.wait_for(lambda c: user_row(c, "dave") is not None, timeout=3)
    await alice.wait_for(lambda c: any("user_created dave" in e for e in events(c)), timeout=3)
    await alice.close()
