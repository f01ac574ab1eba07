"""The in-memory session cache: fast returning visitors, never a stale sign-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from authdemo.cache import SessionCache
from authdemo.domain import ClientInfo, SessionPolicy
from authdemo.events import EventKind, SessionEvent
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from tests.support.fakes import (
    BROWSER,
    FakeClock,
    FakeHasher,
    FakeSessions,
    FakeStore,
    FakeUnitOfWork,
    RecordingBus,
)
from tests.unit.test_domain import session

CLIENT = ClientInfo("203.0.113.7", "pytest")


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cached(
    store: FakeStore, hasher: FakeHasher, tokens: TokenCodec, clock: FakeClock, bus: RecordingBus
) -> AuthService:
    cache = SessionCache(ttl=10)
    bus.subscribe_all(cache.invalidate)
    return AuthService(store, hasher, tokens, clock, SessionPolicy(), bus, cache=cache)


async def signed_in(service: AuthService) -> tuple[str, int]:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    return (
        await service.redeem_ticket(result.ticket, anonymous)
    ).token, result.signed_in.session.id


def reads(store: FakeStore) -> int:
    return sum(1 for unit in store.units if not unit.write)


def test_entries_expire_after_the_ttl() -> None:
    ticker = Ticker()
    cache = SessionCache(ttl=10, clock=ticker)
    cache.put("h", None)
    assert cache.get("h") == (True, None)
    ticker.now = 11
    assert cache.get("h") == (False, None)


def test_an_event_drops_entries_by_session_and_by_token() -> None:
    cache = SessionCache(ttl=10)
    cache.put("a" * 64, (session(id=1, token_hash="a" * 64), None))
    cache.put("b" * 64, None)
    cache.invalidate(SessionEvent(EventKind.REVOKED, (1,)))
    cache.invalidate(SessionEvent(EventKind.TOKEN_RETIRED, (), token_hash="b" * 64))
    assert len(cache) == 0


def test_the_oldest_entries_go_first_when_full() -> None:
    cache = SessionCache(ttl=10, max_entries=2)
    for key in ("1", "2", "3"):
        cache.put(key, None)
    assert cache.get("1") == (False, None) and cache.get("3") == (True, None)


def test_a_zero_ttl_turns_the_cache_off() -> None:
    cache = SessionCache(ttl=0)
    cache.put("h", None)
    assert cache.get("h") == (False, None)


async def test_returning_visitors_cost_no_query(cached: AuthService, store: FakeStore) -> None:
    await cached.create_user("alice", "correct horse")
    token, _ = await signed_in(cached)
    await cached.visit(token)
    before = reads(store)
    for _ in range(20):
        assert (await cached.visit(token)).signed_in is not None
    assert reads(store) == before


async def test_a_logout_is_seen_at_once_despite_the_cache(cached: AuthService) -> None:
    await cached.create_user("alice", "correct horse")
    token, session_id = await signed_in(cached)
    await cached.visit(token)
    await cached.logout(session_id)
    assert (await cached.visit(token)).needs_new_token


async def test_a_revocation_by_another_process_is_seen_once_its_event_arrives(
    cached: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    await cached.create_user("alice", "correct horse")
    token, session_id = await signed_in(cached)
    await cached.visit(token)
    async with store(write=True) as tx:  # another process revokes, in the database
        await tx.sessions.revoke([session_id], cached.now())
        await tx.commit()
    assert (await cached.visit(token)).signed_in is not None  # not heard of it yet
    bus.deliver(SessionEvent(EventKind.REVOKED, (session_id,)))  # the follower delivers
    assert (await cached.visit(token)).needs_new_token


async def test_the_pre_login_cookie_is_forgotten_at_rotation(cached: AuthService) -> None:
    await cached.create_user("alice", "correct horse")
    anonymous = cached.new_token()
    assert not (await cached.visit(anonymous)).needs_new_token  # cached as "no row"
    result = await cached.login(hash_token(anonymous), "alice", "correct horse", CLIENT)
    await cached.redeem_ticket(result.ticket, anonymous)
    assert (await cached.visit(anonymous)).needs_new_token


async def test_a_password_change_forgets_this_sessions_old_cookie(cached: AuthService) -> None:
    await cached.create_user("alice", "correct horse")
    token, session_id = await signed_in(cached)
    await cached.visit(token)
    await cached.change_password(session_id, "correct horse", "brand new pw", BROWSER, CLIENT)
    assert (await cached.visit(token)).signed_in is None


async def test_a_session_renewed_elsewhere_is_read_again_not_dropped(
    cached: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    await cached.create_user("alice", "correct horse")
    token, session_id = await signed_in(cached)
    await cached.visit(token)
    clock.advance(timedelta(minutes=20))
    async with store(write=True) as tx:  # another worker renewed it
        await tx.sessions.touch(
            session_id, clock.now(), clock.now() + timedelta(minutes=30), clock.now(), 0
        )
        await tx.commit()
    clock.advance(timedelta(minutes=15))  # past the expiry this process had cached
    assert (await cached.visit(token)).signed_in is not None


async def test_a_users_session_list_is_cached_until_one_of_them_changes(
    cached: AuthService, store: FakeStore
) -> None:
    user = await cached.create_user("alice", "correct horse")
    _, first_id = await signed_in(cached)
    assert [s.id for s in await cached.sessions_of(user.id)] == [first_id]
    before = reads(store)
    await cached.sessions_of(user.id)
    assert reads(store) == before  # from memory
    _, second_id = await signed_in(cached)  # a sign-in forgets the list
    assert {s.id for s in await cached.sessions_of(user.id)} == {first_id, second_id}
    await cached.logout(first_id)  # so does the end of one of its sessions
    assert [s.id for s in await cached.sessions_of(user.id)] == [second_id]


def test_an_event_drops_every_token_cached_for_the_session() -> None:
    # Issue 11, defect 8: a session read under its pre-rotation token on one request and
    # under its new token on another was cached twice, but only one entry was dropped.
    cache = SessionCache(ttl=10)
    old, new = "a" * 64, "b" * 64
    cache.put(old, (session(id=7, token_hash=old), None))
    cache.put(new, (session(id=7, token_hash=new), None))
    cache.invalidate(SessionEvent(EventKind.REVOKED, (7,)))
    assert cache.get(old) == (False, None)
    assert cache.get(new) == (False, None)


def test_a_row_read_before_an_event_is_not_cached_after_it() -> None:
    cache = SessionCache(ttl=10)
    read_from = cache.generation  # a request starts reading the row...
    cache.invalidate(SessionEvent(EventKind.REVOKED, (7,)))  # ...the session ends meanwhile
    cache.put("a" * 64, (session(id=7, token_hash="a" * 64), None), read_from)
    assert cache.get("a" * 64) == (False, None)


async def test_a_lookup_that_raced_a_revocation_is_read_again(
    cached: AuthService, bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cached.create_user("alice", "correct horse")
    token, session_id = await signed_in(cached)
    # Its data changed elsewhere: the row its redemption cached goes, the next lookup reads.
    bus.deliver(SessionEvent(EventKind.DATA_CHANGED, (session_id,)))
    real_exit = FakeUnitOfWork.__aexit__
    raced: list[bool] = []

    async def read_then_logout(self: FakeUnitOfWork, *exc: object) -> None:
        await real_exit(self, *exc)  # type: ignore[arg-type]
        if not self.write and not raced:  # the row was read live; the logout lands now,
            raced.append(True)  # before the reader gets to cache what it read
            await cached.logout(session_id)

    monkeypatch.setattr(FakeUnitOfWork, "__aexit__", read_then_logout)
    await cached.resolve(token)
    monkeypatch.undo()
    assert raced
    assert (await cached.resolve(token)).signed_in is None


async def test_a_renewal_here_keeps_the_cached_row_current_without_a_read(
    cached: AuthService, store: FakeStore, clock: FakeClock
) -> None:
    await cached.create_user("alice", "correct horse")
    token, _ = await signed_in(cached)
    await cached.resolve(token)  # cached now
    clock.advance(cached.policy.idle_timeout - cached.policy.renew_margin / 2)
    visited = await cached.visit(token)  # renews, and updates the cached row
    assert visited.signed_in is not None
    before = reads(store)
    again = await cached.resolve(token)
    assert reads(store) == before
    assert again.signed_in is not None
    assert again.signed_in.session.idle_expires_at == visited.signed_in.session.idle_expires_at


async def test_the_new_cookie_is_cached_by_its_redemption_so_held_and_pages_read_nothing(
    cached: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    await cached.create_user("alice", "correct horse")
    bus.deliver(SessionEvent(EventKind.REVOKED, (999,)))  # before it began: no matter
    token, session_id = await signed_in(cached)
    before = reads(store)
    assert await cached.cookie_held(token)  # the ticket image's redirect, moments later
    resolved = await cached.visit(token)
    assert reads(store) == before
    assert resolved.signed_in is not None and resolved.signed_in.session.id == session_id
    assert resolved.signed_in.session == store.tables.sessions[session_id]  # as stored
    assert [e.kind for e in bus.published][-1] is EventKind.COOKIE_HELD
    await cached.logout(session_id)  # and it goes like any other entry
    assert (await cached.visit(token)).needs_new_token


async def test_a_redemption_that_an_event_overtook_caches_nothing(
    cached: AuthService, store: FakeStore, bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that arrives while the redemption runs may be about its session (the
    cache cannot tell from another process's rows): the row it wrote is read again."""
    await cached.create_user("alice", "correct horse")
    real = FakeSessions.set_token_hash

    async def meanwhile(self: FakeSessions, *args: Any, **kwargs: Any) -> bool:
        bus.deliver(SessionEvent(EventKind.REVOKED, (999,)))  # the follower delivers
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(FakeSessions, "set_token_hash", meanwhile)
    token, _ = await signed_in(cached)
    monkeypatch.undo()
    before = reads(store)
    assert (await cached.visit(token)).signed_in is not None
    assert reads(store) == before + 1


