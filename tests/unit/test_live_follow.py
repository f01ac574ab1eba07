"""Following another tab's sign-in, in the view (``LiveSession``), with the interleavings
forced: a follow that lands while this tab's own password is being checked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from authdemo.domain import NotSignedIn, SessionPolicy
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from authdemo.ui.connection import AuthState, LiveSession
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus
from tests.support.gates import Gate, GatedHasher
from tests.unit.test_live_session import CLIENT, open_view


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def service(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    policy: SessionPolicy,
    bus: RecordingBus,
    gate: Gate,
) -> AuthService:
    return AuthService(store, GatedHasher(hasher, gate), tokens, clock, policy, bus)


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.01)


def live_ids(store: FakeStore, service: AuthService) -> list[int]:
    return [
        s.id
        for s in store.tables.sessions.values()
        if s.user_id is not None and s.is_live(service.now())
    ]


async def test_a_follow_landing_while_the_password_is_checked_discards_that_sign_in(
    service: AuthService, store: FakeStore, gate: Gate
) -> None:
    await service.create_user("alice", "correct horse")
    browser = service.new_token()
    one: LiveSession = await open_view(service, browser, follow_tickets=False)
    two: LiveSession = await open_view(service, browser, follow_tickets=False)
    first = asyncio.ensure_future(one.login("alice", "correct horse"))
    await until(lambda: one.state.ticket is not None)
    gate.arm()
    second = asyncio.ensure_future(two.login("alice", "correct horse"))
    await gate.arrived.wait()  # tab two's password is being checked, bound to `browser`

    # The browser picks up tab one's cookie: tab two hears its cookie was retired ...
    ticket = one.state.ticket
    assert ticket is not None
    cookie = (await service.redeem_ticket(ticket, browser, CLIENT)).token
    await service.cookie_held(cookie)
    await until(lambda: two.state.follow is not None)
    # ... and its follow image is loaded with the browser's cookie: it follows tab one.
    nonce = two.state.follow
    assert nonce is not None and await service.follow(nonce, cookie)
    await until(lambda: two.state.user is not None)
    assert two.state.session is not None and one.state.session is not None
    assert two.state.session.id == one.state.session.id
    (joined,) = live_ids(store, service)

    gate.release()  # its own sign-in completes, bound to a cookie the browser gave up
    async with asyncio.timeout(5):
        await asyncio.gather(first, second)
    assert two.state.session is not None and two.state.session.id == joined
    assert not two.state.pending and not two.state.cookie_refused
    assert two.state.ticket is None
    assert live_ids(store, service) == [joined]  # the other sign-in's session ended at once
    one.close()
    two.close()


async def test_a_sign_in_waits_for_a_follow_on_its_way_and_ends_in_the_browsers_session(
    service: AuthService, store: FakeStore, gate: Gate
) -> None:
    await service.create_user("alice", "correct horse")
    browser = service.new_token()
    one: LiveSession = await open_view(service, browser, follow_tickets=False)
    two: LiveSession = await open_view(service, browser, follow_tickets=False)
    first = asyncio.ensure_future(one.login("alice", "correct horse"))
    await until(lambda: one.state.ticket is not None)
    ticket = one.state.ticket
    assert ticket is not None
    cookie = (await service.redeem_ticket(ticket, browser, CLIENT)).token
    await service.cookie_held(cookie)
    await until(lambda: two.state.follow is not None)
    checks = gate.started
    second = asyncio.ensure_future(two.login("alice", "correct horse"))
    await asyncio.sleep(0.05)
    assert not second.done()  # waiting for the follow, not checking the password
    nonce = two.state.follow
    assert nonce is not None and await service.follow(nonce, cookie)
    async with asyncio.timeout(5):
        user = await second
    assert user.username == "alice"
    assert two.state.session is not None and one.state.session is not None
    assert two.state.session.id == one.state.session.id
    assert gate.started == checks  # no password checked, no second session
    assert len(live_ids(store, service)) == 1
    await first
    one.close()
    two.close()


async def sign_in_and_take_the_cookie(service: AuthService, view: LiveSession, browser: str) -> str:
    """``view`` signs in as alice; the browser (holding ``browser``) redeems the ticket and
    presents the new cookie, which this returns."""
    login = asyncio.ensure_future(view.login("alice", "correct horse"))
    await until(lambda: view.state.ticket is not None)
    ticket = view.state.ticket
    assert ticket is not None
    cookie = (await service.redeem_ticket(ticket, browser, CLIENT)).token
    await service.cookie_held(cookie)
    await login
    return cookie


async def signed_in_in_tab_one(
    service: AuthService,
) -> tuple[LiveSession, LiveSession, str, str, str]:
    """Two tabs of one browser; tab one signs in and the browser takes its cookie. Returns
    (tab one, tab two, the browser's old cookie, its new one, tab two's first follow)."""
    await service.create_user("alice", "correct horse")
    browser = service.new_token()
    one: LiveSession = await open_view(service, browser, follow_tickets=False)
    two: LiveSession = await open_view(service, browser, follow_tickets=False)
    cookie = await sign_in_and_take_the_cookie(service, one, browser)
    await until(lambda: two.state.follow is not None)
    first = two.state.follow
    assert first is not None
    return one, two, browser, cookie, first


async def joined(one: LiveSession, two: LiveSession) -> None:
    await until(lambda: two.state.user is not None)
    assert two.state.session is not None and one.state.session is not None
    assert two.state.session.id == one.state.session.id
    one.close()
    two.close()


async def test_a_follow_image_that_left_with_the_retired_cookie_is_asked_again(
    service: AuthService, store: FakeStore
) -> None:
    """The first follow image can leave the browser before it stored the other tab's
    cookie: the route does not answer the retired cookie, and the view asks again with a
    new nonce, which the browser then loads with its new cookie."""
    one, two, browser, cookie, first = await signed_in_in_tab_one(service)
    assert not await service.follow(first, browser)  # the old cookie: no answer
    await until(lambda: two.state.follow not in (None, first))
    again = two.state.follow
    assert again is not None and await service.follow(again, cookie)
    await joined(one, two)
    assert two.state.follow is None  # answered: no more images
    assert len(live_ids(store, service)) == 1


async def test_a_late_answer_to_an_earlier_nonce_of_the_follow_still_counts(
    service: AuthService,
) -> None:
    """Asking again must not orphan the image already on its way: whichever of the
    follow's nonces the browser answers first is followed."""
    one, two, _, cookie, first = await signed_in_in_tab_one(service)
    await until(lambda: two.state.follow not in (None, first))  # asked again
    assert await service.follow(first, cookie)  # the first image answers late
    await joined(one, two)


