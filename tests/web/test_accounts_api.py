"""``authdemo.Accounts`` on open views: what an account call ends, an open tab shows as
signed out within a second — whether the call runs in the app's own process
(``Accounts.of(app)``) or in another one (``Accounts.open(settings)``, through the
broadcast outbox) — and the README's route that ends one of the user's own sessions."""

from __future__ import annotations

import itertools
import sys
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import pytest

from authdemo import Accounts, create_app
from authdemo.config import Settings
from authdemo.security import hash_token
from authdemo.service import AuthService
from authdemo.ui.connection.state import SIGNED_OUT_REASONS
from tests.conftest import cheap_hasher
from tests.packaging.test_wheel import readme_example
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve
from tests.support.mfa import CLIENT, MFA_KEY, PASSWORD, code_at, sign_in
from tests.web.test_login_flow import cookie

_names = itertools.count()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """IDOM only: what ends a session is the same for both UI libraries (one
    ``LiveSession``), and ``test_ui_libraries`` holds the two alike."""
    return Settings(database_url=db_url, mfa_keys=(MFA_KEY,))


@asynccontextmanager
async def running(settings: Settings, extend: Path | None = None) -> AsyncIterator[Live]:
    """The demo app; ``extend``: a file of code run with ``app`` in scope (a README route;
    Sanic reads its handlers' source, so it must be a file)."""
    app = create_app(settings, name=f"accounts_api_{next(_names)}", hasher_factory=cheap_hasher)
    if extend is not None:  # its `from app import app` gets this app
        module = types.ModuleType("app")
        module.app = app  # type: ignore[attr-defined]
        with patch.dict(sys.modules, {"app": module}):
            exec(compile(extend.read_text(), str(extend), "exec"), {})
    async with serve(app) as live:
        service = live.app.ctx.service
        await service.create_user("alice", PASSWORD)
        await service.create_user("bob", PASSWORD)
        yield live


@dataclass
class Tab:
    client: IdomClient
    token: str
    session_id: int


async def open_tab(live: Live, username: str = "alice") -> Tab:
    """A signed-in tab of a new session of ``username``."""
    token, session_id = await sign_in(live.app.ctx.service, username)
    return await tab_with(live, token, session_id)


async def tab_with(live: Live, token: str, session_id: int) -> Tab:
    client = await IdomClient.connect(live.base_url, cookie=cookie(token))
    await client.wait_for_id("greeting")
    return Tab(client, token, session_id)


async def enrolled_tab(live: Live) -> Tab:
    """Alice turns two-factor sign-in on in a session; a tab of that session."""
    service: AuthService = live.app.ctx.service
    token, session_id = await sign_in(service)
    started = await service.start_enrolment(session_id, PASSWORD, CLIENT)
    code = code_at(started.secret, service.now())
    done = await service.confirm_enrolment(session_id, code, hash_token(token), CLIENT)
    rekeyed = await service.redeem_ticket(done.rekeyed.ticket, token)
    return await tab_with(live, rekeyed.token, session_id)


async def signed_out_within(client: IdomClient, seconds: float) -> None:
    started = time.monotonic()
    await client.wait_for(lambda c: c.find("login-form") is not None, seconds + 2)
    assert time.monotonic() - started < seconds


Operation = Callable[[Accounts, Tab, int], Awaitable[object]]
"""An account call that ends ``tab``'s session (``int``: alice's user id)."""

ENDING: dict[str, Operation] = {
    "set_password": lambda acc, tab, uid: acc.set_password("alice", "another passphrase"),
    "disable_user": lambda acc, tab, uid: acc.disable_user("alice"),
    "revoke_sessions": lambda acc, tab, uid: acc.revoke_sessions("alice"),
    "end_session": lambda acc, tab, uid: acc.end_session(tab.session_id, user_id=uid),
    "end_any_session": lambda acc, tab, uid: acc.end_any_session(tab.session_id),
    "reset_two_factor": lambda acc, tab, uid: acc.reset_two_factor("alice"),
}


