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

from authdemo.broadcast import BroadcastFollower
from authdemo.domain import (
    AlreadySignedIn,
    ClientInfo,
    NotSignedIn,
    SessionPolicy,
    StorageUnavailable,
)
from authdemo.events import InProcessEventBus
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from authdemo.ui.connection import AuthState, LiveSession
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, FakeUnitOfWork, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def signed_in_token(service: AuthService) -> str:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    return (await service.redeem_ticket(result.ticket, anonymous)).token


async def open_view(
    service: AuthService,
    token: str,
    events: InProcessEventBus | None = None,
    follow_tickets: bool = True,
) -> LiveSession:
    """A websocket on ``token``; ``events`` other than the service's bus = deaf to events.

    Like a browser, the view's ticket images are fetched as soon as they appear (with
    the cookie the browser holds then), unless ``follow_tickets`` is False."""
    resolution = await service.visit(token)
    bus = events if events is not None else service._events
    view = LiveSession(service, bus, CLIENT, hash_token(token), resolution)  # type: ignore[arg-type]
    if follow_tickets:
        browser = {"cookie": token, "fetched": set()}
        requests: set[asyncio.Future[None]] = set()

        async def fetch(ticket: str) -> None:
            redeemed = await service.redeem_ticket(ticket, str(browser["cookie"]))
            browser["cookie"] = redeemed.token
            await service.cookie_held(redeemed.token)  # the redirect, with the new cookie

        def on_state(state: AuthState) -> None:
            fetched: set[str] = browser["fetched"]  # type: ignore[assignment]
            if state.ticket is not None and state.ticket not in fetched:
                fetched.add(state.ticket)
                request = asyncio.ensure_future(fetch(state.ticket))
                requests.add(request)
                request.add_done_callback(requests.discard)

        view.listen(on_state)
    return view


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
    assert mine.state.ticket is None  # returned once the browser held its new cookie
    assert not mine.state.cookie_refused
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


async def unreachable(*_: object) -> None:
    """A unit of work that cannot reach the database (what ``SqlUnitOfWork`` raises)."""
    raise StorageUnavailable()


