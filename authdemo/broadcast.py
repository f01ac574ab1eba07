"""Following the session broadcasts that other processes and hosts write.

Every revocation is written to ``session_broadcasts`` in the same transaction as the
revocation itself (an outbox), and delivered at once to this process's connections.
Each worker also follows the table, so changes made by other workers, other hosts or
the command line reach its connections too. It reads its own rows back as well; the
bus drops those (each event carries its row id, ``SessionEvent.serial``), because a
late second copy is not always harmless.

No committed row is ever skipped (``BroadcastRepository.changes``): on SQLite rows
commit in id order (one writer at a time), so "after the last id read" is complete; on
PostgreSQL ids are taken before commit and commits arrive out of id order, so the
follower reads everything written by transactions that may still have been running at
its last read (at or past that read's ``xmin`` horizon), de-duplicated by id.

How often it reads: every ``interval`` (``AUTHDEMO_BROADCAST_POLL``), at once when told
of a commit (PostgreSQL ``NOTIFY``, through the host's listener), and only every
``interval_listening`` while that listener says it is connected: notifications then
announce every commit, and each (re)connect of the listener is followed by a read of
everything not seen yet (``listening(True)``), so a gap in the notifications is closed
from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from .events import InProcessEventBus
from .ports import BROADCAST_BATCH, BroadcastCursor, UnitOfWorkFactory
from .tasks import finish_first

log = logging.getLogger(__name__)


class BroadcastFollower:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        bus: InProcessEventBus,
        interval: float = 0.25,
        interval_listening: float | None = None,
    ) -> None:
        self._uow = uow
        self._bus = bus
        self.interval = interval
        self.interval_listening = interval if interval_listening is None else interval_listening
        self.is_listening = False
        """A listener is connected and relays every commit (``listening``)."""
        self.wakeup = asyncio.Event()
        """Set to poll at once (a PostgreSQL NOTIFY does)."""
        self.cursor: BroadcastCursor | None = None
        self._failing = False

    def notified(self, row_id: int | None) -> None:
        """A commit was announced: read now. (The row id is not needed: the read takes
        everything new, and the bus drops a row it delivered already.)"""
        self.wakeup.set()

    def listening(self, on: bool) -> None:
        """The host's listener (re)connected, or lost its connection: read now either way
        (on connect that is the catch-up), then at the pace that goes with it."""
        self.is_listening = on
        self.wakeup.set()

    def _pause(self) -> float:
        # A failed read (the catch-up too) is retried at the fast pace.
        return self.interval_listening if self.is_listening and not self._failing else self.interval

    async def start_position(self) -> None:
        async with self._uow() as tx:
            self.cursor = await tx.broadcasts.position()

    async def poll(self) -> int:
        """Deliver what is new since the last poll; returns how many events."""
        if self.cursor is None:
            await self.start_position()
            return 0
        async with self._uow() as tx:
            cursor, batch = await tx.broadcasts.changes(self.cursor)
        for row_id, event in batch:
            self._bus.deliver(replace(event, serial=row_id))
        self.cursor = cursor
        return len(batch)

    async def run(self) -> None:
        while True:
            try:
                # Cancelled (at shutdown), it ends once a poll under way has ended: a query
                # is never cut half-way, nor left running once the task is done.
                while await finish_first(self.poll()) == BROADCAST_BATCH:
                    pass
                if self._failing:
                    log.warning("session broadcasts are readable again")
                    self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: keep trying
                if not self._failing:
                    log.warning("cannot read session broadcasts: %s", error)
                    self._failing = True
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the event is set, and the loop never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._pause()):
                    await self.wakeup.wait()
            self.wakeup.clear()
