"""Following the session broadcasts that other processes and hosts write.

Every revocation is written to ``session_broadcasts`` in the same transaction as the
revocation itself (an outbox), and delivered at once to this process's connections.
Each worker also follows the table, so changes made by other workers, other hosts or
the command line reach its connections too. Delivering an event twice is harmless:
a connection that is already signed out stays signed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .events import InProcessEventBus
from .ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

BATCH = 500


class BroadcastFollower:
    def __init__(
        self, uow: UnitOfWorkFactory, bus: InProcessEventBus, interval: float = 0.25
    ) -> None:
        self._uow = uow
        self._bus = bus
        self.interval = interval
        self.wakeup = asyncio.Event()
        """Set to poll at once (a PostgreSQL NOTIFY does)."""
        self.last_id: int | None = None
        self._failing = False

    async def start_position(self) -> None:
        async with self._uow() as tx:
            self.last_id = await tx.broadcasts.last_id()

    async def poll(self) -> int:
        """Deliver what is new since the last poll; returns how many events."""
        if self.last_id is None:
            await self.start_position()
            return 0
        assert self.last_id is not None
        async with self._uow() as tx:
            batch = await tx.broadcasts.after(self.last_id, BATCH)
        for event_id, event in batch:
            self._bus.deliver(event)
            self.last_id = event_id
        return len(batch)

    async def run(self) -> None:
        while True:
            try:
                # Shielded: being cancelled (at shutdown) never interrupts a query half-way.
                while await asyncio.shield(self.poll()) == BATCH:
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
                async with asyncio.timeout(self.interval):
                    await self.wakeup.wait()
            self.wakeup.clear()
