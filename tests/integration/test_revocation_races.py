"""Issue 11: revocation holds when requests race — each interleaving forced, not hoped for.

Every test here runs on SQLite and on PostgreSQL. A gate in the hasher stops a sign-in
right after its password checked out, so the test can make the password change, the
disable or the revocation commit exactly there; then it lets the sign-in go on.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from authdemo.bootstrap import runtime
from authdemo.config import Argon2Params, Settings
from authdemo.domain import (
    ClientInfo,
    InvalidCredentials,
    NotSignedIn,
    Throttled,
    TicketRejected,
)
from authdemo.events import EventKind, SessionEvent
from authdemo.security import Argon2Hasher, hash_token
from authdemo.service import AuthService
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.gates import Gate, gated, wait_until

OLD = "old password 1"
NEW = "new password 2"
CLIENT = ClientInfo("203.0.113.7", "pytest")


async def live_sessions_of(service: AuthService, username: str) -> list[int]:
    return [s.id for s, _ in await service.live_sessions(username)]


async def sign_in(service: AuthService, password: str = OLD) -> tuple[str, int]:
    """A signed-in cookie and its session id."""
    anonymous = service.new_token()
    result = await service.login(hash_token(anonymous), "alice", password, CLIENT)
    token = (await service.redeem_ticket(result.ticket, anonymous)).token
    return token, result.signed_in.session.id


async def sign_in_held_at_the_gate(service: AuthService, gate: Gate) -> asyncio.Task[object]:
    """Start a sign-in with the old password and return once its password checked out."""
    gate.arm()
    task: asyncio.Task[object] = asyncio.create_task(
        service.login(hash_token(service.new_token()), "alice", OLD, CLIENT)
    )
    async with asyncio.timeout(20):
        await gate.arrived.wait()
    return task


# --- 1. a sign-in in flight never survives what ends access --------------------------------


@pytest.mark.parametrize(
    "end_access",
    [
        pytest.param(lambda s: s.set_password("alice", NEW), id="password-reset"),
        pytest.param(lambda s: s.set_active("alice", False), id="disable"),
        pytest.param(lambda s: s.revoke_user_sessions("alice"), id="revoke-sessions"),
    ],
)
async def test_a_sign_in_verified_before_access_ended_opens_no_session(
    settings: Settings, end_access
) -> None:  # type: ignore[no-untyped-def]
    gate = Gate()
    async with runtime(settings, hasher_factory=gated(gate)) as rt:
        service = rt.service
        await service.create_user("alice", OLD)
        login = await sign_in_held_at_the_gate(service, gate)
        await end_access(service)  # commits between the verify and the session's INSERT
        gate.release()
        with pytest.raises(InvalidCredentials):
            await login
        assert await live_sessions_of(service, "alice") == []
        events = await service.audit_events("alice", 5)
        assert any(e.detail == "credentials changed during sign-in" for e in events)


async def test_a_password_reset_just_after_a_sign_in_ends_the_new_session(
    settings: Settings,
) -> None:
    # The other order: the session opened first, the reset commits right after.
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", OLD)
        token, _ = await sign_in(service)
        await service.set_password("alice", NEW)
        assert (await service.resolve(token)).signed_in is None
        assert await live_sessions_of(service, "alice") == []


# --- 2. a hash upgrade never writes an old password back ----------------------------------

STRONGER = Argon2Params(memory_kib=128, time_cost=1, parallelism=1)


async def test_a_hash_upgrade_racing_a_password_reset_never_brings_the_old_password_back(
    settings: Settings,
) -> None:
    gate = Gate()
    stronger = gated(gate, lambda _: Argon2Hasher(STRONGER, workers=2))
    async with runtime(settings, hasher_factory=cheap_hasher) as operator:
        await operator.service.create_user("alice", OLD)  # hashed at the cheaper cost
        async with runtime(settings, hasher_factory=stronger) as server:
            login = await sign_in_held_at_the_gate(server.service, gate)
            await operator.service.set_password("alice", NEW)
            gate.release()
            with pytest.raises(InvalidCredentials):
                await login  # its upgrade (a hash of OLD) must not land
            await sign_in(server.service, NEW)
            with pytest.raises(InvalidCredentials):
                await sign_in(server.service, OLD)


async def test_an_upgrade_is_written_only_over_the_hash_that_was_verified(
    settings: Settings,
) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        user = await rt.service.create_user("alice", OLD)
        async with rt.uow(write=True) as tx:
            creds = await tx.users.lock(user.id)
            assert creds is not None
            assert not await tx.users.upgrade_hash(user.id, "not the stored hash", "x")
            assert await tx.users.upgrade_hash(user.id, creds.password_hash, "upgraded")
            await tx.commit()
        async with rt.uow() as tx:
            stored = await tx.users.get_credentials("alice")
        assert stored is not None
        assert stored.password_hash == "upgraded"
        assert stored.user.credential_epoch == user.credential_epoch  # same password


# --- the rule, on every path: epoch, active user, liveness --------------------------------


@pytest.mark.parametrize("change", ["bump_epoch", "disable_only"])
async def test_a_session_whose_user_moved_on_may_not_act_even_unrevoked(
    settings: Settings, change: str
) -> None:
    # As if the revoking statement had been lost: only the user row changed, no session
    # row was revoked and no event was sent. Every path must still refuse the session.
    clock = FakeClock()
    async with runtime(settings, hasher_factory=cheap_hasher, clock=clock) as rt:
        service = rt.service
        user = await service.create_user("alice", OLD)
        token, session_id = await sign_in(service)
        async with rt.uow(write=True) as tx:
            if change == "bump_epoch":
                await tx.users.bump_epoch(user.id)
            else:
                await tx.users.set_active(user.id, False)
            await tx.commit()
        rt.service._cache.clear()  # type: ignore[union-attr]  # no event reached this worker
        assert (await service.resolve(token)).signed_in is None
        assert await service.current(session_id) is None
        with pytest.raises(NotSignedIn):
            await service.change_session_data(session_id, {"k": 1})
        with pytest.raises(NotSignedIn):
            await service.revoke_other_sessions(session_id, CLIENT, hash_token(token))
        async with rt.uow() as tx:
            found = await tx.sessions.get_with_user(session_id)
        assert found is not None
        clock.advance(timedelta(minutes=20))  # renewal due
        assert await service.renew(found[0]) is None


# --- 4. renewal is a conditional write ----------------------------------------------------


async def test_renewing_a_session_revoked_without_an_event_signs_every_view_out(
    settings: Settings,
) -> None:
    clock = FakeClock()
    async with runtime(settings, hasher_factory=cheap_hasher, clock=clock) as rt:
        service = rt.service
        await service.create_user("alice", OLD)
        _, session_id = await sign_in(service)
        heard: list[SessionEvent] = []
        rt.events.subscribe(session_id, heard.append)
        async with rt.uow() as tx:
            found = await tx.sessions.get_with_user(session_id)
        assert found is not None
        async with rt.uow(write=True) as tx:  # revoked elsewhere; the event was lost
            await tx.sessions.revoke([session_id], clock.now())
            await tx.commit()
        clock.advance(timedelta(minutes=20))
        assert await service.renew(found[0]) is None
        assert [e.kind for e in heard] == [EventKind.REVOKED]
        async with rt.uow() as tx:  # and no renewal was written
            after = await tx.sessions.get_with_user(session_id)
        assert after is not None
        assert after[0].idle_expires_at == found[0].idle_expires_at


# --- 6. throttling reserves before hashing --------------------------------------------------


async def test_the_address_limit_holds_for_forty_concurrent_sign_ins(settings: Settings) -> None:
    gate = Gate()
    limited = replace(
        settings,
        throttle_address_failures=5,
        throttle_account_failures=100,
    )
    # Time stands still: the 5th reservation's block (1 s) must not run out while a
    # slow machine is still reserving the other 35 (then a 6th would rightly be let in).
    async with runtime(limited, hasher_factory=gated(gate), clock=FakeClock()) as rt:
        gate.arm()  # every attempt that gets as far as hashing waits: maximal overlap
        cookie = hash_token(rt.service.new_token())
        tasks = [
            asyncio.create_task(rt.service.login(cookie, f"user{i}", "whatever pw", CLIENT))
            for i in range(40)
        ]
        await wait_until(lambda: sum(t.done() for t in tasks) + gate.waiting == 40)
        gate.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.started == 5
    assert sum(isinstance(r, Throttled) for r in results) == 35


async def test_the_account_limit_holds_across_two_workers(settings: Settings) -> None:
    gate = Gate()
    limited = replace(
        settings,
        throttle_account_failures=5,
        throttle_address_failures=100,
    )
    clock = FakeClock()  # the block (1 s) must not run out on a slow machine meanwhile
    async with (
        runtime(limited, hasher_factory=gated(gate), clock=clock) as one,
        runtime(limited, hasher_factory=gated(gate), clock=clock) as two,
    ):
        await one.service.create_user("alice", OLD)
        gate.arm()
        cookie = hash_token(one.service.new_token())
        tasks = [
            asyncio.create_task(
                (one if i % 2 else two).service.login(cookie, "alice", "wrong guess", CLIENT)
            )
            for i in range(20)
        ]
        await wait_until(lambda: sum(t.done() for t in tasks) + gate.waiting == 20)
        gate.release()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.started == 5


async def test_a_success_gives_its_reservation_back(settings: Settings) -> None:
    limited = replace(
        settings,
        throttle_account_failures=3,
        throttle_address_failures=3,
    )
    async with runtime(limited, hasher_factory=cheap_hasher) as rt:
        await rt.service.create_user("alice", OLD)
        for _ in range(10):  # good sign-ins never add up, per account or per address
            await sign_in(rt.service)
        for _ in range(2):
            with pytest.raises(InvalidCredentials):
                await sign_in(rt.service, "wrong guess")
        await sign_in(rt.service)
        account = rt.service.account_key("alice")
        async with rt.uow() as tx:
            states = await tx.throttle.get([account, "address:203.0.113.7"])
        cleared = states.get(account)  # a success clears the account
        assert cleared is None or (cleared.failures, cleared.blocked_until) == (0, None)
        assert states["address:203.0.113.7"].failures == 2  # and refunds only itself


async def test_concurrent_rekeys_and_resets_of_one_user_never_deadlock(
    settings: Settings,
) -> None:
    # Every transaction that locks a user row and session rows takes the user first, and
    # rows that merely reference them (tickets, audit rows) never wait for those locks. On
    # PostgreSQL, two devices pressing "sign out other sessions" while an operator resets
    # the password and a third device signs out used to deadlock (found by the
    # randomised run in tests/scale/test_revocation_invariant.py).
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        await service.create_user("alice", OLD)
        password = OLD
        for round_ in range(8):
            devices = [await sign_in(service, password) for _ in range(3)]
            new = f"{NEW} {round_}"
            outcomes = await asyncio.gather(
                service.revoke_other_sessions(devices[0][1], CLIENT, hash_token(devices[0][0])),
                service.revoke_other_sessions(devices[1][1], CLIENT, hash_token(devices[1][0])),
                service.logout(devices[2][1], CLIENT),
                service.set_password("alice", new),
                return_exceptions=True,
            )
            password = new
            unexpected = [o for o in outcomes if isinstance(o, BaseException)]
            assert all(isinstance(o, NotSignedIn) for o in unexpected), outcomes


# --- 7. two tabs of one browser sign in at once ----------------------------------------------


async def test_of_two_tickets_bound_to_one_cookie_redeemed_at_once_on_two_workers_one_wins(
    settings: Settings,
) -> None:
    # Two tabs of one browser sign in together: both tickets are bound to the cookie the
    # browser holds, and both images may carry it, each to another worker. Exactly one
    # redemption hands out a cookie; the other session ends unused (none is left open
    # that no browser can reach).
    async with (
        runtime(settings, hasher_factory=cheap_hasher) as one,
        runtime(settings, hasher_factory=cheap_hasher) as two,
    ):
        await one.service.create_user("alice", OLD)
        for _ in range(6):
            cookie = one.service.new_token()
            tickets = [
                (await rt.service.login(hash_token(cookie), "alice", OLD, CLIENT)).ticket
                for rt in (one, two)
            ]
            outcomes = await asyncio.gather(
                one.service.redeem_ticket(tickets[0], cookie),
                two.service.redeem_ticket(tickets[1], cookie),
                return_exceptions=True,
            )
            won = [o for o in outcomes if not isinstance(o, BaseException)]
            lost = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(won) == 1, outcomes
            assert [type(o) for o in lost] == [TicketRejected]
            assert await live_sessions_of(one.service, "alice") == [won[0].session.id]
            await one.service.logout(won[0].session.id, CLIENT)
