"""The broadcast follower on a fake store: it starts from now, delivers each new row once
with its row id, and says once that it cannot read, and once that it can again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from authdemo.broadcast import BroadcastFollower
from authdemo.events import EventKind, InProcessEventBus, SessionEvent
from tests.support.fakes import FakeStore


async def commit(store: FakeStore, session_id: int) -> int:
    async with store(write=True) as tx:
        row = await tx.broadcasts.add(
            SessionEvent(EventKind.REVOKED, (session_id,)), datetime.now(UTC)
        )
        await tx.commit()
    return row


def recorded(bus: InProcessEventBus) -> list[SessionEvent]:
    events: list[SessionEvent] = []
    bus.subscribe_all(events.append)
    return events


def test_the_quiet_pace_defaults_to_the_polling_one() -> None:
    follower = BroadcastFollower(FakeStore(), InProcessEventBus())  # type: ignore[arg-type]
    assert (follower.interval, follower.interval_listening) == (0.25, 0.25)
    follower.listening(True)
    assert follower._pause() == 0.25


async def test_the_follower_starts_from_now_then_delivers_each_new_row_with_its_id() -> None:
    store, bus = FakeStore(), InProcessEventBus()
    events = recorded(bus)
    await commit(store, 1)  # before the follower started: not its to deliver
    follower = BroadcastFollower(store, bus)  # type: ignore[arg-type]
    assert await follower.poll() == 0  # the first poll only takes the position
    first = await commit(store, 2)
    assert await follower.poll() == 1
    second = await commit(store, 3)
    assert await follower.poll() == 1
    assert await follower.poll() == 0
    assert [(e.session_ids, e.serial) for e in events] == [((2,), first), ((3,), second)]


class Flaky:
    """A unit-of-work factory whose database is away for the first ``failures`` calls."""

    def __init__(self, store: FakeStore, failures: int) -> None:
        self.store, self.failures, self.calls = store, failures, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("database away")
        return self.store(*args, **kwargs)


async def test_a_follower_says_once_it_cannot_read_and_once_it_can_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, bus = FakeStore(), InProcessEventBus()
    events = recorded(bus)
    flaky = Flaky(store, failures=4)
    # Listening, but failing: the retries run at the fast pace, without any wake-up.
    follower = BroadcastFollower(flaky, bus, interval=0.01, interval_listening=3600)  # type: ignore[arg-type]
    follower.is_listening = True
    task = asyncio.create_task(follower.run())
    try:
        async with asyncio.timeout(5):
            while follower.cursor is None:
                await asyncio.sleep(0.005)
        row = await commit(store, 7)
        follower.notified(row)
        async with asyncio.timeout(5):
            while not events:
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "cannot read session broadcasts: database away"),
        (logging.WARNING, "session broadcasts are readable again"),
    ]
    assert not follower._failing
    assert follower._pause() == 3600  # back to the quiet pace
    assert [e.serial for e in events] == [row]


async def test_a_follower_stopped_during_a_poll_ends_only_once_the_poll_has() -> None:
    """At shutdown the follower is cancelled; a poll under way holds a connection, and the
    database is closed once the follower has ended: so the poll must have ended too."""
    store, bus = FakeStore(), InProcessEventBus()
    follower = BroadcastFollower(store, bus, interval=0.01)  # type: ignore[arg-type]
    await follower.start_position()
    started, release = asyncio.Event(), asyncio.Event()
    ended: list[int] = []
    real_poll = follower.poll

    async def slow_poll() -> int:
        started.set()
        await release.wait()
        ended.append(await real_poll())
        return ended[-1]

    follower.poll = slow_poll  # type: ignore[method-assign]
    task = asyncio.create_task(follower.run())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # the poll is still under way
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == [0]
