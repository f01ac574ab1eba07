"""Issue 11, defect 3: a follower never skips a broadcast committed out of id order.

PostgreSQL takes ids from a sequence before commit, so a slow transaction's row (a lower
id) can become visible after a fast one's (a higher id). A follower that remembered only
"the highest id seen" skipped the slow row for good — and with it a revocation.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from authdemo.broadcast import BroadcastFollower
from authdemo.db import uow as uow_module
from authdemo.db.repositories import SqlBroadcastRepository
from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.events import EventKind, InProcessEventBus, SessionEvent

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLOW = SessionEvent(EventKind.REVOKED, (1,), "slow transaction")
FAST = SessionEvent(EventKind.REVOKED, (2,), "fast transaction")


async def following(
    sql_uow: SqlUnitOfWorkFactory,
) -> tuple[BroadcastFollower, list[SessionEvent]]:
    """A follower started now, and the list of the events it delivers."""
    heard: list[SessionEvent] = []
    bus = InProcessEventBus()
    bus.subscribe_all(heard.append)
    follower = BroadcastFollower(sql_uow, bus)
    await follower.start_position()
    return follower, heard


@pytest.mark.postgresql_only
async def test_a_row_committed_after_a_higher_id_is_still_delivered(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    follower, heard = await following(sql_uow)

    slow = sql_uow(write=True)
    await slow.__aenter__()
    try:
        slow_id = await slow.broadcasts.add(SLOW, NOW)  # takes its id, does not commit yet
        async with sql_uow(write=True) as fast:
            fast_id = await fast.broadcasts.add(FAST, NOW)
            await fast.commit()
        assert slow_id < fast_id
        assert await follower.poll() == 1
        assert heard == [FAST]
        await slow.commit()
    finally:
        await slow.__aexit__(None, None, None)

    assert await follower.poll() == 1
    assert heard == [FAST, SLOW]
    assert await follower.poll() == 0  # and nothing twice
    assert heard == [FAST, SLOW]


class PausingSession:
    """An ``AsyncSession`` that, while ``pause`` is set, runs it once right after its next
    statement (and before the one after): a hook between two reads of one follower poll."""

    def __init__(self, inner: Any, hooks: dict[str, Any]) -> None:
        self._inner = inner
        self._hooks = hooks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _after_statement(self) -> None:
        pause = self._hooks.pop("pause", None)
        if pause is not None:
            await pause()

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._inner.scalar(*args, **kwargs)
        await self._after_statement()
        return result

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._inner.scalars(*args, **kwargs)
        await self._after_statement()
        return result


async def horizon_passed(sql_uow: SqlUnitOfWorkFactory, txid: int) -> None:
    """Wait until every transaction up to ``txid`` has ended for a new snapshot (another
    transaction on the server, older than ``txid`` and still open, would hold it back)."""
    async with asyncio.timeout(10):
        while True:
            async with sql_uow() as tx:
                xmin = await tx.broadcasts._s.scalar(  # type: ignore[attr-defined]
                    text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                )
            if int(xmin) > txid:
                return
            await asyncio.sleep(0.01)


@pytest.mark.postgresql_only
async def test_a_row_committed_between_the_followers_two_reads_is_delivered(
    sql_uow: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower reads the horizon (the oldest transaction still running) and then the
    rows. Read the other way round, a transaction that commits between the two reads is
    missed by the rows and already behind the horizon: its revocation is never read."""
    hooks: dict[str, Any] = {}
    monkeypatch.setattr(
        uow_module,
        "SqlBroadcastRepository",
        lambda session: SqlBroadcastRepository(PausingSession(session, hooks)),
    )
    follower, heard = await following(sql_uow)

    slow = sql_uow(write=True)
    await slow.__aenter__()
    try:
        await slow.broadcasts.add(SLOW, NOW)
        txid = await slow.broadcasts._s.scalar(  # type: ignore[attr-defined]
            text("SELECT pg_current_xact_id()::text::bigint")
        )

        async def commit_between_the_reads() -> None:
            await slow.commit()
            await horizon_passed(sql_uow, int(txid))

        hooks["pause"] = commit_between_the_reads
        await follower.poll()
        assert "pause" not in hooks  # the commit did happen mid-poll
    finally:
        await slow.__aexit__(None, None, None)
    await follower.poll()
    assert heard == [SLOW]
    assert await follower.poll() == 0  # and once only
    assert heard == [SLOW]


@pytest.mark.postgresql_only
async def test_rows_of_a_transaction_that_rolled_back_never_hold_the_follower_back(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    follower, heard = await following(sql_uow)
    async with sql_uow(write=True) as doomed:
        await doomed.broadcasts.add(SLOW, NOW)  # rolled back at exit
    async with sql_uow(write=True) as tx:
        await tx.broadcasts.add(FAST, NOW)
        await tx.commit()
    assert await follower.poll() == 1
    assert heard == [FAST]
    assert await follower.poll() == 0


async def test_a_new_follower_starts_after_what_was_committed_before_it(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    async with sql_uow(write=True) as tx:
        await tx.broadcasts.add(SLOW, NOW)
        await tx.commit()
    follower, heard = await following(sql_uow)
    async with sql_uow(write=True) as tx:
        await tx.broadcasts.add(FAST, NOW)
        await tx.commit()
    assert await follower.poll() == 1
    assert heard == [FAST]
