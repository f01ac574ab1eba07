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

A write whose outcome nobody reads (an audit row, a mail for the outbox: an ``INSERT``
executed with the ``engine.DEFERRABLE`` option) rides in the trip of the
transaction's next statement or of its ``COMMIT`` (``OneTripCursor.defer``), run before
it in the same transaction: one trip fewer, the same rows in the same order, and any
later statement of the transaction sees it. Its failure is that next statement's (or
the commit's); a failure that is not the database's own trouble (locked, I/O) is
raised as a plain ``DatabaseError`` naming it, never as the later statement's
``IntegrityError``, which a repository may catch and answer (a taken address, say).
A transaction whose deferred write failed cannot commit. A rollback discards what has
not run yet.

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


class _DeferredFailed(Exception):
    """A deferred write failed in the thread (``args[0]``, sqlite3's error): the
    statement it rode with did not run, and the transaction cannot commit."""


Deferred = list[tuple[str, Any]]


def _deferred_error(failed: _DeferredFailed) -> sqlite3.Error:
    """What a deferred write's failure is raised as. The database's own trouble (locked,
    I/O, gone) as itself: the unit of work is answered as "storage unavailable", as at
    the write's own statement. Anything else as a ``DatabaseError`` naming it, never as
    the error class of the statement it rode with (a repository catching that
    statement's ``IntegrityError`` must not take an earlier write's for it)."""
    error: sqlite3.Error = failed.args[0]
    if isinstance(error, sqlite3.OperationalError):
        return error
    return sqlite3.DatabaseError(f"a write deferred to this statement failed: {error}")


def _catch_up(connection: sqlite3.Connection, begin: str | None, deferred: Deferred) -> None:
    """In aiosqlite's thread: the transaction's ``begin`` when none of its statements
    has run yet, then the writes deferred so far."""
    if begin is not None:
        try:
            connection.execute(begin).close()
        except sqlite3.Error as error:
            raise _NotBegun(error) from error
    for operation, parameters in deferred:
        try:
            connection.execute(operation, parameters).close()
        except sqlite3.Error as error:
            raise _DeferredFailed(error) from error


def _commit(connection: sqlite3.Connection, begin: str | None, deferred: Deferred) -> None:
    """In aiosqlite's thread: what waits for the commit, then the commit. A commit that
    fails leaves nothing open: SQLAlchemy counts a failed commit as the transaction's end
    (it sends no rollback after it), and the connection goes back to the pool."""
    try:
        _catch_up(connection, begin, deferred)
        connection.commit()
    except BaseException:
        if connection.in_transaction:
            connection.rollback()
        raise


def _run(
    connection: sqlite3.Connection,
    operation: str,
    parameters: Any,
    many: bool = False,
    begin: str | None = None,
    deferred: Deferred | None = None,
) -> Outcome:
    """In aiosqlite's thread: the transaction's ``begin`` first when this statement is
    its first, the writes deferred to it next, then the whole statement, its cursor
    closed before it returns (no statement is left open on the connection, holding a
    read snapshot)."""
    if begin is not None or deferred:
        _catch_up(connection, begin, deferred or [])
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

    __slots__ = ("_arraysize", "_defer", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No cursor is opened here (SQLAlchemy's opens one: a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1  # DBAPI's default, as sqlite3's
        self._defer = False

    def defer(self) -> None:
        """This cursor's statement (one, no rows back) rides in the trip of the
        transaction's next statement or its commit (see the module's docstring)."""
        self._defer = True

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
            if self._defer and not many:
                adapted._deferred.append((operation, parameters))
                self._description, self._rowcount, self._lastrowid = None, -1, None
                self._rows = deque()
                return
            begin, deferred = adapted._take_pending()
            try:
                outcome: Outcome = await driver._execute(
                    _run, driver._conn, operation, parameters, many, begin, deferred
                )
            except _NotBegun as refused:
                adapted._put_back(begin, deferred)
                raise refused.args[0] from None
            except _DeferredFailed as failed:
                raise adapted._doom(failed) from None
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = deque(rows)

    def nextset(self) -> None:
        raise NotImplementedError("SQLite has one result set per statement")

    def setinputsizes(self, *inputsizes: Any) -> None:
        pass  # a no-op in sqlite3 too


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_alone", "_begin", "_deferred", "_doomed")
    _cursor_cls: type[AsyncAdapt_aiosqlite_cursor] = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None
        self._alone = _USUAL
        self._deferred: Deferred = []  # writes waiting for the next trip
        self._doomed: sqlite3.Error | None = None  # a deferred write failed

    def _take_pending(self) -> tuple[str | None, Deferred]:
        """What the next trip runs before its own work: the unsent ``BEGIN``, the
        deferred writes."""
        begin, self._begin = self._begin, None
        deferred, self._deferred = self._deferred, []
        return begin, deferred

    def _put_back(self, begin: str | None, deferred: Deferred) -> None:
        """The trip's ``BEGIN`` was refused (the write lock not had within the busy
        timeout, say): nothing is open, so the next statement begins the transaction
        again (as SQLAlchemy's own BEGIN, failed, would be sent again), never runs
        outside one, and the deferred writes, which did not run, wait for it."""
        self._begin = begin
        self._deferred = deferred + self._deferred

    def _doom(self, failed: _DeferredFailed) -> sqlite3.Error:
        """A deferred write failed in a statement's trip: the transaction stays open
        (SQLAlchemy's to end) but can no longer commit."""
        self._doomed = _deferred_error(failed)
        return self._doomed

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and self._deferred:
            # A server-side cursor executes outside the one-trip path: what waits goes
            # first, in a trip of its own.
            begin, deferred = self._take_pending()
            driver: Any = self._connection
            try:
                await_(driver._execute(_catch_up, driver._conn, begin, deferred))
            except _NotBegun as refused:
                self._put_back(begin, deferred)
                self._handle_exception(refused.args[0])
            except _DeferredFailed as failed:
                self._handle_exception(self._doom(failed))
            except Exception as error:
                self._handle_exception(error)
        return super().cursor(server_side)

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
        deferred, self._deferred = self._deferred, []
        doomed, self._doomed = self._doomed, None
        if doomed is not None:
            # Never a commit without a write the transaction made (the caller went on
            # after its failure: caught it, say). Rolled back here: SQLAlchemy counts a
            # failed commit as the end of the transaction and sends no rollback after it.
            self.rollback()
            self._handle_exception(doomed)
        if not deferred:
            if not self._never_begun():
                super().commit()
            return
        begin, self._begin = self._begin, None
        self._alone = _USUAL
        driver: Any = self._connection
        try:
            await_(driver._execute(_commit, driver._conn, begin, deferred))
        except _DeferredFailed as failed:
            self._handle_exception(_deferred_error(failed))  # rolled back in the thread
        except _NotBegun as refused:
            self._handle_exception(refused.args[0])
        except Exception as error:
            self._handle_exception(error)

    def rollback(self) -> None:
        self._deferred = []  # never ran: nothing of them to undo
        self._doomed = None
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
