"""Issue 18: ``await current_user(request)`` in an app's own HTTP routes applies the same
rule as a page load and the websocket: signed in → the user; signed out, expired,
revoked, disabled or re-keyed (password changed) → None."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sanic import Request
from sanic.response import HTTPResponse, json

from authdemo import current_user
from authdemo.http.app import AuthdemoApp
from tests.support.fakes import FakeClock
from tests.support.live import Live, serve
from tests.web.conftest import signed_in_token
from tests.web.test_login_flow import cookie, first_visit


@pytest.fixture
async def api(app: AuthdemoApp) -> AsyncIterator[Live]:
    @app.get("/api/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        user = await current_user(request)
        again = await current_user(request)  # asking twice costs nothing and agrees
        assert again == user
        return json({"user": user.username if user else None})

    async with serve(app) as live:
        yield live


async def whoami(live: Live, token: str | None) -> str | None:
    headers = {"cookie": cookie(token)} if token is not None else {}
    response = await live.get("/api/whoami", headers=headers)
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers  # the app's route: no cookie handed out
    name: str | None = response.json()["user"]
    return name


async def test_a_signed_in_cookie_names_its_user(api: Live) -> None:
    token = await signed_in_token(api.app.ctx.service)
    assert await whoami(api, token) == "alice"


async def test_no_cookie_a_forged_one_or_an_anonymous_one_is_nobody(api: Live) -> None:
    assert await whoami(api, None) is None
    assert await whoami(api, "x" * 70) is None
    assert await whoami(api, await first_visit(api)) is None


async def test_a_signed_out_session_is_nobody(api: Live) -> None:
    service = api.app.ctx.service
    token = await signed_in_token(service)
    assert await whoami(api, token) == "alice"  # now cached by this worker
    resolved = await service.resolve(token)
    assert resolved.signed_in is not None
    await service.logout(resolved.signed_in.session.id)
    assert await whoami(api, token) is None


async def test_a_revoked_session_is_nobody(api: Live) -> None:
    token = await signed_in_token(api.app.ctx.service)
    assert await whoami(api, token) == "alice"
    await api.app.ctx.service.revoke_user_sessions("alice")
    assert await whoami(api, token) is None


async def test_a_disabled_user_is_nobody(api: Live) -> None:
    token = await signed_in_token(api.app.ctx.service)
    assert await whoami(api, token) == "alice"
    await api.app.ctx.service.set_active("alice", False)
    assert await whoami(api, token) is None


async def test_a_password_reset_ends_the_session_for_http_too(api: Live) -> None:
    token = await signed_in_token(api.app.ctx.service)
    assert await whoami(api, token) == "alice"
    await api.app.ctx.service.set_password("alice", "brand new pw")
    assert await whoami(api, token) is None


async def test_an_expired_session_is_nobody(api: Live, app_clock: FakeClock) -> None:
    token = await signed_in_token(api.app.ctx.service)
    assert await whoami(api, token) == "alice"
    app_clock.advance(timedelta(minutes=31))  # past the idle timeout
    assert await whoami(api, token) is None


async def test_a_request_slides_the_idle_expiry_like_a_page_load(
    api: Live, app_clock: FakeClock
) -> None:
    token = await signed_in_token(api.app.ctx.service)
    for _ in range(4):  # an hour of API calls, 20 minutes apart: never idle for 30
        app_clock.advance(timedelta(minutes=20))
        assert await whoami(api, token) == "alice"
