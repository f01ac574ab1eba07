"""The service half of following a sign-in (``service.follow``, ``followed_session``),
on fakes with a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authdemo.domain import ClientInfo, TicketRejected
from authdemo.events import EventKind, follow_key
from authdemo.security import hash_token
from authdemo.service import AuthService
from authdemo.service.follow import FOLLOWS_PER_COOKIE
from tests.support.fakes import FakeClock, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")
NONCE = "n" * 32


@pytest.fixture
async def alice(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")


async def sign_in(service: AuthService) -> tuple[str, str, int]:
    """(pre-sign-in token, the session's cookie token, session id)."""
    before = service.new_token()
    result = await service.login(hash_token(before), "alice", "correct horse", CLIENT)
    after = (await service.redeem_ticket(result.ticket, before)).token
    return before, after, result.signed_in.session.id


def followed(bus: RecordingBus) -> list[tuple[str, str | None, tuple[int, ...]]]:
    return [
        (e.origin, e.token_hash, e.session_ids)
        for e in bus.published
        if e.kind is EventKind.FOLLOWED
    ]


async def test_the_first_redemption_records_the_cookie_the_session_replaced(
    service: AuthService, alice: None, store: FakeStore
) -> None:
    before, _, session_id = await sign_in(service)
    assert store.tables.sessions[session_id].signed_in_from == hash_token(before)


async def test_a_fresh_cookie_answers_the_follow_with_its_session(
    service: AuthService, alice: None, bus: RecordingBus
) -> None:
    _, after, session_id = await sign_in(service)
    assert await service.follow(NONCE, after)
    assert followed(bus) == [(follow_key(NONCE), hash_token(after), (session_id,))]
    assert NONCE not in repr(bus.published)  # the nonce stays with the view and its page


async def test_a_retired_stale_or_missing_cookie_answers_nothing(
    service: AuthService, alice: None, bus: RecordingBus, clock: FakeClock
) -> None:
    before, after, _ = await sign_in(service)
    assert not await service.follow(NONCE, before)  # retired at the sign-in
    assert not await service.follow(NONCE, None)
    assert not await service.follow(NONCE, "forged")
    clock.advance(service.policy.ticket_ttl + timedelta(seconds=1))
    assert not await service.follow(NONCE, after)  # not a rotation that just happened
    assert followed(bus) == []


async def test_each_nonce_is_answered_once_and_each_cookie_a_bounded_number_of_times(
    service: AuthService, alice: None, bus: RecordingBus
) -> None:
    _, after, _ = await sign_in(service)
    assert await service.follow(NONCE, after)
    assert not await service.follow(NONCE, after)
    for n in range(FOLLOWS_PER_COOKIE - 1):
        assert await service.follow(f"{n:032d}", after)
    assert not await service.follow("x" * 32, after)
    assert len(followed(bus)) == FOLLOWS_PER_COOKIE


async def test_only_a_session_that_replaced_the_known_cookie_is_joined(
    service: AuthService, alice: None
) -> None:
    before, after, session_id = await sign_in(service)
    joined = await service.followed_session(session_id, hash_token(after), hash_token(before))
    assert joined is not None and joined.session.id == session_id
    assert joined.user.username == "alice"
    _, other_after, other_id = await sign_in(service)  # another browser's
    assert (
        await service.followed_session(other_id, hash_token(other_after), hash_token(before))
        is None
    )
    # The presented cookie must be the session's current one.
    assert (
        await service.followed_session(session_id, hash_token(other_after), hash_token(before))
        is None
    )


async def test_an_ended_session_is_not_joined(service: AuthService, alice: None) -> None:
    before, after, session_id = await sign_in(service)
    await service.logout(session_id, CLIENT)
    assert await service.followed_session(session_id, hash_token(after), hash_token(before)) is None


async def test_of_two_sign_ins_bound_to_one_cookie_only_the_first_redeemed_opens_a_session(
    service: AuthService, alice: None, bus: RecordingBus
) -> None:
    """Two tabs of one browser sign in at once: both tickets go out bound to the same
    cookie, and both images may carry it. The second redemption must not open a session
    whose cookie replaces the first one's (the first would be left open, unused)."""
    before = service.new_token()
    first = await service.login(hash_token(before), "alice", "correct horse", CLIENT)
    second = await service.login(hash_token(before), "alice", "correct horse", CLIENT)
    await service.redeem_ticket(first.ticket, before)
    with pytest.raises(TicketRejected, match="another sign-in"):
        await service.redeem_ticket(second.ticket, before)
    live = await service.live_sessions("alice")
    assert [s.id for s, _ in live] == [first.signed_in.session.id]
    revoked = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert [e.session_ids for e in revoked] == [(second.signed_in.session.id,)]
