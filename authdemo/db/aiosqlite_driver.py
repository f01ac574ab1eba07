"""SQLAlchemy's aiosqlite adapter, one trip to aiosqlite's thread per statement.

aiosqlite runs every SQLite call in a thread of its own: each call is a trip there and
back (a queued function, a future, a wake-up of the event loop). SQLAlchemy's adapter
(``sqlalchemy.dialects.sqlite.aiosqlite``, 2.1) makes three or four of them for every
statement: open a cursor, execute, fetch the rows (when it returns any), close the
cursor. Here they run as one function in that thread, and the cursor SQLAlchemy holds
keeps what it needs from them (the rows, ``description``, ``rowcount``, ``lastrowid``).
Same SQL, same connection, same transaction; only the trips are fewer
(``python -m bench.sql_overhead`` measures both adapters).

A transaction's ``BEGIN`` rides in the trip of its first statement
(``OneTripConnection.begin_with_next``): a read unit of work (``BEGIN``, a ``SELECT``,
``ROLLBACK``) is two trips, not three, and a write's ``BEGIN IMMEDIATE`` still takes
SQLite's write lock before its first statement runs. A transaction that runs no
statement never reaches SQLite: its commit or rollback is no trip either.

A read unit of work that runs one statement only (``OneTripConnection.alone``) sends
no ``BEGIN`` and no ``ROLLBACK`` at all: a single statement is a transaction of its own
in SQLite (one snapshot, its cursor closed in the same trip, so nothing stays open on the
pooled connection), so the read is one trip, not two. Only a ``SELECT`` runs so (a
write would commit at once), and a second statement in that transaction is refused
instead of running in a snapshot of its own (``engine.NotOneRead``, before SQLite sees
it). (``PRAGMA query_only`` around the statement would have said "cannot write" in SQLite's
own terms, but switching it expires every statement SQLite has prepared on the
connection: each one is parsed again the next time it runs.)

Everything else is SQLAlchemy's adapter as it is: the dialect (``sqlite+aiosqlite``),
its connection (commit, rollback, close, isolation level), server-side cursors
(``stream()``), error translation. The engine is given this adapter as its DBAPI module
(``create_async_engine(..., module=adapter())``, SQLAlchemy's documented override).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

from .engine import refuse_unless_first_select

Outcome = tuple[Any, int, int | None, list[Any]]


# What a connection's transaction is, as far as running statements alone goes.
_USUAL = 0  # a transaction as SQLAlchemy knows it (with a BEGIN, sent or pending)
_NEXT_ALONE = 1  # its one statement, a SELECT, runs alone (autocommit)
_RAN_ALONE = 2  # that statement ran: nothing is open, and no other may run


class _NotBegun(Exception):
    """The transaction's ``BEGIN`` failed in the thread (``args[0]``, sqlite3's error):
    nothing was opened, and the statement did not run."""


def _run(
    connection: sqlite3.Connection,
    operation: str,
    parameters: Any,
    many: bool = False,
    begin: str | None = None,
) -> Outcome:
    """In aiosqlite's thread: the transaction's ``begin`` first when this statement is
    its first, then the whole statement, its cursor closed before it returns (no
    statement is left open on the connection, holding a read snapshot)."""
    if begin is not None:
        try:
            connection.execute(begin).close()
        except sqlite3.Error as error:
            raise _NotBegun(error) from error
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose ``execute`` is one trip to the thread: it holds no aiosqlite
    cursor, only what the statement returned."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No cursor is opened here (SQLAlchemy's opens one: a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1  # DBAPI's default, as sqlite3's

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize  # what fetchmany() takes from the rows already fetched

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        pass  # closed in the thread already

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> None:
        try:
            await_(self._trip(operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        try:
            await_(self._trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, operation: Any, parameters: Any, many: bool = False) -> None:
        driver: Any = self._connection
        adapted: Any = self._adapt_connection
        async with adapted._execute_mutex:
            if adapted._alone:
                refuse_unless_first_select(adapted._alone == _RAN_ALONE, operation)
                adapted._alone = _RAN_ALONE
            begin, adapted._begin = adapted._begin, None
            try:
                outcome: Outcome = await driver._execute(
                    _run, driver._conn, operation, parameters, many, begin
                )
            except _NotBegun as refused:
                # The write lock not had within the busy timeout, say: nothing is open,
                # so the next statement begins the transaction again (as SQLAlchemy's
                # own BEGIN, failed, would be sent again), never runs outside one.
                adapted._begin = begin
                raise refused.args[0] from None
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = deque(rows)

    def nextset(self) -> None:
        raise NotImplementedError("SQLite has one result set per statement")

    def setinputsizes(self, *inputsizes: Any) -> None:
        pass  # a no-op in sqlite3 too


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_alone", "_begin")
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None
        self._alone = _USUAL

    def begin_with_next(self, begin: str) -> None:
        """Open the transaction with ``begin`` (``BEGIN`` or ``BEGIN IMMEDIATE``) in
        the same trip as its first statement, instead of a trip of its own."""
        self._begin = begin

    def alone(self) -> None:
        """This transaction runs one read statement: no ``BEGIN``, no ``ROLLBACK``, the
        statement a transaction of its own (see the module's docstring)."""
        self._alone = _NEXT_ALONE

    def _never_begun(self) -> bool:
        """No BEGIN reached SQLite since the transaction began (no statement ran, or one
        ran alone): there is nothing to commit or roll back (and an unsent BEGIN must not
        open the next transaction)."""
        unsent, self._begin = self._begin, None
        alone, self._alone = self._alone, _USUAL
        return unsent is not None or alone != _USUAL

    def commit(self) -> None:
        if not self._never_begun():
            super().commit()

    def rollback(self) -> None:
        if not self._never_begun():
            super().rollback()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI adapter, its connections making ``OneTripCursor``s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def adapter() -> OneTripDbapi:
    """The DBAPI module to give an ``sqlite+aiosqlite`` engine (``module=adapter()``)."""
    return OneTripDbapi(aiosqlite, sqlite3)
