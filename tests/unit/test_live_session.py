"""Issue 11, defects 4 and 5: an open view never outlives what ended its session.

``LiveSession`` is one websocket's auth state. These tests drive it directly over the
fake store, with the clock in hand, and sometimes with its events cut off (a lost
notification), to show that the view still ends: by re-reading the database, by a
renewal that matches nothing, or by the service refusing an action for a stale epoch.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from authdemo.domain import ClientInfo, NotSignedIn, SessionPolicy
from authdemo.events import InProcessEventBus
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from authdemo.web.connection import LiveSession
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def signed_in_token(service: AuthService) -> str:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    return (await service.redeem_ticket(result.ticket, anonymous)).token


async def open_view(
    service: AuthService, token: str, events: InProcessEventBus | None = None
) -> LiveSession:
    """A websocket on ``token``; ``events`` other than the service's bus = deaf to events."""
    resolution = await service.visit(token)
    bus = events if events is not None else service._events
    return LiveSession(service, bus, CLIENT, hash_token(token), resolution)  # type: ignore[arg-type]


@pytest.fixture
async def alice(service: AuthService) -> str:
    await service.create_user("alice", "correct horse")
    return await signed_in_token(service)


# --- 5. a credential change ends every other view of the same session --------------------


@pytest.mark.parametrize("action", ["change_password", "logout_others"])
async def test_other_views_of_the_acting_session_end_live(
    service: AuthService, alice: str, action: str
) -> None:
    mine, thief = await open_view(service, alice), await open_view(service, alice)
    if action == "change_password":
        await mine.change_password("correct horse", "brand new pw")
    else:
        await mine.logout_others()
    assert mine.state.user is not None
    assert mine.state.ticket is not None  # its new cookie is on the way
    assert thief.state.user is None  # same session, same cookie, but another view: ended
    assert (await service.resolve(alice)).signed_in is None  # and the cookie is worthless


@pytest.mark.parametrize("action", ["change_password", "logout_others"])
async def test_a_view_that_missed_the_event_cannot_act_after_a_rekey(
    service: AuthService, alice: str, action: str
) -> None:
    mine = await open_view(service, alice)
    thief = await open_view(service, alice, events=InProcessEventBus())  # hears nothing
    if action == "change_password":
        await mine.change_password("correct horse", "brand new pw")
    else:
        await mine.logout_others()
    assert thief.state.user is not None  # it missed the news...
    with pytest.raises(NotSignedIn):
        await thief.update_data({"note": "written by the thief"})  # ...but cannot act
    assert thief.state.user is None
    assert mine.state.session is not None
    assert "note" not in (mine.state.session.data or {})


async def test_a_stale_view_cannot_sign_the_rekeyed_session_out(
    service: AuthService, alice: str
) -> None:
    mine = await open_view(service, alice)
    thief = await open_view(service, alice, events=InProcessEventBus())
    await mine.logout_others()
    await thief.logout()
    assert mine.state.session is not None
    assert await service.current(mine.state.session.id) is not None


async def test_a_stale_view_cannot_sign_out_the_other_sessions(
    service: AuthService, alice: str
) -> None:
    mine = await open_view(service, alice)
    thief = await open_view(service, alice, events=InProcessEventBus())
    await mine.change_password("correct horse", "brand new pw")
    with pytest.raises(NotSignedIn):
        await thief.logout_others()
    assert mine.state.session is not None
    assert await service.current(mine.state.session.id) is not None


# --- 4. a view re-reads the database at least once per half idle window ------------------


async def test_a_busy_view_notices_a_revocation_it_never_heard_of(
    service: AuthService, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    view = await open_view(service, alice, events=InProcessEventBus())  # deaf
    assert view.state.session is not None
    session_id = view.state.session.id
    async with store(write=True) as tx:  # revoked elsewhere; the notification was lost
        await tx.sessions.revoke([session_id], clock.now())
        await tx.commit()
    margin = service.policy.renew_margin
    minutes = 0
    while view.state.user is not None and minutes < 60:
        clock.advance(timedelta(minutes=1))  # a click a minute, all day long
        minutes += 1
        await view.before_event()
    assert view.state.user is None
    assert timedelta(minutes=minutes) <= margin


async def test_a_renewal_that_matches_nothing_signs_the_view_out(
    service: AuthService, store: FakeStore, clock: FakeClock, alice: str
) -> None:
    view = await open_view(service, alice, events=InProcessEventBus())
    assert view.state.session is not None
    assert view.state.user is not None
    async with store(write=True) as tx:  # the password changed; no event reached us
        await tx.users.bump_epoch(view.state.user.id)
        await tx.commit()
    clock.advance(timedelta(minutes=16))  # renewal due (and the periodic re-read too)
    assert await view.before_event() is False
    assert view.state.user is None


async def test_an_idle_view_is_scheduled_to_re_read_within_half_the_idle_window(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    policy = SessionPolicy(idle_timeout=timedelta(hours=2))
    service = AuthService(store, hasher, tokens, clock, policy, bus)
    await service.create_user("alice", "correct horse")
    view = await open_view(service, await signed_in_token(service))
    timer = view._timer
    assert timer is not None
    delay = timer.when() - asyncio.get_running_loop().time()
    assert delay <= policy.renew_margin.total_seconds() + 1  # not at the expiry, 2 h away
    view.close()


async def test_a_view_that_missed_a_rekey_ends_at_its_next_re_read(
    service: AuthService, clock: FakeClock, alice: str
) -> None:
    mine = await open_view(service, alice)
    thief = await open_view(service, alice, events=InProcessEventBus())  # hears nothing
    await mine.logout_others()
    clock.advance(service.policy.renew_margin)  # the thief keeps clicking, doing nothing
    assert await thief.before_event() is False
    assert thief.state.user is None
    assert mine.state.user is not None
