"""The unit of work: one ``AsyncSession`` per operation, rolled back unless committed."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ..domain import StorageUnavailable
from ..ports import (
    AuditRepository,
    BroadcastRepository,
    SecretRepository,
    SessionRepository,
    ThrottleRepository,
    TicketRepository,
    UserRepository,
)
from .engine import WRITE_OPTION
from .repositories import (
    SqlAuditRepository,
    SqlBroadcastRepository,
    SqlSecretRepository,
    SqlSessionRepository,
    SqlThrottleRepository,
    SqlTicketRepository,
    SqlUserRepository,
)


class SqlUnitOfWork:
    users: UserRepository
    sessions: SessionRepository
    tickets: TicketRepository
    secrets: SecretRepository
    audit: AuditRepository
    throttle: ThrottleRepository
    broadcasts: BroadcastRepository

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], tracker: SqlUnitOfWorkFactory
    ) -> None:
        self._factory = factory
        self._tracker = tracker
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self._tracker.active += 1
        session = self._session = self._factory()
        self.users = SqlUserRepository(session)
        self.sessions = SqlSessionRepository(session)
        self.tickets = SqlTicketRepository(session)
        self.secrets = SqlSecretRepository(session)
        self.audit = SqlAuditRepository(session)
        self.throttle = SqlThrottleRepository(session)
        self.broadcasts = SqlBroadcastRepository(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        assert session is not None
        self._tracker.finished()
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            # Interrupted mid-statement: the connection may be half-way through the wire
            # protocol, and a ROLLBACK on it can wait forever. Drop it instead.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(session.invalidate())
            return
        try:
            try:
                await session.rollback()  # a no-op after commit
            finally:
                await session.close()
        except Exception as cleanup:  # the connection died with the work it was doing
            if exc is None:
                if is_unavailable(cleanup):
                    raise StorageUnavailable() from cleanup
                raise
        if exc is not None and is_unavailable(exc):
            # Callers see one project exception for "the database is away", whatever
            # the driver said; it becomes a 503 on the web and exit 3 in the CLI.
            raise StorageUnavailable() from exc

    async def commit(self) -> None:
        assert self._session is not None, "commit() outside 'async with'"
        await self._session.commit()


class SqlUnitOfWorkFactory:
    """Makes units of work; write ones take SQLite's write lock when they begin."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self.active = 0
        self._idle: asyncio.Event | None = None

    def __call__(self, *, write: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._write if write else self._read, self)

    def finished(self) -> None:
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, within: float) -> bool:
        """Wait until no unit of work is open (before closing the engine); False on timeout."""
        if self.active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def is_unavailable(error: BaseException) -> bool:
    """Connection-level trouble (gone, refused, timed out, locked), not a bad statement."""
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
    return isinstance(
        error, (sa_exc.DisconnectionError, sa_exc.TimeoutError, OSError, TimeoutError)
    )
