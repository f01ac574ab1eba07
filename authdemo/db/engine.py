"""Engine construction: per-backend connection settings live here and nowhere else."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from ..config import DEFAULT_POOL
from ..tasks import finish_first

log = logging.getLogger("authdemo.db")

# Set on the engine used for write units of work; the SQLite "begin" hook reads it.
WRITE_OPTION = "authdemo_write"
# Set on the engine used for read units of work of one statement (``one_statement_reads``).
ONE_STATEMENT_OPTION = "authdemo_one_statement"
# Set on a PostgreSQL engine whose URL is a transaction pooler (``create_engine``).
POOLER_OPTION = "authdemo_pooler"
_RAN_ONE = "authdemo_ran_one"
# Set on a write statement whose outcome nobody reads (no rows, no id, no row count: an
# audit row, an outbox mail; an ``insert().inline()``, which PostgreSQL's dialect sends
# without its implicit ``RETURNING`` of the new id). Through authdemo's adapters it
# waits for the transaction's next statement or commit: on SQLite it runs in their trip
# to aiosqlite's thread (``aiosqlite_driver``), on PostgreSQL writes waiting together go
# as one statement (``asyncpg_driver``). Elsewhere it runs as any other.
DEFERRABLE = "authdemo_deferrable"


class NotOneRead(RuntimeError):
    """A transaction opened for one read (``one_statement_reads``) was asked to run a
    second statement, or one that is not a ``SELECT``: a programming error, refused
    before the database sees it (two statements need one transaction for one snapshot,
    and a write outside a transaction would commit at once)."""


def refuse_unless_first_select(ran: bool, statement: str) -> None:
    """``NotOneRead`` unless ``statement`` is a ``SELECT`` and the first of its read."""
    if ran:
        raise NotOneRead("a second statement in a transaction opened for one")
    if not statement.startswith("SELECT"):
        raise NotOneRead("a statement other than a SELECT run alone")


BULK_CACHE_KIB = 64 * 1024
BULK_MMAP_BYTES = 0x7FFF_0000
"""Read through a memory map up to SQLite's own ceiling (``SQLITE_MAX_MMAP_SIZE``, just
under 2 GiB): a million-row database is ~780 MB, and each page past a 256 MiB map was
read with a system call (a million-row purge read 5.5 GB through ``read()`` with that
map, 3.9 GB with this one)."""
BULK_CHECKPOINT_PAGES = 65536
"""WAL pages (256 MiB at SQLite's 4 KiB pages) a maintenance process writes before it
copies them back into the database file (SQLite's default: 1,000). Each deleted session
leaves a random page of the token-hash index, so the longer the WAL, the more of those
pages a checkpoint copies once for many deletes: a million-row purge wrote 40 GB to the
disk with a checkpoint every 64 MiB and 17 GB with one every 256 MiB (55 s → 47 to 51 s
for the purge alone; see the Performance page, row 7). The WAL file is cut back to
256 MiB after each."""
SERVING_WAL_LIMIT = 16 * 1024 * 1024
"""The size every connection but a bulk one cuts the WAL file back to when it starts it
over (SQLite's default: never). Without it, the file a purge grew to
``BULK_CHECKPOINT_PAGES`` kept its 256 MiB on the disk for as long as the server ran. A
server's own checkpoints (once a second, ``keep_checkpointing``; a CLI command's every
1,000 pages) keep the WAL far below that, so it is rarely cut back otherwise."""
CHECKPOINT_INTERVAL = 1.0
"""Seconds between a server's background WAL checkpoints (``keep_checkpointing``)."""
APPLICATION_NAME = "authdemo"
"""``application_name`` of every query connection (the listener's is ``authdemo-listen``)."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory databases and other backends."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_engine(
    url: str,
    *,
    timeout: float = 5.0,
    bulk: bool = False,
    background_checkpoints: bool = False,
    pool: int | None = DEFAULT_POOL,
    pooler: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine with our connection settings.

    SQLite (through aiosqlite, one trip to its thread per statement: ``aiosqlite_driver``):
    WAL, ``synchronous=FULL`` (an acknowledged logout survives a power cut),
    foreign keys on, a busy timeout, and write transactions that take the write lock
    at BEGIN (SQLAlchemy's documented pysqlite/aiosqlite transaction recipe) so that
    two writers never deadlock upgrading read locks into ``database is locked``.

    ``bulk`` (SQLite, for a short-lived maintenance process such as ``purge-expired``):
    a 64 MiB page cache and memory-mapped reads, which made deleting a million rows
    2-2.5x faster here (the token-hash index is keyed randomly, so each deleted row
    touches its own pages). Not for serving: a disk error on a mapped page kills the
    process with SIGBUS, which is harmless for a purge (it can be killed at any point)
    but not for a server. And a WAL checkpoint every 256 MiB instead of every 4 MiB
    (``BULK_CHECKPOINT_PAGES``).

    ``background_checkpoints`` (SQLite, for a server that runs ``keep_checkpointing``):
    no commit checkpoints. By SQLite's default the commit that takes the WAL past 1,000
    pages copies them back into the database file before it returns, so one request in
    a thousand pages paid for everybody's writes, and, while a purge ran in another
    process, nearly every write paid for the purge's.

    PostgreSQL: ``pool`` None is ``NullPool`` (a connection per unit of work: PgBouncer
    does the pooling), a number N keeps N and never more, ``DEFAULT_POOL`` is
    SQLAlchemy's default; a pooled connection is pinged as it leaves the pool, in one
    round trip (``asyncpg_driver``). ``pooler``: the URL is PgBouncer in transaction
    mode, where consecutive statements may run on different server connections; SQLAlchemy's
    documented settings for it: no prepared statement cache (asyncpg's nor the
    dialect's) and a unique name for each statement prepared, so that two clients never
    collide on ``__asyncpg_stmt_1__`` on one server connection.
    """
    # Errors never quote statement parameters (usernames, password and token hashes).
    kwargs.setdefault("hide_parameters", True)
    # No ROLLBACK when a connection goes back to the pool: every unit of work ends its
    # transaction itself (commit, or rollback in ``SqlUnitOfWork._close``; a cancelled
    # one invalidates its connection), and so does every ``Connection`` on close. The
    # pool's own reset was a second round trip to the database per transaction.
    kwargs.setdefault("pool_reset_on_return", None)
    if is_sqlite(url):
        one_trip = make_url(url).get_driver_name() == "aiosqlite" and "module" not in kwargs
        if one_trip:
            # One trip to aiosqlite's thread per statement, not four (see aiosqlite_driver);
            # imported here, so that a PostgreSQL deployment never loads aiosqlite.
            from . import aiosqlite_driver

            kwargs["module"] = aiosqlite_driver.adapter()
        engine = create_async_engine(url, connect_args={"timeout": timeout}, **kwargs)
        _configure_sqlite(engine, timeout, bulk, background_checkpoints, one_trip)
        return engine
    connect_args: dict[str, Any] = {
        "timeout": timeout,
        "command_timeout": timeout,
        "server_settings": {"application_name": APPLICATION_NAME},
    }
    if pooler:
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _statement_name
    ours = make_url(url).get_driver_name() == "asyncpg" and "module" not in kwargs
    if ours:
        # The pool's ping one round trip, not three, and deferrable writes sent together
        # (see asyncpg_driver); imported here, so that a SQLite deployment never loads
        # asyncpg.
        from . import asyncpg_driver

        kwargs["module"] = asyncpg_driver.adapter()
    if pool is None:
        kwargs.setdefault("poolclass", NullPool)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_timeout", timeout)
        if pool != DEFAULT_POOL:
            kwargs.setdefault("pool_size", pool)
            kwargs.setdefault("max_overflow", 0)
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if ours:
        _defer_deferrable(engine)
    if pooler:
        engine.sync_engine.update_execution_options(**{POOLER_OPTION: True})
    return engine


def one_statement_reads(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for read units of work that run exactly one statement, a ``SELECT``:
    such a statement is a transaction of its own, so it needs no ``BEGIN`` and no
    ``ROLLBACK`` where leaving them out saves work.

    - SQLite on authdemo's adapter: neither is sent (``OneTripConnection.alone``), one
      trip to aiosqlite's thread instead of two.
    - PostgreSQL: the statement runs in autocommit, one round trip instead of three.
      Not behind a transaction pooler (``create_engine(pooler=True)``): there asyncpg
      prepares and then executes a statement in two round trips, which only a
      transaction keeps on one server connection.

    Wherever the transaction is left out, a second statement in it, or one that is not
    a ``SELECT``, is refused (``NotOneRead``); elsewhere the reads are as any other."""
    options: dict[str, Any] = {ONE_STATEMENT_OPTION: True}
    if engine.dialect.name != "postgresql" or engine.get_execution_options().get(POOLER_OPTION):
        return engine.execution_options(**options)
    reads = engine.execution_options(isolation_level="AUTOCOMMIT", **options)

    @event.listens_for(reads.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.info[_RAN_ONE] = False

    @event.listens_for(reads.sync_engine, "before_cursor_execute")
    def _before_execute(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        refuse_unless_first_select(conn.info.get(_RAN_ONE, False), statement)
        conn.info[_RAN_ONE] = True

    return reads


def _defer_deferrable(engine: AsyncEngine) -> None:
    """Statements executed with ``DEFERRABLE`` wait on authdemo's adapters (SQLite's
    one-trip adapter, asyncpg's) for the transaction's next statement or commit."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before_execute(
        _conn: Connection,
        cursor: Any,
        _statement: str,
        _parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        # Never one that returns rows (a RETURNING, implicit or not): they are read. Nor
        # the driver's own SQL (no compiled form to tell).
        if (
            not executemany
            and context.execution_options.get(DEFERRABLE, False)
            and not getattr(context.compiled, "effective_returning", True)
        ):
            cursor.defer()


def _statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4()}__"


def _configure_sqlite(
    engine: AsyncEngine,
    timeout: float,
    bulk: bool = False,
    background_checkpoints: bool = False,
    one_trip: bool = False,
) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let us emit BEGIN ourselves (the driver's implicit BEGIN is always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if background_checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            if not bulk:
                cursor.execute(f"PRAGMA journal_size_limit={SERVING_WAL_LIMIT}")
            else:
                cursor.execute(f"PRAGMA cache_size={-BULK_CACHE_KIB}")
                cursor.execute(f"PRAGMA mmap_size={BULK_MMAP_BYTES}")
                cursor.execute(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
                cursor.execute(f"PRAGMA journal_size_limit={BULK_CHECKPOINT_PAGES * 4096}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writes take the write lock up front; reads get a plain BEGIN. (With
        # SQLAlchemy's own adapter, a read without BEGIN and ROLLBACK left its statement
        # open on the pooled connection, holding a stale WAL snapshot: the next write on
        # it failed at once with "database is locked", seen under two workers.) On the
        # one-trip adapter the BEGIN goes with the transaction's first statement, in its
        # trip (``OneTripConnection.begin_with_next``), and a read unit of work of one
        # statement gets none: that statement is a transaction of its own, its cursor
        # closed within its trip (``OneTripConnection.alone``).
        options = conn.get_execution_options()
        begin = "BEGIN IMMEDIATE" if options.get(WRITE_OPTION, False) else "BEGIN"
        if not one_trip:
            conn.exec_driver_sql(begin)
        elif options.get(ONE_STATEMENT_OPTION, False):
            conn.connection.dbapi_connection.alone()  # type: ignore[union-attr]
        else:
            conn.connection.dbapi_connection.begin_with_next(begin)  # type: ignore[union-attr]

    if one_trip:
        _defer_deferrable(engine)


async def checkpoint_wal(engine: AsyncEngine) -> tuple[int, int, int]:
    """One passive WAL checkpoint (SQLite): copy what no reader still needs back into the
    database file, without waiting for any lock. SQLite's answer: (busy, pages in the
    WAL, pages copied so far); busy is 1 when another checkpoint was running."""
    async with engine.connect() as conn:
        # Outside any transaction (a checkpoint cannot run inside one): the driver's own
        # connection, which our connect hook put in autocommit mode.
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        cursor = await raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
        try:
            busy, pages, copied = await cursor.fetchone()
        finally:
            await cursor.close()
    return int(busy), int(pages), int(copied)


async def keep_checkpointing(
    engine: AsyncEngine,
    interval: float = CHECKPOINT_INTERVAL,
    checkpoint: Callable[[AsyncEngine], Awaitable[object]] = checkpoint_wal,
) -> None:
    """A server's WAL checkpoints, every ``interval`` seconds, off the request path (its
    engine made with ``background_checkpoints``). Runs until cancelled; a checkpoint
    that fails is said once, and so is the first one that works again, and it goes on.
    Cancelled during a checkpoint, it lets that checkpoint finish first (``finish_first``)."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await finish_first(checkpoint(engine))
        except Exception as error:  # the database may be away for a while: go on
            if not failing:
                log.warning("WAL checkpoint failed (will retry every %.0f s): %r", interval, error)
            failing = True
            continue
        if failing:
            log.info("WAL checkpoints work again")
        failing = False