def test_the_event_that_attaches_a_cookie_keeps_the_entry_that_already_shows_it() -> None:
    cache = SessionCache(ttl=10)
    old, new, other = "a" * 64, "b" * 64, "c" * 64
    cache.put(old, (session(id=7, token_hash=old), None))
    cache.put(new, (session(id=7, token_hash=new), None))  # put by the redemption
    cache.put(other, None)  # "no row", read before the cookie was attached
    cache.invalidate(SessionEvent(EventKind.COOKIE_ATTACHED, (7,), token_hash=new))
    cache.invalidate(SessionEvent(EventKind.COOKIE_ATTACHED, (8,), token_hash=other))
    assert cache.get(old) == (False, None)
    assert cache.get(new) == (True, (session(id=7, token_hash=new), None))
    assert cache.get(other) == (False, None)
    cache.invalidate(SessionEvent(EventKind.DATA_CHANGED, (7,), token_hash=new))
    assert cache.get(new) == (False, None)  # any other event about it drops it
    cache.put(new, (session(id=7, token_hash=new), None))
    cache.invalidate(SessionEvent(EventKind.COOKIE_ATTACHED, (9,), token_hash=new))
    assert cache.get(new) == (False, None)  # another session's row: not what it describes


async def test_a_cookie_read_from_the_database_is_cached_for_the_next_visits(
    cached: AuthService, store: FakeStore, bus: RecordingBus
) -> None:
    await cached.create_user("alice", "correct horse")
    token, session_id = await signed_in(cached)
    bus.deliver(SessionEvent(EventKind.DATA_CHANGED, (session_id,)))  # its entry goes
    before = reads(store)
    first = await cached.visit(token)
    for _ in range(5):
        assert (await cached.visit(token)).signed_in == first.signed_in
    assert reads(store) == before + 1
    assert first.signed_in is not None and first.signed_in.session.id == session_id