SAYS = {
    "set_password": "password_changed",
    "disable_user": "user_disabled",
    "revoke_sessions": "revoked",
    "end_session": "ended",
    "end_any_session": "ended",
    "reset_two_factor": "mfa_reset",
}
"""Why the tab was signed out (``#signed-out-reason``), by the call that ended it."""


@asynccontextmanager
async def accounts_in(where: str, live: Live, settings: Settings) -> AsyncIterator[Accounts]:
    if where == "this process":
        yield Accounts.of(live.app)
    else:
        async with Accounts.open(settings, hasher_factory=cheap_hasher) as accounts:
            yield accounts


@pytest.mark.parametrize("where", ["this process", "another process"])
@pytest.mark.parametrize("operation", list(ENDING))
async def test_what_an_account_call_ends_an_open_tab_shows_signed_out_within_a_second(
    settings: Settings, operation: str, where: str
) -> None:
    async with running(settings) as live:
        tab = await (enrolled_tab(live) if operation == "reset_two_factor" else open_tab(live))
        bobs = await open_tab(live, "bob")
        alice = await live.app.ctx.service.get_user("alice")
        async with accounts_in(where, live, settings) as accounts:
            await ENDING[operation](accounts, tab, alice.id)
        await signed_out_within(tab.client, 1.0)
        assert tab.client.text("signed-out-reason") == SIGNED_OUT_REASONS[SAYS[operation]]
        assert bobs.client.find("greeting") is not None  # another user's tab stays
        await tab.client.close()
        await bobs.client.close()


async def test_ending_one_session_leaves_the_users_other_tabs_signed_in(
    settings: Settings,
) -> None:
    async with running(settings) as live, Accounts.open(settings) as accounts:
        ended, kept = await open_tab(live), await open_tab(live)
        alice = await accounts.get_user("alice")
        await accounts.end_session(ended.session_id, user_id=alice.id)
        await signed_out_within(ended.client, 1.0)
        await kept.client.wait_for(lambda c: len(c.find_all("li")) == 1)  # its list follows
        assert kept.client.find("greeting") is not None
        await ended.client.close()
        await kept.client.close()


# --- the README's route: a user ends one of their own sessions ------------------------------


@pytest.fixture
def readme_route(tmp_path: Path) -> Path:
    path = tmp_path / "end_session_route.py"
    path.write_text(readme_example("end_session_route.py"))
    return path


async def end(live: Live, session_id: int, token: str) -> int:
    url = f"{live.base_url}/api/sessions/{session_id}/end"
    response = await live.http.post(url, headers={"cookie": cookie(token)})
    return response.status_code


async def test_the_readmes_route_ends_the_users_own_session_live(
    settings: Settings, readme_route: Path
) -> None:
    async with running(settings, readme_route) as live:
        laptop, phone = await open_tab(live), await open_tab(live)
        assert await end(live, phone.session_id, laptop.token) == 204
        await signed_out_within(phone.client, 1.0)
        assert laptop.client.find("greeting") is not None
        assert await end(live, phone.session_id, laptop.token) == 404  # ended already
        assert await end(live, laptop.session_id, "no-such-cookie") == 401
        await laptop.client.close()
        await phone.client.close()


async def test_the_readmes_route_refuses_another_users_session_and_ends_nothing(
    settings: Settings, readme_route: Path
) -> None:
    async with running(settings, readme_route) as live:
        alices, bobs = await open_tab(live), await open_tab(live, "bob")
        assert await end(live, bobs.session_id, alices.token) == 404
        assert await live.app.ctx.service.current(bobs.session_id) is not None
        assert bobs.client.find("greeting") is not None
        await alices.client.close()
        await bobs.client.close()


def test_accounts_of_an_app_that_has_not_started_says_how_to_get_them(
    settings: Settings,
) -> None:
    app = create_app(settings, name=f"accounts_api_{next(_names)}")
    with pytest.raises(RuntimeError, match=r"once it has started.*Accounts\.open"):
        Accounts.of(app)
