"""PostgreSQL's listening connection says "listening" only once ``LISTEN`` is in effect.

A follower told "listening" reads what it has not seen yet and from then on relies on
the notifications (reading the outbox itself only every few seconds). Said before
``LISTEN`` took effect, a commit in between would be announced to nobody and found only
by that slow read.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from authdemo.db.notify import CHANNEL, PostgresNotifications, asyncpg_dsn
from tests.support.db import in_thread


def commit_a_notification(db_url: str, row_id: int) -> None:
    """Commit a NOTIFY from another connection, in another thread, and return only then."""

    async def main() -> None:
        conn: Any = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(row_id))
        finally:
            await conn.close()

    in_thread(lambda: asyncio.run(main()))


class CommitsWhenListening:
    """A follower whose "listening" is answered at once, before the listener does
    anything else: another process commits a broadcast right then."""

    def __init__(self, db_url: str) -> None:
        self._db_url = db_url
        self.heard: list[object] = []
        self.notified_rows = asyncio.Event()

    def listening(self, on: bool) -> None:
        self.heard.append("listening" if on else "deaf")
        if on:  # blocks the listener's loop until the commit is done
            commit_a_notification(self._db_url, 42)

    def notified(self, row_id: int | None) -> None:
        self.heard.append(row_id)
        self.notified_rows.set()


@pytest.mark.postgresql_only
async def test_a_commit_right_after_listening_is_announced_is_notified(db_url: str) -> None:
    target = CommitsWhenListening(db_url)
    listener = asyncio.create_task(PostgresNotifications(db_url, target).run())
    try:
        async with asyncio.timeout(10):
            await target.notified_rows.wait()
        assert target.heard == ["listening", 42]
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


@pytest.mark.postgresql_only
async def test_a_broadcast_wakes_other_hosts_in_the_statement_that_writes_it(
    db_url: str,
) -> None:
    """The outbox row and the NOTIFY that wakes every other host go in one round trip,
    once per transaction (its first broadcast); delivered at commit, only if it commits."""
    from sqlalchemy import event

    from authdemo.db.engine import create_engine
    from authdemo.db.uow import SqlUnitOfWorkFactory
    from authdemo.events import EventKind, SessionEvent

    heard: asyncio.Queue[str] = asyncio.Queue()
    listener: Any = await asyncpg.connect(asyncpg_dsn(db_url))
    await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
    engine = create_engine(db_url)
    sent: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    uow = SqlUnitOfWorkFactory(engine)
    now = datetime.now(UTC)
    try:
        async with uow(write=True) as tx:
            first = await tx.broadcasts.add(SessionEvent(EventKind.REVOKED, (1,)), now)
            await tx.broadcasts.add_all(
                [SessionEvent(EventKind.REVOKED, (2,)), SessionEvent(EventKind.REVOKED, (3,))],
                now,
            )
            # left uncommitted: rolled back, announces nothing
        async with uow(write=True) as tx:
            first = await tx.broadcasts.add(SessionEvent(EventKind.REVOKED, (1,)), now)
            later = await tx.broadcasts.add_all(
                [SessionEvent(EventKind.REVOKED, (2,)), SessionEvent(EventKind.REVOKED, (3,))],
                now,
            )
            await tx.commit()
        assert later == [first + 1, first + 2]
        writes = [s for s in sent if "authdemo_session_broadcasts" in s]
        assert len(writes) == 4  # one statement per call
        notifying = [s for s in sent if "pg_notify" in s]
        assert notifying == [writes[0], writes[2]]  # the first write of each transaction
        async with asyncio.timeout(10):
            assert await heard.get() == str(first)  # the rolled-back one never came
    finally:
        await listener.close()
        await engine.dispose()
