"""SQLAlchemy's asyncpg adapter: its pool ping one round trip instead of three, and
writes nobody reads the outcome of sent together.

A pooled PostgreSQL engine pings each connection as it leaves the pool
(``pool_pre_ping``), so that a connection the server or the network dropped while it
sat there is replaced before a unit of work fails on it. SQLAlchemy's adapter
(``sqlalchemy.dialects.postgresql.asyncpg``, 2.1) pings in a transaction of its own:
``BEGIN``, an empty prepared statement, ``ROLLBACK``, three round trips to the server
before the unit of work's own first statement (the transaction is there for PgBouncer's
transaction mode, SQLAlchemy issue 10226: asyncpg prepares a statement and runs it in
two messages, which the pooler may give to two server connections).

Here the ping is one ``SELECT 1`` in PostgreSQL's simple query protocol
(``asyncpg.Connection.execute`` without arguments): one message, one round trip, nothing
prepared, so it is one transaction to PgBouncer too. A ping that fails goes through the
adapter's error handling as before, and a connection found closed is replaced by the
pool as before (``is_disconnect``). Everything else is SQLAlchemy's adapter as it is;
the engine is given this one as its DBAPI module (``create_async_engine(...,
module=adapter())``, SQLAlchemy's documented override), as ``aiosqlite_driver`` does for
SQLite.

A write executed with the ``engine.DEFERRABLE`` option (an audit row, an outbox mail:
an ``INSERT`` whose outcome nobody reads) waits on the connection until the
transaction's next statement or its commit, and is sent just before it; writes waiting
together are sent as one statement, all but the last as data-modifying ``WITH``
clauses (``WITH d0 AS (INSERT …) INSERT …``), one round trip instead of one each.
PostgreSQL runs every clause exactly once, in the statement's snapshot; the clauses
insert into tables no other clause reads, so no clause needs another's rows, and the
next statement, sent after them, sees them all. A failure is raised at that next
statement or the commit, as a ``DatabaseError`` naming it unless it is the
connection's own trouble, never as the next statement's ``IntegrityError``; the
transaction cannot commit after it. A rollback discards what waits. In autocommit
nothing waits (there is no transaction to carry it).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, cast

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_cursor,
    AsyncAdapt_asyncpg_dbapi,
)
from sqlalchemy.util.concurrency import await_

PING = "SELECT 1"
_PARAMETER = re.compile(r"\$(\d+)")

Deferred = list[tuple[str, tuple[Any, ...]]]


def _combinable(operation: str) -> bool:
    """An ``INSERT`` with no quoted text or clause of its own, whose ``$n`` are all
    parameters (what SQLAlchemy compiles for ``insert(table)`` with values)."""
    return operation.startswith("INSERT ") and "'" not in operation and "$$" not in operation


def _shifted(operation: str, offset: int) -> str:
    """``operation`` with its ``$n`` renumbered after ``offset`` earlier parameters."""
    if not offset:
        return operation
    return _PARAMETER.sub(lambda found: f"${int(found.group(1)) + offset}", operation)


def combined(deferred: Deferred) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements to send for ``deferred``, in order: writes into different tables
    as one statement, each after the first a ``WITH`` clause. PostgreSQL runs a
    statement's clauses in no set order, so two writes into one table go in statements
    of their own, in the order they were made (their ids keep that order)."""
    if not all(_combinable(operation) for operation, _ in deferred):
        return list(deferred)
    statements: list[tuple[str, tuple[Any, ...]]] = []
    group: Deferred = []
    for write in deferred:
        if _table_of(write[0]) in {_table_of(operation) for operation, _ in group}:
            statements.append(_one_statement(group))
            group = []
        group.append(write)
    statements.append(_one_statement(group))
    return statements


def _table_of(operation: str) -> str:
    return operation.split(maxsplit=3)[2]  # INSERT INTO <table> ...


def _one_statement(group: Deferred) -> tuple[str, tuple[Any, ...]]:
    if len(group) == 1:
        return group[0]
    clauses: list[str] = []
    parameters: list[Any] = []
    for operation, values in group:
        clauses.append(_shifted(operation, len(parameters)))
        parameters.extend(values)
    *first, last = clauses
    withs = ", ".join(f"authdemo_deferred_{i} AS ({clause})" for i, clause in enumerate(first))
    return f"WITH {withs} {last}", tuple(parameters)


