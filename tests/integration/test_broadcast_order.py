"""Issue 11, defect 3: a follower never skips a broadcast committed out of id order.

PostgreSQL takes ids from a sequence before commit, so a slow transaction's row (a lower
id) can become visible after a fast one's (a higher id). A follower that remembered only
"the highest id seen" skipped the slow row for good — and with it a revocation.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authdemo.broadcast import BroadcastFollower
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