async def signed_in_then_signed_in_again_in_another_tab(
    service: AuthService,
) -> tuple[LiveSession, list[AuthState], str, int]:
    """Tab one signs in and the browser takes its cookie; then another tab of the browser
    signs in again, and the browser takes that cookie: tab one's cookie is retired and
    its session ended in the database, and tab one asks the browser to follow. Returns
    (tab one, the states it went through, the browser's cookie now, the new session)."""
    await service.create_user("alice", "correct horse")
    browser = service.new_token()
    one: LiveSession = await open_view(service, browser, follow_tickets=False)
    cookie = await sign_in_and_take_the_cookie(service, one, browser)
    seen: list[AuthState] = []
    one.listen(seen.append)
    again = await service.login(hash_token(cookie), "alice", "correct horse", CLIENT)
    now = (await service.redeem_ticket(again.ticket, cookie, CLIENT)).token
    await until(lambda: one.state.follow is not None)
    # The new session's SIGNED_IN makes tab one's account components read again: its
    # own session may not act any more (its cookie was retired) ...
    with pytest.raises(NotSignedIn):
        await one.account()
    # ... but it is asking the browser which cookie it holds: that decides, not the read.
    assert one.state.user is not None and one.state.signed_out_reason is None
    return one, seen, now, again.signed_in.session.id


async def test_a_tab_whose_session_a_sign_in_elsewhere_ended_follows_without_saying_ended(
    service: AuthService,
) -> None:
    one, seen, cookie, session_id = await signed_in_then_signed_in_again_in_another_tab(service)
    nonce = one.state.follow
    assert nonce is not None and await service.follow(nonce, cookie)
    await until(lambda: one.state.session is not None and one.state.session.id == session_id)
    assert one.state.user is not None and one.state.follow is None
    assert all(state.signed_out_reason is None for state in seen)
    one.close()


async def test_a_tab_whose_session_ended_while_it_followed_ends_when_nobody_answers(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    policy = SessionPolicy(ticket_ttl=timedelta(seconds=0.5))  # the follow lapses after it
    service = AuthService(store, hasher, tokens, clock, policy, bus)
    one, _, _, _ = await signed_in_then_signed_in_again_in_another_tab(service)
    await until(lambda: one.state.follow is None)  # nobody loaded the image
    assert one.state.user is None and one.state.signed_out_reason == "ended"
    one.close()
