"""The unit of work: one ``AsyncSession`` per operation, rolled back unless committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any, Literal, Self, overload

from sqlalchemy import Connection, Executable, Result
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from ..domain import StorageRefused, StorageUnavailable
from ..ports import (
    AuditRepository,
    BroadcastRepository,
    EmailRepository,
    MailOutbox,
    MfaRepository,
    RateLimitRepository,
    RoleReads,
    RoleRepository,
    SecretRepository,
    SessionReads,
    SessionRepository,
    ThrottleRepository,
    TicketRepository,
    UserRepository,
)
from .engine import WRITE_OPTION, NotOneRead, one_statement_reads
from .mail_repositories import SqlEmailRepository, SqlMailOutbox, SqlRateLimitRepository
from .repositories import (
    SqlAuditRepository,
    SqlBroadcastRepository,
    SqlMfaRepository,
    SqlRoleReads,
    SqlRoleRepository,
    SqlSecretRepository,
    SqlSessionReads,
    SqlSessionRepository,
    SqlThrottleRepository,
    SqlTicketRepository,
    SqlUserRepository,
)

log = logging.getLogger(__name__)

WRITE_QUEUE_PATIENCE = 6
"""A writer waits at most this many DB timeouts for its turn, however well the queue
moves (30 s with the default ``AUTHDEMO_DB_TIMEOUT`` of 5 s)."""


class _Unit:
    """Ending a unit of work, the same for both kinds: its connection given back (or
    dropped when the work was interrupted), and driver errors turned into the project's."""

    _started: float

    async def _drop(self) -> None:
        """Drop the connection without a word on it (the work was interrupted)."""
        raise NotImplementedError

    async def _release(self) -> None:
        """Roll back whatever is open and give the connection back to the pool."""
        raise NotImplementedError

    async def _end(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            # Interrupted mid-statement: the connection may be half-way through the wire
            # protocol, and a ROLLBACK on it can wait forever. Drop it instead.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(self._drop())
            return
        try:
            await self._release()
        except Exception as cleanup:  # the connection died with the work it was doing
            if exc is None:
                if is_unavailable(cleanup):
                    raise StorageUnavailable() from cleanup
                raise
        if exc is not None and is_unavailable(exc):
            # Callers see one project exception for "the database is away", whatever
            # the driver said; it becomes a 503 on the web and exit 3 in the CLI.
            log.warning(
                "unit of work failed after %.2f s: %r", time.monotonic() - self._started, exc
            )
            raise StorageUnavailable() from exc
        if isinstance(exc, sa_exc.StatementError):
            # A statement the database (or a column type) refused: never a raw driver
            # error for callers, who answer it like any refusal. Only the error's class
            # is logged: its text may quote the values (a username, a password hash).
            log.warning("the database refused a statement: %s", _kind_of(exc))
            raise StorageRefused() from exc


class SqlUnitOfWork(_Unit):
    users: UserRepository
    sessions: SessionRepository
    tickets: TicketRepository
    secrets: SecretRepository
    audit: AuditRepository
    throttle: ThrottleRepository
    broadcasts: BroadcastRepository
    mfa: MfaRepository
    roles: RoleRepository
    emails: EmailRepository
    limits: RateLimitRepository
    outbox: MailOutbox

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        tracker: SqlUnitOfWorkFactory,
        gate: asyncio.Lock | None = None,
    ) -> None:
        self._factory = factory
        self._tracker = tracker
        self._gate = gate
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        if self._gate is not None:
            await self._tracker.take_turn(self._gate)
        self._tracker.active += 1
        self._started = time.monotonic()
        session = self._session = self._factory()
        self.users = SqlUserRepository(session)
        self.sessions = SqlSessionRepository(session)
        self.tickets = SqlTicketRepository(session)
        self.secrets = SqlSecretRepository(session)
        self.audit = SqlAuditRepository(session)
        self.throttle = SqlThrottleRepository(session)
        self.broadcasts = SqlBroadcastRepository(session)
        self.mfa = SqlMfaRepository(session)
        self.roles = SqlRoleRepository(session)
        self.emails = SqlEmailRepository(session)
        self.limits = SqlRateLimitRepository(session)
        self.outbox = SqlMailOutbox(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        healthy = False
        try:
            await self._end(exc_type, exc)
            healthy = exc is None or not is_unavailable(exc)
        finally:
            self._session = None
            # Finished once its connection is back in the pool: ``drain`` (the last step
            # before the engine is disposed) must not return while it is still in use.
            self._tracker.finished()
            if self._gate is not None:
                self._gate.release()
                if healthy:  # a failed turn is no sign that the queue moves
                    self._tracker.progressed()

    async def _drop(self) -> None:
        assert self._session is not None
        await self._session.invalidate()

    async def _release(self) -> None:
        assert self._session is not None
        try:
            await self._session.rollback()  # a no-op after commit
        finally:
            await self._session.close()

    async def commit(self) -> None:
        assert self._session is not None, "commit() outside 'async with'"
        await self._session.commit()


class SqlOneRead(_Unit):
    """A unit of work of one read statement (``ports.OneRead``): the hot reads on a
    pooled connection of their own, with no ORM session (no session object, no ORM
    execution, no identity map; about half of such a read's CPU, docs/performance.md).

    The statement runs in one hop into SQLAlchemy's synchronous core (``greenlet_spawn``):
    the connection taken from the pool, the statement run and the connection given back,
    where ``AsyncConnection`` makes a hop for each of the three. Its rows are read
    afterwards, from the cursor: an async driver's adapter fetches them all in the
    statement's own trip (``aiosqlite_driver``, ``asyncpg_driver``; SQLAlchemy's too, for a
    cursor that is not server-side), so nothing reads the connection again. A second
    statement is refused (``engine.NotOneRead``): two statements need one transaction for
    one snapshot. When the statement fails or is interrupted, the connection is still held
    at the unit's end, which gives it back or drops it."""

    sessions: SessionReads
    roles: RoleReads

    def __init__(self, engine: AsyncEngine, tracker: SqlUnitOfWorkFactory) -> None:
        self._engine = engine.sync_engine
        self._tracker = tracker
        self._connection: Connection | None = None
        self._ran = False

    async def __aenter__(self) -> Self:
        self._tracker.active += 1
        self._started = time.monotonic()
        self.sessions = SqlSessionReads(self)
        self.roles = SqlRoleReads(self)
        return self

    async def execute(
        self, statement: Executable, params: dict[str, Any], /
    ) -> Result[*tuple[Any, ...]]:
        """Run the unit's statement (its reads' ``RowSource``); its rows are in memory."""
        if self._ran:
            raise NotOneRead("a second statement in a unit of work opened for one")
        self._ran = True
        return await greenlet_spawn(self._run, statement, params)

    def _run(self, statement: Executable, params: dict[str, Any]) -> Result[Any]:
        connection = self._connection = self._engine.connect()
        rows = connection.execute(statement, params)
        connection.close()
        self._connection = None  # given back: nothing left for the unit's end
        return rows

    async def _drop(self) -> None:
        if self._connection is not None:
            await greenlet_spawn(self._connection.invalidate)

    async def _release(self) -> None:
        if self._connection is not None:
            await greenlet_spawn(self._connection.close)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._end(exc_type, exc)
        finally:
            self._connection = None
            self._tracker.finished()


class SqlUnitOfWorkFactory:
    """Makes units of work; write ones take SQLite's write lock when they begin."""

    def __init__(self, engine: AsyncEngine, timeout: float = 5.0) -> None:
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._one_statement = one_statement_reads(engine)
        self.timeout = timeout
        self.active = 0
        self._idle: asyncio.Event | None = None
        # SQLite has one writer at a time. Within a process, writers queue here, in
        # order, instead of all polling SQLite's lock: its busy handler sleeps and
        # retries, which under load let an unlucky writer wait past the timeout while
        # others went ahead. Across processes only one writer per worker then competes.
        self._sqlite = engine.dialect.name == "sqlite"
        self._gate: asyncio.Lock | None = None
        self._waiting: dict[asyncio.Timeout, float] = {}

    @overload
    def __call__(self, *, write: bool = False) -> SqlUnitOfWork: ...

    @overload
    def __call__(self, *, one_statement: Literal[True]) -> SqlOneRead: ...

    def __call__(
        self, *, write: bool = False, one_statement: bool = False
    ) -> SqlUnitOfWork | SqlOneRead:
        if write and one_statement:
            raise ValueError("a unit of work of one statement only reads")
        if one_statement:
            return SqlOneRead(self._one_statement, self)
        if write and self._sqlite:
            if self._gate is None:
                self._gate = asyncio.Lock()
            return SqlUnitOfWork(self._write, self, self._gate)
        return SqlUnitOfWork(self._write if write else self._read, self)

    async def take_turn(self, gate: asyncio.Lock) -> None:
        """Wait for this process's turn to write (first come, first served).

        Refused (``StorageUnavailable``) when no write has finished for ``timeout``
        seconds — the database is stuck — or after ``WRITE_QUEUE_PATIENCE`` timeouts in
        all. A long queue that keeps moving (many writers on a saturated machine) is not
        a stuck database: each finished write gives every waiter ``timeout`` more.
        """
        loop = asyncio.get_running_loop()
        cap = loop.time() + self.timeout * WRITE_QUEUE_PATIENCE
        try:
            async with asyncio.timeout(self.timeout) as turn:
                self._waiting[turn] = cap
                try:
                    await gate.acquire()
                finally:
                    del self._waiting[turn]
        except TimeoutError:
            log.warning("no turn to write within %.1f s", self.timeout)
            raise StorageUnavailable() from None

    def progressed(self) -> None:
        """A write finished well: the queue moves, so its waiters may wait longer."""
        if not self._waiting:
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        for turn, cap in self._waiting.items():
            if not turn.expired():  # one that fired is on its way out
                turn.reschedule(min(deadline, cap))

    def finished(self) -> None:
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, within: float) -> bool:
        """Wait until every unit of work has ended and given its connection back (before
        the engine is disposed); False on timeout."""
        if self.active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def _kind_of(error: sa_exc.StatementError) -> str:
    """``DataError/StringDataRightTruncationError``: what went wrong, without any values."""
    cause: BaseException | None = error.orig
    if isinstance(error, sa_exc.DBAPIError) and cause is not None:
        cause = error.driver_exception  # asyncpg's own class, not the adapter's
    return type(error).__name__ + (f"/{type(cause).__name__}" if cause is not None else "")


def is_unavailable(error: BaseException) -> bool:
    """Connection-level trouble (gone, refused, timed out, locked), not a bad statement."""
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
    return isinstance(
        error, (sa_exc.DisconnectionError, sa_exc.TimeoutError, OSError, TimeoutError)
    )
