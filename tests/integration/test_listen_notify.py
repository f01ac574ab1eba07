"""PostgreSQL's listening connection says "listening" only once ``LISTEN`` is in effect.

A follower told "listening" reads what it has not seen yet and from then on relies on
the notifications (reading the outbox itself only every few seconds). Said before
``LISTEN`` took effect, a commit in between would be announced to nobody and found only
by that slow read.
"""

from __future__ import annotations

import asyncio
import contextlib
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
