"""What the account components show (the session list and the two-factor status) is one
read per state of a view, shared by every component that asks, and never a read that
started before a change served to a render after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from authdemo.domain import NotSignedIn
from authdemo.events import InProcessEventBus
from authdemo.service import AccountSnapshot, AuthService
from authdemo.ui.connection import LiveSession
from tests.unit.test_live_session import open_view, signed_in_token


class Reads:
    """Counts the service's account reads; ``hold`` parks each read's answer."""

    def __init__(self, service: AuthService, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        read: Callable[[int], Awaitable[AccountSnapshot]] = service.account_snapshot

        async def counted(session_id: int) -> AccountSnapshot:
            self.count += 1
            snapshot = await read(session_id)
            self.started.set()
            if self.hold is not None:  # read, and not answered yet
                await self.hold.wait()
            return snapshot

        monkeypatch.setattr(service, "account_snapshot", counted)


@pytest.fixture
async def alice(service: AuthService) -> str:
    """alice's signed-in cookie."""
    await service.create_user("alice", "correct horse")
    return await signed_in_token(service)


@pytest.fixture
def reads(service: AuthService, monkeypatch: pytest.MonkeyPatch) -> Reads:
    return Reads(service, monkeypatch)


async def test_the_list_and_the_two_factor_status_of_one_render_are_one_read(
    service: AuthService, alice: str, reads: Reads
) -> None:
    view: LiveSession = await open_view(service, alice)
    sessions, status, again = await asyncio.gather(
        view.sessions(), view.mfa_status(), view.sessions()
    )
    assert reads.count == 1
    assert [s.id for s in sessions] == [s.id for s in again]
    assert view.state.session is not None and view.state.session.id in [s.id for s in sessions]
    assert not status.enabled
    await view.mfa_status()
    assert reads.count == 1  # nothing moved: still the same read
    view.close()


async def test_another_session_opening_or_ending_is_read_again(
    service: AuthService, alice: str, reads: Reads
) -> None:
    view: LiveSession = await open_view(service, alice)
    assert len(await view.sessions()) == 1
    other = await signed_in_token(service)  # SIGNED_IN: the view's sessions_version moves
    assert len(await view.sessions()) == 2
    assert reads.count == 2
    elsewhere = await service.resolve(other)
    assert elsewhere.signed_in is not None
    await service.logout(elsewhere.signed_in.session.id)
    assert len(await view.sessions()) == 1
    assert reads.count == 3
    view.close()


async def test_a_read_started_before_a_change_is_not_served_after_it(
    service: AuthService, alice: str, reads: Reads
) -> None:
    view: LiveSession = await open_view(service, alice)
    reads.hold = asyncio.Event()
    early = asyncio.ensure_future(view.sessions())
    await reads.started.wait()  # read before the other sign-in, not answered yet
    await signed_in_token(service)
    reads.hold.set()
    assert len(await view.sessions()) == 2  # a new read, not the one in flight
    assert reads.count == 2
    assert len(await early) == 1  # what the earlier render asked for, as it was
    view.close()


async def test_this_views_own_change_is_read_again_at_once_without_waiting_for_its_event(
    service: AuthService, alice: str, reads: Reads
) -> None:
    """A view deaf to events (its bus hears nothing): only its own change can tell it
    that its list moved, and it does."""
    view: LiveSession = await open_view(service, alice, events=InProcessEventBus())
    other = await signed_in_token(service)
    listed = await view.sessions()
    assert len(listed) == 2
    mine = view.state.session
    assert mine is not None
    target = next(s for s in listed if s.id != mine.id)
    assert await view.end_session(target.id)
    assert [s.id for s in await view.sessions()] == [mine.id]
    assert reads.count == 2
    assert (await service.resolve(other)).signed_in is None
    view.close()


async def test_a_session_that_may_not_act_gets_no_account_and_the_view_signs_out(
    service: AuthService, alice: str
) -> None:
    view: LiveSession = await open_view(service, alice)
    assert view.state.session is not None
    session_id = view.state.session.id
    await service.logout(session_id)
    with pytest.raises(NotSignedIn):
        await service.account_snapshot(session_id)
    assert view.state.user is None  # the logout's event signed it out
    with pytest.raises(NotSignedIn):
        await view.sessions()
    view.close()
