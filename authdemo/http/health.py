"""Failing closed while the database is away, and noticing when it is back."""

from __future__ import annotations

import asyncio
import logging

from ..domain import StorageUnavailable
from ..ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

UNAVAILABLE = "The service is temporarily unavailable. Please try again shortly.\n"


class DatabaseHealth:
    """Set ``down`` by the first request that could not reach the database; while it is
    set, pages and websocket handshakes get a plain 503 at once (no request waits for the
    timeout again), and a probe retries every ``interval`` until the database answers."""

    def __init__(self, uow: UnitOfWorkFactory, interval: float = 1.0) -> None:
        self._uow = uow
        self.interval = interval
        self.down = False
        self._probe: asyncio.Task[None] | None = None

    def mark_down(self) -> None:
        if self.down:
            return
        self.down = True
        log.error("database unavailable: answering 503 until it is back")
        self._probe = asyncio.get_running_loop().create_task(self._wait_until_back())

    async def _wait_until_back(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # A write unit of work (never committed): on SQLite it must get the write
                # lock, so a file locked by another process keeps us down until released.
                async with self._uow(write=True) as tx:
                    await tx.secrets.get("health-probe")
            except StorageUnavailable:
                continue
            except Exception:  # anything else: still not healthy
                log.exception("database probe failed")
                continue
            self.down = False
            log.warning("database reachable again")
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
