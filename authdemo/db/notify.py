"""PostgreSQL LISTEN/NOTIFY: wake the broadcast followers the moment anyone commits.

The ``session_broadcasts`` table stays the source of truth; a notification carries only
the id of the row it announces and says "read it now". So a notification lost while the
listening connection was down costs nothing: each (re)connect is announced as
``listening(True)`` *after* ``LISTEN`` took effect, and a follower told so reads
everything it has not seen yet. Every commit after that point notifies; every commit
before it is in the table.

One such connection per host (``authdemo run`` relays it to its workers, see
``authdemo.relay``): PostgreSQL signals every listening backend on every ``NOTIFY``, so
listeners are kept few. It connects straight to PostgreSQL (``AUTHDEMO_LISTEN_URL``),
never through PgBouncer, whose transaction mode cannot carry ``LISTEN``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "authdemo_broadcasts"
APPLICATION_NAME = "authdemo-listen"


class ChangeFeedTarget(Protocol):
    """Who is told about the outbox: a worker's follower, or the host's relay."""

    def notified(self, row_id: int | None) -> None:
        """A broadcast row was committed (its id, when the payload carried one)."""

    def listening(self, on: bool) -> None:
        """True: notifications flow from now on (read what came before). False: they
        do not (read the outbox often until they do again)."""


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy) → ``postgresql://…`` (asyncpg)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def parse_payload(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None


class PostgresNotifications:
    """The listening connection: autocommit, used for nothing else, re-established after
    the database (or the connection) goes away."""

    def __init__(
        self,
        url: str,
        target: ChangeFeedTarget,
        *,
        keepalive: float = 5.0,
        retry: float = 1.0,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self._target = target
        self._keepalive = keepalive
        self._retry = retry
        self.connected = asyncio.Event()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._target.notified(parse_payload(payload))

    async def run(self) -> None:
        failing = False
        while True:
            connection: Any = None
            try:
                import asyncpg  # PostgreSQL only: SQLite deployments never load it

                connection = await asyncpg.connect(
                    self._dsn,
                    timeout=5,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notification)
                self.connected.set()
                if failing:
                    log.warning("listening for session broadcasts again")
                    failing = False
                self._target.listening(True)  # catch up on what happened while away
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
                if self.connected.is_set():
                    self._target.listening(False)
                self.connected.clear()
                if not failing:
                    log.warning("cannot listen for session broadcasts: %s", error)
                    failing = True
                await asyncio.sleep(self._retry)
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()
