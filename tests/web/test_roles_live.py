"""Permissions over the websocket: what a view shows follows grants and revokes live
(through the broadcast outbox, as from another worker, host or the CLI), and a
``@requires`` handler is checked on the server when its event arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import pytest
from sanic import Request
from sanic.response import HTTPResponse, json

from authdemo import (
    Accounts,
    Permission,
    RequireAuth,
    RequirePermission,
    UndeclaredPermission,
    has_permission,
    requires,
    use_auth,
    use_permission,
)
from authdemo.config import Settings
from authdemo.events import EventKind, SessionEvent
from authdemo.http.app import AuthdemoApp, create_app
from authdemo.ui.library import component, html, use_state
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve
from tests.web.conftest import signed_in_token
from tests.web.test_login_flow import cookie, sign_in

PASSWORD = "correct horse"
DECLARED = [Permission("notes:write", "Write notes")]
_names = count()
WRITES: list[str] = []
"""What the guarded handler did (server side): a refused event must add nothing."""


@component
def Notes() -> Any:
    auth = use_auth()
    can_write = use_permission("notes:write")
    written, set_written = use_state(0)

    # Always rendered, whatever the permission says: the server must refuse regardless.
    @requires("notes:write")
    async def write(_event: Any) -> None:
        WRITES.append(auth.user.username if auth.user else "?")
        set_written(written + 1)

    return html.div(
        html.p({"id": "greeting"}, auth.user.username if auth.user else ""),
        html.p({"id": "can-write"}, "yes" if can_write else "no"),
        html.button({"id": "write", "on_click": write}, "write"),
        html.p({"id": "written"}, str(written)),
        RequirePermission("authdemo:admin", html.p({"id": "admin-area"}, "admin things")),
    )


@component
def NotesApp() -> Any:
    return RequireAuth(Notes())


def app_of(settings: Settings, clock: FakeClock) -> AuthdemoApp:
    return create_app(
        settings,
        NotesApp,
        name=f"authdemo_roles_{next(_names)}",
        clock=clock,
        hasher_factory=cheap_hasher,
        permissions=DECLARED,
    )


@pytest.fixture
async def notes(settings: Settings, app_clock: FakeClock) -> AsyncIterator[Live]:
    WRITES.clear()
    async with serve(app_of(settings, app_clock)) as running:
        await running.app.ctx.service.create_user("bob", PASSWORD)
        yield running


@pytest.fixture
async def operator(settings: Settings) -> AsyncIterator[Accounts]:
    """The account API opened on its own (as the CLI, or another worker or host does):
    its changes reach the server only through the broadcast outbox."""
    async with Accounts.open(settings, hasher_factory=cheap_hasher, permissions=DECLARED) as a:
        await a.create_role("writer", ["notes:write"])
        yield a


async def within(client: IdomClient, check: Any, seconds: float = 1.0) -> float:
    """Wait for ``check(client)``; fails unless it holds within ``seconds``."""
    started = time.monotonic()
    await client.wait_for(check, timeout=seconds)
    return time.monotonic() - started


async def test_a_grant_reaches_an_open_view_within_a_second(
    notes: Live, operator: Accounts
) -> None:
    bob, _ = await sign_in(notes, ("bob", PASSWORD))
    await bob.wait_for(lambda c: c.text("can-write") == "no")
    assert bob.find("forbidden") is not None and bob.find("admin-area") is None

    await operator.grant_role("bob", "writer")
    await within(bob, lambda c: c.text("can-write") == "yes")
    await operator.grant_role("bob", "admin")
    await within(bob, lambda c: c.find("admin-area") is not None)
    assert bob.find("forbidden") is None
    await bob.close()


async def test_a_revoke_reaches_an_open_view_within_a_second(
    notes: Live, operator: Accounts
) -> None:
    await operator.grant_role("bob", "admin")
    bob, _ = await sign_in(notes, ("bob", PASSWORD))
    await bob.wait_for(lambda c: c.find("admin-area") is not None)

    await operator.revoke_role("bob", "admin")
    await within(bob, lambda c: c.find("forbidden") is not None)
    assert bob.find("admin-area") is None
    await bob.close()


async def test_deleting_a_role_takes_it_from_open_views_within_a_second(
    notes: Live, operator: Accounts
) -> None:
    await operator.grant_role("bob", "writer")
    bob, _ = await sign_in(notes, ("bob", PASSWORD))
    await bob.wait_for(lambda c: c.text("can-write") == "yes")

    await operator.delete_role("writer")
    await within(bob, lambda c: c.text("can-write") == "no")
    await bob.close()


async def test_a_guarded_handler_without_the_permission_changes_nothing_and_says_so(
    notes: Live,
) -> None:
    bob, _ = await sign_in(notes, ("bob", PASSWORD))
    await bob.click("write")
    await bob.wait_for_id("permission-refused")
    assert "do not have permission" in (bob.text("permission-refused") or "")
    assert WRITES == [] and bob.text("written") == "0"
    await bob.close()


async def test_a_guarded_handler_runs_for_a_user_who_holds_the_permission(
    notes: Live, operator: Accounts
) -> None:
    await operator.grant_role("bob", "writer")
    bob, _ = await sign_in(notes, ("bob", PASSWORD))
    await bob.click("write")
    await bob.wait_for(lambda c: c.text("written") == "1")
    assert WRITES == ["bob"] and bob.find("permission-refused") is None
    await bob.close()


async def test_a_stale_view_that_missed_the_revoke_is_refused_at_the_event(
    notes: Live, operator: Accounts
) -> None:
    await operator.grant_role("bob", "writer")
    bob, _ = await sign_in(notes, ("bob", PASSWORD))
    await bob.wait_for(lambda c: c.text("can-write") == "yes")

    # This server never hears of the revoke: its bus drops every RIGHTS_CHANGED.
    bus = notes.app.ctx.events
    deliver = bus.deliver
    dropped: list[SessionEvent] = []

    def suppressing(event: SessionEvent) -> None:
        if event.kind is EventKind.RIGHTS_CHANGED:
            dropped.append(event)
            return
        deliver(event)

    bus.deliver = suppressing  # type: ignore[method-assign]
    await operator.revoke_role("bob", "writer")
    for _ in range(100):  # the follower reads the outbox row and the bus drops it…
        if dropped:
            break
        await asyncio.sleep(0.05)
    assert dropped and dropped[0].user_id is not None
    await asyncio.sleep(0.3)
    assert bob.text("can-write") == "yes"  # …so the page still offers the action

    await bob.click("write")
    await bob.wait_for_id("permission-refused")
    assert WRITES == [] and bob.text("written") == "0"
    await bob.close()


# --- HTTP routes: await has_permission(request, "…") ---------------------------------------


@pytest.fixture
async def api(settings: Settings, app_clock: FakeClock) -> AsyncIterator[Live]:
    app = app_of(settings, app_clock)

    @app.get("/api/notes/write")
    async def may_write(request: Request) -> HTTPResponse:
        if not await has_permission(request, "notes:write"):
            return json({"error": "forbidden"}, status=403)
        return json({"ok": True})

    @app.get("/api/typo")
    async def typo(request: Request) -> HTTPResponse:
        try:
            await has_permission(request, "notes:wrte")
        except UndeclaredPermission as error:
            return json({"error": str(error)}, status=500)
        return json({"ok": True})

    async with serve(app) as running:
        yield running


async def test_an_http_route_asks_has_permission_and_a_revoke_counts_at_once(
    api: Live, operator: Accounts
) -> None:
    token = await signed_in_token(api.app.ctx.service, "bob")
    headers = {"cookie": cookie(token)}
    assert (await api.get("/api/notes/write", headers=headers)).status_code == 403
    await operator.grant_role("bob", "writer")
    assert (await api.get("/api/notes/write", headers=headers)).status_code == 200
    await operator.revoke_role("bob", "writer")
    # No event needed: the route reads the roles from the database on every call.
    assert (await api.get("/api/notes/write", headers=headers)).status_code == 403
    assert (await api.get("/api/notes/write")).status_code == 403  # not signed in


async def test_an_http_route_asking_an_undeclared_permission_fails_loudly(api: Live) -> None:
    response = await api.get("/api/typo")
    assert "'notes:wrte' is not a declared permission" in response.json()["error"]


# --- two servers on one database (two workers or hosts) ----------------------------------------


@pytest.fixture
async def two_servers(settings: Settings, app_clock: FakeClock) -> AsyncIterator[list[Live]]:
    """Two apps, each with its own runtime, event bus and broadcast follower, on one
    database: what two workers, or two hosts, are to each other."""
    WRITES.clear()
    async with (
        serve(app_of(settings, app_clock)) as first,
        serve(app_of(settings, app_clock)) as second,
    ):
        await first.app.ctx.service.create_user("bob", PASSWORD)
        yield [first, second]


async def test_a_grant_and_a_revoke_reach_views_on_two_servers_within_a_second(
    two_servers: list[Live], operator: Accounts
) -> None:
    views = [(await sign_in(server, ("bob", PASSWORD)))[0] for server in two_servers]
    for view in views:
        await view.wait_for(lambda c: c.find("forbidden") is not None)

    started = time.monotonic()
    await operator.grant_role("bob", "admin")
    for view in views:
        await view.wait_for(lambda c: c.find("admin-area") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0

    started = time.monotonic()
    await operator.revoke_role("bob", "admin")
    for view in views:
        await view.wait_for(lambda c: c.find("forbidden") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0
    for view in views:
        await view.close()


async def test_a_grant_made_on_one_server_reaches_a_view_on_the_other(
    two_servers: list[Live],
) -> None:
    first, second = two_servers
    view, _ = await sign_in(second, ("bob", PASSWORD))
    await view.wait_for(lambda c: c.text("can-write") == "no")
    await first.app.ctx.service.create_role("writer", ["notes:write"])
    await Accounts.of(first.app).grant_role("bob", "writer")
    await within(view, lambda c: c.text("can-write") == "yes")
    await view.click("write")
    await view.wait_for(lambda c: c.text("written") == "1")
    await view.close()
