"""The second step in one websocket's ``LiveSession``: nothing signed in until the code,
the challenge stays in the connection, and the pending state ends by itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from authdemo.domain import InvalidCode, SecondFactorRequired, SecondStepExpired, SessionPolicy
from authdemo.mfa import SecondFactorPolicy
from authdemo.security import TokenCodec, hash_token
from authdemo.service import AuthService
from authdemo.ui.connection import AuthState, LiveSession
from tests.support.fakes import FakeClock, FakeHasher, FakeStore, RecordingBus
from tests.support.mfa import CLIENT, PASSWORD, box, code_at, enrol

STEP = timedelta(seconds=30)


def make_service(
    store: FakeStore, clock: FakeClock, bus: RecordingBus, ttl: timedelta = timedelta(minutes=5)
) -> AuthService:
    return AuthService(
        store,
        FakeHasher(),
        TokenCodec(b"k" * 32),
        clock,
        SessionPolicy(),
        bus,
        mfa_box=box(),
        second_factor=SecondFactorPolicy(challenge_ttl=ttl),
    )


async def view_of(service: AuthService) -> tuple[LiveSession, str]:
    token = service.new_token()
    view = LiveSession(
        service, service._events, CLIENT, hash_token(token), await service.visit(token)
    )  # type: ignore[arg-type]
    return view, token


async def test_the_view_waits_for_the_code_without_any_session_or_ticket(
    store: FakeStore, clock: FakeClock, bus: RecordingBus
) -> None:
    service = make_service(store, clock, bus)
    await service.create_user("alice", PASSWORD)
    secret, _ = await enrol(service)
    clock.advance(STEP)
    view, _ = await view_of(service)
    seen: list[AuthState] = []
    view.listen(seen.append)
    with pytest.raises(SecondFactorRequired) as raised:
        await view.login("alice", PASSWORD)
    assert raised.value.challenge is None  # the challenge never leaves the connection
    assert view.state.second_step is not None
    assert all(s.user is None and s.ticket is None and s.session is None for s in seen)
    with pytest.raises(InvalidCode):
        await view.verify_code("000000" if code_at(secret, clock.now()) != "000000" else "1" * 6)
    assert view.state.second_step is not None and view.state.user is None
    task = asyncio.ensure_future(view.verify_code(code_at(secret, clock.now())))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        while view.state.ticket is None:
            await asyncio.sleep(0.01)
    assert view.state.user is not None and view.state.pending  # "Signing in…", not signed in
    assert view.state.second_step is None
    task.cancel()
    view.close()


async def test_a_pending_second_step_ends_by_itself(
    store: FakeStore, clock: FakeClock, bus: RecordingBus
) -> None:
    service = make_service(store, clock, bus, ttl=timedelta(milliseconds=50))
    await service.create_user("alice", PASSWORD)
    await enrol(service)
    view, _ = await view_of(service)
    ended = asyncio.Event()
    view.listen(lambda state: ended.set() if state.second_step is None else None)
    with pytest.raises(SecondFactorRequired):
        await view.login("alice", PASSWORD)
    async with asyncio.timeout(5):
        await ended.wait()
    with pytest.raises(SecondStepExpired):
        await view.verify_code("123456")
    view.close()


async def test_a_view_closed_halfway_through_a_setup_leaves_nothing_behind(
    store: FakeStore, clock: FakeClock, bus: RecordingBus
) -> None:
    service = make_service(store, clock, bus)
    await service.create_user("alice", PASSWORD)
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", PASSWORD, CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    view = LiveSession(
        service, service._events, CLIENT, hash_token(token), await service.visit(token)
    )  # type: ignore[arg-type]
    await view.start_mfa_enrolment(PASSWORD)
    assert store.tables.mfa
    view.close()
    async with asyncio.timeout(5):
        while store.tables.mfa:
            await asyncio.sleep(0.01)
