from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from authdemo.config import Settings
from authdemo.http.app import AuthdemoApp, create_app
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.live import Live, serve

_names = itertools.count()


@pytest.fixture
def settings(settings: Settings, ui_name: str) -> Settings:
    """The suite's settings (per database backend), with the web suite's apps rendering
    with each UI library in turn (IDOM, then ReactPy)."""
    return replace(settings, ui=ui_name)  # type: ignore[arg-type]


@pytest.fixture
def app_clock() -> FakeClock:
    from datetime import UTC, datetime

    return FakeClock(datetime.now(UTC))


@pytest.fixture
def app(settings: Settings, app_clock: FakeClock) -> AuthdemoApp:
    """The demo app (on each UI library in turn: see ``settings``)."""
    return create_app(
        settings,
        name=f"authdemo_test_{next(_names)}",
        clock=app_clock,
        hasher_factory=cheap_hasher,
    )


@pytest.fixture
async def live(app: AuthdemoApp) -> AsyncIterator[Live]:
    async with serve(app) as running:
        yield running


@pytest.fixture
async def alice(live: Live) -> tuple[str, str]:
    await live.app.ctx.service.create_user("alice", "correct horse")
    return "alice", "correct horse"


def run_service(settings: Settings, clock: FakeClock, action):  # type: ignore[no-untyped-def]
    """Run ``action(service)`` against the test database outside any server (sync tests)."""
    import asyncio

    from authdemo.bootstrap import runtime

    async def main():  # type: ignore[no-untyped-def]
        async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
            return await action(rt.service)

    return asyncio.run(main())


async def signed_in_token(service, username: str = "alice") -> str:  # type: ignore[no-untyped-def]
    """A cookie token of a live signed-in session, obtained the way a browser gets one."""
    from authdemo.domain import ClientInfo, UsernameTaken
    from authdemo.security import hash_token

    with contextlib.suppress(UsernameTaken):
        await service.create_user(username, "correct horse")
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), username, "correct horse", ClientInfo())
    return str((await service.redeem_ticket(result.ticket, anonymous)).token)
