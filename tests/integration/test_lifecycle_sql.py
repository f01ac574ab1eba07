"""Audit, throttle and broadcast repositories, and the broadcast follower, on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from authdemo.bootstrap import runtime
from authdemo.broadcast import BroadcastFollower
from authdemo.config import Settings
from authdemo.db.uow import SqlUnitOfWorkFactory
from authdemo.domain import AuditEvent, AuditKind
from authdemo.events import EventKind, InProcessEventBus, SessionEvent
from tests.conftest import cheap_hasher

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def test_audit_rows_come_back_newest_first_and_per_user(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    async with sql_uow(write=True) as tx:
        user = await tx.users.add("alice", "alice", "h", NOW)
        for i, kind in enumerate((AuditKind.USER_CREATED, AuditKind.LOGIN_OK)):
            await tx.audit.add(
                AuditEvent(NOW + timedelta(seconds=i), kind, "alice", user_id=user.id)
            )
        await tx.audit.add(
            AuditEvent(NOW, AuditKind.LOGIN_FAILED, "mallory", client_addr="1.2.3.4")
        )
        await tx.commit()
    async with sql_uow() as tx:
        everyone = await tx.audit.list(None, 10)
        alices = await tx.audit.list(user.id, 10)
        newest = await tx.audit.list(None, 1)
    assert [e.kind for e in everyone] == [
        AuditKind.LOGIN_FAILED,
        AuditKind.LOGIN_OK,
        AuditKind.USER_CREATED,
    ]
    assert [e.kind for e in alices] == [AuditKind.LOGIN_OK, AuditKind.USER_CREATED]
    assert len(newest) == 1 and everyone[0].client_addr == "1.2.3.4"


async def test_throttle_rows_are_upserted_and_purged(sql_uow: SqlUnitOfWorkFactory) -> None:
    async with sql_uow(write=True) as tx:
        await tx.throttle.save("account:a", 1, None, NOW)
        await tx.throttle.save("account:a", 6, NOW + timedelta(seconds=2), NOW)
        await tx.throttle.save("address:x", 1, None, NOW)
        await tx.commit()
    async with sql_uow() as tx:
        state = await tx.throttle.get(["account:a", "address:x", "missing"])
    assert state["account:a"].failures == 6 and set(state) == {"account:a", "address:x"}
    async with sql_uow(write=True) as tx:
        assert (
            await tx.throttle.purge(NOW + timedelta(seconds=1), NOW + timedelta(seconds=1), 10) == 1
        )
        assert (
            await tx.throttle.purge(NOW + timedelta(seconds=1), NOW + timedelta(seconds=3), 10) == 1
        )
        await tx.commit()


async def test_broadcasts_round_trip_in_order(sql_uow: SqlUnitOfWorkFactory) -> None:
    events = [
        SessionEvent(EventKind.REVOKED, (1, 2), "logout"),
        SessionEvent(EventKind.COOKIE_ATTACHED, (3,), token_hash="f" * 64),
    ]
    async with sql_uow() as tx:
        start = await tx.broadcasts.position()
    async with sql_uow(write=True) as tx:
        ids = [await tx.broadcasts.add(e, NOW) for e in events]
        await tx.commit()
    async with sql_uow() as tx:
        cursor, delivered = await tx.broadcasts.changes(start)
        assert delivered == list(zip(ids, events, strict=True))
        assert (await tx.broadcasts.changes(cursor))[1] == []  # never twice
        assert (await tx.broadcasts.changes(await tx.broadcasts.position()))[1] == []


async def test_broadcasts_added_together_pair_each_event_with_its_own_row(
    sql_uow: SqlUnitOfWorkFactory,
) -> None:
    """``add_all``: one INSERT for several events; the ids it answers are each event's
    own row, in the events' order, and delivered as one add each would be."""
    events = [
        SessionEvent(EventKind.COOKIE_ATTACHED, (3,), token_hash="a" * 64),
        SessionEvent(EventKind.TOKEN_RETIRED, (), token_hash="b" * 64),
        SessionEvent(EventKind.REVOKED, (4, 5), "logout", user_id=9),
    ]
    async with sql_uow() as tx:
        start = await tx.broadcasts.position()
    async with sql_uow(write=True) as tx:
        first = await tx.broadcasts.add(events[0], NOW)
        ids = await tx.broadcasts.add_all(events[1:], NOW)  # after another in one transaction
        assert await tx.broadcasts.add_all([], NOW) == []
        await tx.commit()
    assert first < ids[0] < ids[1]
    async with sql_uow() as tx:
        _, delivered = await tx.broadcasts.changes(start)
    assert delivered == list(zip([first, *ids], events, strict=True))


async def test_the_follower_delivers_what_another_process_commits(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as here:
        bus = InProcessEventBus()
        received: list[SessionEvent] = []
        bus.subscribe(42, received.append)
        follower = BroadcastFollower(here.uow, bus, interval=0.05)
        await follower.start_position()
        task = asyncio.create_task(follower.run())
        try:
            async with (
                runtime(settings, hasher_factory=cheap_hasher) as elsewhere,
                elsewhere.uow(write=True) as tx,
            ):
                await tx.broadcasts.add(SessionEvent(EventKind.REVOKED, (42,), "x"), NOW)
                await tx.commit()
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)
            assert [e.session_ids for e in received] == [(42,)]
        finally:
            task.cancel()


async def test_the_follower_starts_after_what_was_already_there(settings: Settings) -> None:
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        async with rt.uow(write=True) as tx:
            await tx.broadcasts.add(SessionEvent(EventKind.REVOKED, (7,), "old"), NOW)
            await tx.commit()
        bus = InProcessEventBus()
        received: list[SessionEvent] = []
        bus.subscribe(7, received.append)
        follower = BroadcastFollower(rt.uow, bus)
        await follower.start_position()
        assert await follower.poll() == 0 and received == []
