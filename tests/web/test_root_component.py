"""The app's root component renders as a part of authdemo's root (``AuthProvider``):
one component per view, not two, on IDOM and on ReactPy. What an app author sees must
not change: the root's own hooks, ``use_auth()`` in its body, its renders of its own,
a root that raises, a root that is not a component."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

import pytest

from authdemo import LoginForm, use_auth
from authdemo.config import Settings
from authdemo.http.app import create_app
from authdemo.ui.hooks import AuthContext, AuthProvider
from authdemo.ui.library import component, current, html, use_context, use_effect, use_state
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve
from tests.web.test_login_flow import cookie, first_visit

_names = count()


class Probe:
    """What the root saw on each of its renders."""

    def __init__(self) -> None:
        self.rendered_by: list[Any] = []
        self.auths: list[Any] = []
        self.listeners: list[int] = []
        self.effects = 0
        self.fail = False


def probing_root(probe: Probe) -> Any:
    @component
    def Root() -> Any:
        probe.rendered_by.append(current().current_hook().component.type)
        auth = use_auth()
        probe.auths.append(auth)
        probe.listeners.append(len(use_context(AuthContext).live._listeners))
        clicks, set_clicks = use_state(0)

        @use_effect(dependencies=[])
        def mounted() -> None:
            probe.effects += 1

        if probe.fail:
            raise RuntimeError("the app's root broke")
        who = auth.user.username if auth.user is not None else "nobody"
        return html.div(
            html.p({"id": "who"}, who),
            html.p({"id": "clicks"}, str(clicks)),
            html.button({"id": "more", "on_click": lambda _: set_clicks(clicks + 1)}, "more"),
            LoginForm(),
        )

    return Root


def probing_app(settings: Settings, probe: Probe) -> Any:
    return create_app(
        settings, probing_root(probe), name=f"root_{next(_names)}", hasher_factory=cheap_hasher
    )


@asynccontextmanager
async def alices_browser(
    settings: Settings, probe: Probe
) -> AsyncIterator[tuple[Live, IdomClient]]:
    """The probing app served, user alice created, and a browser's view of its page."""
    async with serve(probing_app(settings, probe)) as live:
        await live.app.ctx.service.create_user("alice", "correct horse")
        first_cookie = cookie(await first_visit(live))
        async with await IdomClient.connect(live.base_url, cookie=first_cookie) as client:
            yield live, client


async def test_the_apps_root_has_no_component_of_its_own(settings: Settings) -> None:
    probe = Probe()
    app = probing_app(settings, probe)
    async with serve(app) as live, await IdomClient.connect(live.base_url) as client:
        await client.wait_for(lambda c: c.text("who") == "nobody")
    assert probe.rendered_by and set(probe.rendered_by) == {AuthProvider.function}  # type: ignore[attr-defined]


async def test_the_roots_own_hooks_and_use_auth_work_as_below_a_provider(
    settings: Settings,
) -> None:
    probe = Probe()
    async with alices_browser(settings, probe) as (_, client):
        await client.wait_for(lambda c: c.text("who") == "nobody")
        for clicks in ("1", "2"):
            await client.click("more")
            await client.wait_for(lambda c, n=clicks: c.text("clicks") == n)
        # Renders of the root's own keep use_auth()'s value: an app's effect that
        # depends on it runs when the auth state changes, not on every click.
        signed_out = [auth for auth in probe.auths if auth.user is None]
        assert len(signed_out) >= 3 and all(a is signed_out[0] for a in signed_out)
        await client.login("alice", "correct horse")
        await client.wait_for(lambda c: c.text("who") == "alice")
        assert await client.tickets_fetched() == [303]  # the provider's part still works
        await client.click("more")
        await client.wait_for(lambda c: c.text("clicks") == "3")  # its state kept
    assert probe.effects == 1  # mounted once, not again on the provider's renders
    # The view follows its state with one listener, made on the first render, not one
    # more on every render.
    assert len(probe.listeners) >= 6 and set(probe.listeners) == {1}
    assert probe.auths[-1].user is not None and probe.auths[-1] is not signed_out[0]


async def test_a_root_that_raises_is_logged_and_the_cookie_still_reaches_the_browser(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    probe = Probe()
    async with alices_browser(settings, probe) as (live, client):
        await client.wait_for(lambda c: c.find("login-form") is not None)
        await client.login("alice", "correct horse")
        probe.fail = True  # the sign-in's renders of the root raise
        with caplog.at_level(logging.ERROR, logger="authdemo.ui.hooks"):
            # The image that hands the browser its new cookie is the provider's: it
            # is still rendered, and the browser takes its cookie.
            await client.wait_for(lambda c: c.ticket_src() is not None)
            assert await client.tickets_fetched() == [303]
            assert client.find("who") is None  # the broken root shows nothing
        probe.fail = False
        async with await IdomClient.connect(live.base_url, cookie=client.cookie) as again:
            await again.wait_for(lambda c: c.text("who") == "alice")  # a reload: signed in
    failed = [r for r in caplog.records if r.getMessage().startswith("Failed to render")]
    assert failed and failed[0].exc_info is not None
    assert "the app's root broke" in str(failed[0].exc_info[1])


async def test_a_root_that_is_not_a_component_is_shown_as_it_is(settings: Settings) -> None:
    def plain() -> Any:
        return html.p({"id": "plain"}, "an element, not a component")

    app = create_app(settings, plain, name=f"root_{next(_names)}", hasher_factory=cheap_hasher)
    async with serve(app) as live, await IdomClient.connect(live.base_url) as client:
        await client.wait_for(lambda c: c.text("plain") == "an element, not a component")
