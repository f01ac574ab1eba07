"""Issue 13: bounded tables. ``purge-expired`` deletes audit rows past their retention and
throttle rows that hold nothing worth remembering, in batches, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.models import AuditRow, ThrottleRow
from authdemo.domain import ClientInfo, InvalidCredentials, Throttled
from authdemo.security import hash_token
from authdemo.service import AuthService
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def attempt(service: AuthService, username: str, addr: str) -> None:
    await service.login(hash_token(service.new_token()), username, "whatever pw", ClientInfo(addr))


async def fail(service: AuthService, username: str, addr: str) -> None:
    with pytest.raises(InvalidCredentials) as refused:
        await attempt(service, username, addr)
    assert not isinstance(refused.value, Throttled)


async def counts(rt: object) -> tuple[int, int]:
    async with rt.uow() as tx:  # type: ignore[attr-defined]
        session = tx.audit._s
        audit = await session.scalar(select(func.count()).select_from(AuditRow))
        throttle = await session.scalar(select(func.count()).select_from(ThrottleRow))
    return int(audit), int(throttle)


async def history(service: AuthService, clock: FakeClock) -> None:
    """Sign-in failures of long ago, of last week, and of now (one blocking an account)."""
    clock.current = NOW - timedelta(days=100)
    for i in range(3):  # three names, one address: 3 audit rows, 4 throttle rows
        await fail(service, f"guess{i}", "198.51.100.1")
    clock.current = NOW - timedelta(days=10)
    for i in range(2):  # 2 audit rows, 3 throttle rows
        await fail(service, f"probe{i}", "198.51.100.2")
    clock.current = NOW
    for _ in range(5):  # 6 audit rows (the fifth failure blocks "victim"), 2 throttle rows
        await fail(service, "victim", "198.51.100.3")
    with pytest.raises(Throttled):  # the block is in force (and costs no row)
        await attempt(service, "victim", "198.51.100.4")


async def test_purge_deletes_old_audit_rows_and_forgotten_throttle_rows_in_batches(
    settings: Settings,
) -> None:
    clock = FakeClock(NOW)
    async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        await history(rt.service, clock)
        assert await counts(rt) == (3 + 2 + 6, 4 + 3 + 2)
        report = await rt.service.purge_expired(batch=2)  # several batches each
        # Audit: only what is older than 90 days. Throttle: everything older than a day;
        # the recent rows (and the block in force) are still counted.
        assert (report.audit_events, report.throttle_rows) == (3, 7)
        assert await counts(rt) == (2 + 6, 2)
        with pytest.raises(Throttled):  # still blocked: its row was kept
            await attempt(rt.service, "victim", "198.51.100.5")
        again = await rt.service.purge_expired()
        assert (again.audit_events, again.throttle_rows) == (0, 0)


async def test_the_audit_retention_is_a_setting(settings: Settings) -> None:
    clock = FakeClock(NOW)
    week = replace(settings, audit_retention=timedelta(days=7))
    async with runtime(week, clock=clock, hasher_factory=cheap_hasher) as rt:
        await history(rt.service, clock)
        report = await rt.service.purge_expired()
        assert report.audit_events == 3 + 2


async def test_many_distinct_unknown_names_leave_no_rows_once_forgotten(
    settings: Settings,
) -> None:
    """The spray an attacker can aim at the throttle table: one row per name it makes
    up, which purge-expired removes once the day they would be counted for has passed."""
    clock = FakeClock(NOW)
    async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        for i in range(12):
            await fail(rt.service, f"made-up-{i}", f"2001:db8:0:{i}::1")
        assert (await counts(rt))[1] == 12 + 12
        clock.advance(timedelta(hours=25))
        report = await rt.service.purge_expired(batch=5)
        assert report.throttle_rows == 24
        assert (await counts(rt))[1] == 0


@pytest.mark.postgresql_only
async def test_a_row_a_sign_in_counts_while_the_purge_runs_is_not_deleted(
    settings: Settings,
) -> None:
    """Forced interleaving: a reservation holds a forgotten row's lock and counts a new
    failure on it; the purge, which found the row forgotten, waits for that lock. When
    the reservation commits, the row holds a failure worth remembering: the purge must
    re-check it, not delete it by key. (SQLite runs one writer at a time: no such gap.)"""
    clock = FakeClock(NOW - timedelta(days=2))
    async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        await fail(rt.service, "victim", "198.51.100.1")  # two days ago: forgotten now
        clock.current = NOW
        key = rt.service.account_key("victim")
        async with rt.uow(write=True) as reservation:
            (state,) = (await reservation.throttle.lock([key], NOW)).values()
            assert rt.service.throttle.forgotten(state, NOW)
            fresh = rt.service.throttle.reserve(state, 5, NOW)
            assert fresh is not None
            await reservation.throttle.save(key, fresh.failures, fresh.blocked_until, NOW)
            purge = asyncio.create_task(rt.service.purge_expired())
            await wait_for_a_lock_wait(rt)  # the purge is blocked on our row lock
            await reservation.commit()
        await purge
        async with rt.uow() as tx:
            kept = (await tx.throttle.get([key])).get(key)
        assert kept is not None and kept.failures == 1


async def wait_for_a_lock_wait(rt: object) -> None:
    """Until another backend of this database waits for a row lock."""
    from sqlalchemy import text

    async with asyncio.timeout(10):
        while True:
            async with rt.uow() as tx:  # type: ignore[attr-defined]
                waiting = await tx.audit._s.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                return
            await asyncio.sleep(0.01)