class DeferringCursor(AsyncAdapt_asyncpg_cursor):
    """SQLAlchemy's asyncpg cursor; a deferrable statement waits on its connection."""

    __slots__ = ("_defer",)

    def __init__(self, adapt_connection: AsyncAdapt_asyncpg_connection) -> None:
        super().__init__(adapt_connection)
        self._defer = False

    def defer(self) -> None:
        """This cursor's statement (one, no rows back) waits for the transaction's next
        statement or its commit (see the module's docstring)."""
        self._defer = True

    async def _prepare_and_execute(self, operation: Any, parameters: Any) -> None:
        adapted: Any = self._adapt_connection
        if self._defer and adapted.isolation_level != "autocommit":
            adapted._deferred.append((operation, tuple(parameters or ())))
            self._description, self._rowcount, self._rows = None, -1, deque()
            return
        if adapted._deferred:
            await adapted._send_deferred()
        await super()._prepare_and_execute(operation, parameters)  # type: ignore[no-untyped-call]

    async def _executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        adapted: Any = self._adapt_connection
        if adapted._deferred:
            await adapted._send_deferred()
        return await super()._executemany(operation, seq_of_parameters)  # type: ignore[no-untyped-call]


class OneTripPingConnection(AsyncAdapt_asyncpg_connection):
    """SQLAlchemy's asyncpg connection, pinged with one simple-protocol ``SELECT 1``,
    its deferrable writes sent together (see the module's docstring)."""

    __slots__ = ("_deferred", "_doomed")
    _cursor_cls = DeferringCursor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._deferred: Deferred = []  # writes waiting for the next statement or commit
        self._doomed: Exception | None = None  # one of them failed

    async def _async_ping(self) -> None:
        await cast(asyncpg.Connection, self._connection).execute(PING)

    async def _send_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        try:
            for operation, parameters in combined(deferred):
                await AsyncAdapt_asyncpg_cursor(self)._prepare_and_execute(  # type: ignore[no-untyped-call]
                    operation, parameters
                )
        except self.dbapi.Error as error:
            if not isinstance(error, (self.dbapi.OperationalError, self.dbapi.InterfaceError)):
                # Never the next statement's error class (a repository catching its
                # IntegrityError must not take an earlier write's for it).
                error = self.dbapi.DatabaseError(
                    f"a write deferred to this statement failed: {error}", error
                )
            self._doomed = error
            raise error from None

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and self._deferred:
            await_(self._send_deferred())  # a server-side cursor runs no deferred write
        return super().cursor(server_side)

    def commit(self) -> None:
        try:
            if self._deferred:
                await_(self._send_deferred())
            if self._doomed is not None:
                # Never a commit without a write the transaction made (the caller went
                # on after its failure: caught it, say). PostgreSQL would answer COMMIT
                # with a silent ROLLBACK; it is said here.
                raise self._doomed
        except Exception:
            # SQLAlchemy counts a failed commit as the end of the transaction and sends
            # no rollback after it: roll back here, so nothing stays open or aborted.
            # (Not when cancelled: the unit of work drops the connection instead of
            # waiting on it.)
            self.rollback()
            raise
        super().commit()  # type: ignore[no-untyped-call]

    def rollback(self) -> None:
        self._deferred = []  # never sent: nothing of them to undo
        self._doomed = None
        super().rollback()  # type: ignore[no-untyped-call]


class OneTripPingDbapi(AsyncAdapt_asyncpg_dbapi):
    """SQLAlchemy's asyncpg DBAPI adapter, its connections ``OneTripPingConnection``s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripPingConnection:
        settings = {
            "prepared_statement_cache_size": kw.get("prepared_statement_cache_size", 100),
            "prepared_statement_name_func": kw.get("prepared_statement_name_func"),
        }
        adapted = super().connect(*arg, **kw)  # type: ignore[no-untyped-call]
        return OneTripPingConnection(self, adapted._connection, **settings)


def adapter() -> OneTripPingDbapi:
    """The DBAPI module to give a ``postgresql+asyncpg`` engine (``module=adapter()``)."""
    return OneTripPingDbapi(asyncpg)  # type: ignore[no-untyped-call]