async def test_a_busy_views_re_read_that_cannot_reach_the_database_signs_it_out(
    service: AuthService, clock: FakeClock, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = await open_view(service, alice, events=InProcessEventBus())
    assert view.state.user is not None
    clock.advance(service.policy.renew_margin)  # a re-read is due (a renewal is not yet)
    monkeypatch.setattr(FakeUnitOfWork, "__aenter__", unreachable)
    assert await view.before_event() is False  # the click does not run...
    assert view.state.user is None  # ...and the view no longer claims to be signed in
    assert view.state.session is None


async def test_an_idle_views_timed_re_read_that_cannot_reach_the_database_signs_it_out(
    store: FakeStore,
    hasher: FakeHasher,
    tokens: TokenCodec,
    clock: FakeClock,
    bus: RecordingBus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A short idle window, so that the view's own timer (real time: the fake clock
    # stands still, and the session stays live by it) re-reads within a second.
    policy = SessionPolicy(idle_timeout=timedelta(milliseconds=400))
    service = AuthService(store, hasher, tokens, clock, policy, bus)
    await service.create_user("alice", "correct horse")
    view = await open_view(service, await signed_in_token(service), events=InProcessEventBus())
    assert view.state.user is not None
    monkeypatch.setattr(FakeUnitOfWork, "__aenter__", unreachable)
    heard: list[AuthState] = []
    view.listen(heard.append)
    async with asyncio.timeout(10):
        while view.state.user is not None:
            await asyncio.sleep(0.01)
    assert view.state.session is None
    assert heard and heard[-1].user is None  # and the screen was told


# --- issue 12: the screen never claims more than the browser holds -------------------------


async def test_a_sign_in_is_pending_until_the_browser_holds_its_cookie(
    service: AuthService,
) -> None:
    await service.create_user("alice", "correct horse")
    page_cookie = service.new_token()
    view = await open_view(service, page_cookie, follow_tickets=False)
    login = asyncio.create_task(view.login("alice", "correct horse"))
    while view.state.ticket is None:
        await asyncio.sleep(0)
    assert view.state.pending  # the password checked out, the cookie is on its way
    assert not login.done()
    redeemed = await service.redeem_ticket(view.state.ticket, page_cookie)  # the <img>
    await asyncio.sleep(0.01)
    assert view.state.pending  # the cookie was sent, but nothing says it was stored
    assert not await service.cookie_held(page_cookie)  # the old cookie proves nothing
    assert await service.cookie_held(redeemed.token)  # the redirect presents the new one
    await login
    assert not view.state.pending
    assert not view.state.cookie_refused
    assert view.state.user is not None


async def test_a_cookie_never_fetched_ends_the_wait_and_says_so(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> None:
    policy = SessionPolicy(ticket_ttl=timedelta(milliseconds=50))
    service = AuthService(store, hasher, tokens, clock, policy, bus)
    await service.create_user("alice", "correct horse")
    view = await open_view(service, service.new_token(), follow_tickets=False)
    await view.login("alice", "correct horse")  # nobody redeems the ticket
    assert not view.state.pending
    assert view.state.cookie_refused
    assert view.state.user is not None  # this tab stays signed in


async def test_the_session_list_version_moves_when_another_session_opens_or_ends(
    service: AuthService, alice: str
) -> None:
    view = await open_view(service, alice)
    before = view.state.sessions_version
    other = await signed_in_token(service)
    assert view.state.sessions_version > before
    elsewhere = await service.resolve(other)
    assert elsewhere.signed_in is not None
    moved = view.state.sessions_version
    await service.logout(elsewhere.signed_in.session.id)
    assert view.state.sessions_version > moved


async def test_a_view_that_missed_a_rekey_cannot_renew_itself_back_to_life(
    service: AuthService, clock: FakeClock, alice: str
) -> None:
    mine = await open_view(service, alice)
    thief = await open_view(service, alice, events=InProcessEventBus())  # hears nothing
    await mine.logout_others()
    clock.advance(timedelta(minutes=16))  # the thief clicks when a renewal is due
    assert await thief.before_event() is False
    assert thief.state.user is None
    # ...and its stale renewal ended nothing but itself: the re-keyed session goes on.
    assert mine.state.session is not None
    assert await service.current(mine.state.session.id) is not None


async def test_a_late_copy_of_an_earlier_cookie_held_does_not_end_the_next_wait(
    service: AuthService, alice: str
) -> None:
    """The broadcast follower reads this process's own events back from the table a poll
    later. That copy of the last round's COOKIE_HELD must not tell the next round's wait
    that the browser holds a cookie it has not even been sent yet (seen in Chromium: a
    reload right after "Password changed" carried the old cookie and was signed out)."""
    follower = BroadcastFollower(service._uow, service._events)  # type: ignore[arg-type]
    await follower.start_position()
    view = await open_view(service, alice, follow_tickets=False)
    browser = {"cookie": alice}

    async def image(after: str | None = None) -> None:
        while view.state.ticket is None or view.state.ticket == after:
            await asyncio.sleep(0)
        redeemed = await service.redeem_ticket(view.state.ticket, browser["cookie"])
        browser["cookie"] = redeemed.token
        await service.cookie_held(redeemed.token)

    first = asyncio.create_task(image())
    await view.logout_others()  # round 1: held, and its events sit in the table
    await first
    change = asyncio.create_task(view.change_password("correct horse", "a new good password"))
    while view.state.ticket is None:
        await asyncio.sleep(0)
    assert await follower.poll() > 0  # round 1's events, again
    await asyncio.sleep(0.01)
    assert not change.done(), "the wait ended on a copy of the last round's event"
    await image()
    await change
    assert not view.state.cookie_refused
    assert (await service.resolve(browser["cookie"])).signed_in is not None


# --- issue 18: a sign-in never silently switches users ---------------------------------------


async def test_signing_in_while_signed_in_is_refused(service: AuthService, alice: str) -> None:
    await service.create_user("bob", "battery staple")
    view = await open_view(service, alice)
    assert view.state.user is not None and view.state.user.username == "alice"
    with pytest.raises(AlreadySignedIn, match="Sign out first"):
        await view.login("bob", "battery staple")
    assert view.state.user is not None and view.state.user.username == "alice"
    assert [s.user_id for s, _ in await service.live_sessions("bob")] == []
    await view.logout()
    assert (await view.login("bob", "battery staple")).username == "bob"  # after signing out


async def test_a_double_submitted_sign_in_opens_one_session(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    await service.create_user("bob", "battery staple")
    view = await open_view(service, service.new_token())
    first = asyncio.create_task(view.login("alice", "correct horse"))
    second = asyncio.create_task(view.login("bob", "battery staple"))
    assert (await first).username == "alice"
    with pytest.raises(AlreadySignedIn):
        await second
    assert view.state.user is not None and view.state.user.username == "alice"
    assert len(await service.live_sessions("alice")) == 1
    assert await service.live_sessions("bob") == []


# --- issue 18: update_value from a view ------------------------------------------------------


async def test_a_view_that_missed_a_rekey_cannot_update_a_value(
    service: AuthService, alice: str
) -> None:
    mine = await open_view(service, alice)
    await mine.update_value("count", lambda n: (n or 0) + 1)
    thief = await open_view(service, alice, events=InProcessEventBus())  # hears nothing
    await mine.logout_others()
    with pytest.raises(NotSignedIn):
        await thief.update_value("count", lambda n: (n or 0) + 100)
    assert thief.state.user is None  # and it signed out at once
    assert mine.state.session is not None
    found = await service.live_session(mine.state.session.id)
    assert found is not None and found[0].data == {"count": 1}


async def test_an_anonymous_views_first_update_creates_its_row(service: AuthService) -> None:
    view = await open_view(service, service.new_token())
    assert view.state.session is None
    assert await view.update_value("count", lambda n: (n or 0) + 1) == 1
    assert await view.update_value("count", lambda n: (n or 0) + 1) == 2
    assert view.state.session is not None and dict(view.state.data) == {"count": 2}


async def test_a_view_tells_each_listener_once_until_it_closes(
    service: AuthService, alice: str
) -> None:
    view = await open_view(service, alice)  # its browser listens too, for tickets
    heard: dict[str, list[AuthState]] = {"root": [], "other": []}
    view.listen(heard["root"].append)
    view.listen(heard["root"].append)  # the same listener again: still told once
    view.listen(heard["other"].append)
    await view.logout()
    assert [len(each) for each in heard.values()] == [1, 1]
    await service.create_user("bob", "correct horse")
    await view.login("bob", "correct horse")
    told = [len(each) for each in heard.values()]
    assert told[0] > 1 and told[0] == told[1]
    # Closed, it holds none of them (the root component's listener holds its hook and
    # so its whole layout) and tells none.
    view.close()
    view._notify()
    assert [len(each) for each in heard.values()] == told
