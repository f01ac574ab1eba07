"""Ending one session by id, on fakes: the service's forms for operators and for a
signed-in view (``end_session``, ``end_own_session``), as views' unit tests meet them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authdemo.domain import AuditKind, ClientInfo, NotSignedIn, UnknownSession
from authdemo.events import EventKind
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.support.fakes import FakeClock, FakeStore, RecordingBus

CLIENT = ClientInfo("203.0.113.7", "pytest")


async def session_of(service: AuthService, username: str) -> int:
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), username, "correct horse", CLIENT)
    return result.signed_in.session.id


@pytest.fixture
async def users(service: AuthService) -> None:
    await service.create_user("alice", "correct horse")
    await service.create_user("bob", "correct horse")


@pytest.mark.usefixtures("users")
async def test_a_view_ends_another_session_of_its_user_and_it_is_published(
    service: AuthService, bus: RecordingBus
) -> None:
    acting, target = await session_of(service, "alice"), await session_of(service, "alice")
    ended = await service.end_own_session(acting, target, CLIENT)
    assert ended.id == target and ended.revoked_at is not None
    assert await service.current(target) is None and await service.current(acting) is not None
    (event,) = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert event.session_ids == (target,)


@pytest.mark.usefixtures("users")
async def test_a_view_cannot_end_another_users_session(
    service: AuthService, bus: RecordingBus
) -> None:
    acting, bobs = await session_of(service, "alice"), await session_of(service, "bob")
    with pytest.raises(UnknownSession):
        await service.end_own_session(acting, bobs, CLIENT)
    assert await service.current(bobs) is not None
    assert not [e for e in bus.published if e.kind is EventKind.REVOKED]


@pytest.mark.usefixtures("users")
async def test_a_view_whose_session_ended_ends_nothing(service: AuthService) -> None:
    acting, target = await session_of(service, "alice"), await session_of(service, "alice")
    await service.logout(acting)
    with pytest.raises(NotSignedIn):
        await service.end_own_session(acting, target, CLIENT)
    assert await service.current(target) is not None


@pytest.mark.usefixtures("users")
async def test_end_session_checks_the_owner_when_given_one(
    service: AuthService, bus: RecordingBus
) -> None:
    bobs = await session_of(service, "bob")
    alice = await service.get_user("alice")
    with pytest.raises(UnknownSession):
        await service.end_session(bobs, alice.id)
    assert await service.current(bobs) is not None
    assert (await service.end_session(bobs, None)).id == bobs
    (event,) = [e for e in bus.published if e.kind is EventKind.REVOKED]  # this process: at once
    assert event.session_ids == (bobs,)
    with pytest.raises(UnknownSession):  # ended already
        await service.end_session(bobs, None)


@pytest.mark.usefixtures("users")
async def test_an_ended_session_is_announced_queued_and_audited_with_who_ended_it(
    service: AuthService, bus: RecordingBus, store: FakeStore, clock: FakeClock
) -> None:
    alice = (await service.get_user("alice")).id
    acting, target = await session_of(service, "alice"), await session_of(service, "alice")
    clock.advance(timedelta(minutes=1))
    ended = await service.end_own_session(acting, target, CLIENT)
    acting_short = store.tables.sessions[acting].short_id
    (event,) = [e for e in bus.published if e.kind is EventKind.REVOKED]
    assert (event.session_ids, event.reason, event.user_id) == ((target,), "ended", alice)
    assert store.tables.broadcasts[-1][2] == clock.now()
    row = store.tables.audit[-1]
    assert (row.kind, row.username, row.user_id, row.session, row.detail) == (
        AuditKind.REVOKED,
        "alice",
        alice,
        ended.short_id,
        f"1 session, from session {acting_short}",
    )
    assert (row.client_addr, row.user_agent) == ("203.0.113.7", "pytest")
    other = await session_of(service, "alice")
    clock.advance(timedelta(minutes=1))
    by_operator = await service.end_session(other, None, CLIENT)
    row = store.tables.audit[-1]
    assert (row.session, row.detail, row.client_addr) == (
        by_operator.short_id,
        "1 session by operator",
        "203.0.113.7",
    )
    assert store.tables.broadcasts[-1][2] == clock.now()


@pytest.mark.usefixtures("users")
async def test_a_session_that_is_not_there_to_end_is_named(service: AuthService) -> None:
    acting = await session_of(service, "alice")
    with pytest.raises(UnknownSession) as own:
        await service.end_own_session(acting, 987_654, CLIENT)
    assert str(own.value) == "There is no live session 987654 to end (ended already?)."
    with pytest.raises(UnknownSession) as operator:
        await service.end_session(987_654, None, CLIENT)
    assert operator.value.session_id == 987_654


@pytest.mark.usefixtures("users")
async def test_a_view_on_another_epoch_ends_nothing(service: AuthService) -> None:
    acting, target = await session_of(service, "alice"), await session_of(service, "alice")
    with pytest.raises(NotSignedIn):
        await service.end_own_session(acting, target, CLIENT, epoch=987_654)
    assert await service.current(target) is not None
