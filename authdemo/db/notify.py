"""PostgreSQL LISTEN/NOTIFY: wake the broadcast follower the moment another host commits.

The ``session_broadcasts`` table stays the source of truth; a notification only says
"read it now". So a notification lost while the listening connection was down costs
nothing: on every (re)connect the follower reads everything it has not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "authdemo_broadcasts"


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy) → ``postgresql://…`` (asyncpg)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresNotifications:
    """One listening connection per worker, re-established after the database restarts."""

    def __init__(
        self,
        url: str,
        on_notify: Callable[[], None],
        *,
        keepalive: float = 5.0,
        retry: float = 1.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_notify = on_notify
        self._keepalive = keepalive
        self._retry = retry
        self.connected = asyncio.Event()

    async def run(self) -> None:
        failing = False
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, lambda *_: self._on_notify())
                self.connected.set()
                if failing:
                    log.warning("listening for session broadcasts again")
                    failing = False
                self._on_notify()  # catch up on whatever happened while we were away
                while not lost.is_set():
                    try:  # asyncio.timeout: cancellation-safe, unlike wait_for on 3.11
                        async with asyncio.timeout(self._keepalive):
                            await lost.wait()
                    except TimeoutError:
                        await connection.fetchval("SELECT 1", timeout=self._keepalive)
                raise ConnectionError("listening connection terminated")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.connected.clear()
                if not failing:
                    log.warning("cannot listen for session broadcasts: %s", error)
                    failing = True
                await asyncio.sleep(self._retry)
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()


def notify_statement() -> str:
    return f"SELECT pg_notify('{CHANNEL}', '')"
