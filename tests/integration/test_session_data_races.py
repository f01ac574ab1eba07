"""Issue 18: ``update_value`` loses no update when two run at once — on SQLite and on
PostgreSQL, the interleaving forced, not hoped for.

The first update is stopped just before it commits (row locked, its new value written);
the second starts and the test waits until it is blocked on the database (PostgreSQL:
a backend waiting for a row lock; SQLite: the writer queue). Then the first commits.
An update that read the value outside the lock would have read the old one and
overwritten the first update's result.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from authdemo.bootstrap import Runtime, runtime
from authdemo.config import Settings
from authdemo.domain import ClientInfo
from authdemo.security import hash_token
from tests.conftest import cheap_hasher
from tests.support.fakes import FakeClock
from tests.support.gates import Gate, GatedCommits, wait_until

CLIENT = ClientInfo("203.0.113.7", "pytest")


def increment(n: int | None) -> int:
    return (n or 0) + 1


async def a_writer_waits(rt: Runtime) -> bool:
    """Another transaction of this database is blocked waiting for a write lock."""
    if rt.engine.dialect.name == "sqlite":
        return bool(rt.uow._waiting)  # queued for this process's one writer
    async with rt.engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def until_a_writer_waits(rt: Runtime) -> None:
    async with asyncio.timeout(10):
        while not await a_writer_waits(rt):
            await asyncio.sleep(0.01)


async def test_two_concurrent_updates_both_count(settings: Settings, clock: FakeClock) -> None:
    async with runtime(settings, clock=clock, hasher_factory=cheap_hasher) as rt:
        service = rt.service
        token = service.new_token()
        resolved = await service.resolve(token)
        session, _ = await service.open_anonymous_session(
            hash_token(token), resolved.issued_at, CLIENT
        )
        gate = Gate()
        service._uow = GatedCommits(rt.uow, gate)

        gate.arm()
        first = asyncio.create_task(service.update_session_value(session.id, "count", increment))
        await wait_until(lambda: gate.waiting == 1)  # locked, written, not committed
        second = asyncio.create_task(service.update_session_value(session.id, "count", increment))
        await until_a_writer_waits(rt)
        gate.release()
        (_, a), (_, b) = await asyncio.gather(first, second)

        assert sorted([a, b]) == [1, 2]
        found = await service.live_session(session.id)
        assert found is not None and found[0].data == {"count": 2}
