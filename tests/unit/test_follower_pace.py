"""The broadcast follower's pace: quiet while the host's listener is connected, and a
read at once whenever the listener says something — a commit, a reconnect, a loss."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from authdemo.broadcast import BroadcastFollower
from authdemo.events import EventKind, InProcessEventBus, SessionEvent
from tests.support.fakes import FakeStore

QUIET = 3600.0  # never, within a test: what arrives came from a wake-up


class Heard:
    def __init__(self, bus: InProcessEventBus) -> None:
        self.sessions: list[int] = []
        self._changed = asyncio.Event()
        bus.subscribe_all(self._on_event)

    def _on_event(self, event: SessionEvent) -> None:
        self.sessions.extend(event.session_ids)
        self._changed.set()

    async def session(self, session_id: int) -> None:
        async with asyncio.timeout(5):
            while session_id not in self.sessions:
                self._changed.clear()
                await self._changed.wait()


class CountingFollower(BroadcastFollower):
    polls = 0

    async def poll(self) -> int:
        count = await super().poll()
        self.polls += 1
        return count

    async def idle(self) -> None:
        """Until every wake-up so far was followed by a read, and it waits again."""
        async with asyncio.timeout(5):
            while self.wakeup.is_set() or self.polls == 0:
                await asyncio.sleep(0)
            for _ in range(10):
                await asyncio.sleep(0)


async def commit(store: FakeStore, session_id: int) -> int:
    """A revocation another process wrote: in the table, announced to nobody."""
    async with store(write=True) as tx:
        row = await tx.broadcasts.add(
            SessionEvent(EventKind.REVOKED, (session_id,)), datetime.now(UTC)
        )
        await tx.commit()
    return row


@pytest.fixture
async def following() -> AsyncIterator[tuple[FakeStore, CountingFollower, Heard]]:
    """A follower whose host's listener is connected, waiting (for an hour)."""
    store = FakeStore()
    bus = InProcessEventBus()
    follower = CountingFollower(store, bus, interval=QUIET, interval_listening=QUIET)  # type: ignore[arg-type]
    await follower.start_position()
    task = asyncio.create_task(follower.run())
    follower.listening(True)
    await follower.idle()
    yield store, follower, Heard(bus)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_listener_that_connects_again_makes_the_follower_catch_up(
    following: tuple[FakeStore, CountingFollower, Heard],
) -> None:
    store, follower, heard = following
    await commit(store, 1)  # its notification was lost: the listener's connection broke
    await follower.idle()
    assert 1 not in heard.sessions  # nothing else would read it within the hour
    follower.listening(True)  # the listener is back
    await heard.session(1)


async def test_a_listener_that_lost_its_connection_makes_the_follower_read_at_once(
    following: tuple[FakeStore, CountingFollower, Heard],
) -> None:
    store, follower, heard = following
    await commit(store, 2)
    follower.listening(False)
    await heard.session(2)
    assert not follower.is_listening


async def test_a_notification_makes_the_follower_read_at_once(
    following: tuple[FakeStore, CountingFollower, Heard],
) -> None:
    store, follower, heard = following
    follower.notified(await commit(store, 3))
    await heard.session(3)


def test_the_pace_is_the_quiet_one_only_while_listening_and_reading_works() -> None:
    follower = BroadcastFollower(FakeStore(), InProcessEventBus(), 0.25, 5.0)  # type: ignore[arg-type]
    assert follower._pause() == 0.25
    follower.listening(True)
    assert follower._pause() == 5.0
    follower._failing = True  # the catch-up read failed: retry soon
    assert follower._pause() == 0.25
