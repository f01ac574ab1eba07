"""authdemo's aiosqlite adapter: a statement is one trip to aiosqlite's thread, and
SQLAlchemy gets from it everything it got from its own adapter (rows, row counts, the
last row id, errors translated, server-side cursors). SQLite only."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db import aiosqlite_driver
from authdemo.db.aiosqlite_driver import OneTripCursor
from authdemo.db.engine import (
    DEFERRABLE,
    WRITE_OPTION,
    NotOneRead,
    create_engine,
    one_statement_reads,
)
from tests.conftest import cheap_hasher
from tests.integration.test_statement_cache import PASSWORD, one_cycle
from tests.support.db import copy_database, sqlite_url

META = MetaData()
THINGS = Table(
    "things",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every function sent to an aiosqlite thread, by name, from now on."""
    sent: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url(tmp_path / "things.db"))
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_the_engine_uses_the_one_trip_cursor(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneTripCursor)


async def in_transaction(conn: AsyncConnection) -> bool:
    """Whether SQLite itself has a transaction open on this connection (asked in its
    thread, where sqlite3 wants it asked)."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    return bool(await driver._execute(lambda raw: raw.in_transaction, driver._conn))


@pytest.fixture
def begins(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The ``begin`` each statement's trip carried (None: the transaction was open;
    "outside": none was, nor begun: the statement ran as a transaction of its own)."""
    carried: list[str | None] = []
    real = aiosqlite_driver._run

    @functools.wraps(real)  # still "_run" to ``trips``
    def recorded(*args: Any) -> Any:
        # _run(connection, operation, parameters, many, begin), in aiosqlite's thread
        carried.append(args[4] or (None if args[0].in_transaction else "outside"))
        return real(*args)

    monkeypatch.setattr(aiosqlite_driver, "_run", recorded)
    return carried


async def test_a_read_transaction_is_two_trips(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.connect() as conn:  # the pool holds the connection: no trip to open it
        await conn.rollback()
    trips.clear()
    async with engine.connect() as conn:
        assert (await conn.execute(select(THINGS))).all() == []
        assert trips == ["_run"]  # BEGIN and the SELECT, in one trip
        assert await in_transaction(conn)  # ...and the SELECT ran inside the transaction
        trips.clear()
        await conn.rollback()
    # SQLAlchemy's own adapter made eight (cursor, execute, [fetch,] close for BEGIN,
    # the SELECT and ROLLBACK); a trip for BEGIN, one for the statement and one for the
    # ROLLBACK made three.
    assert trips == ["rollback"]


async def test_the_begin_goes_with_the_first_statement_only(
    engine: AsyncEngine, begins: list[str | None]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(select(THINGS))
        await conn.execute(select(THINGS.c.id))
        await conn.rollback()
        writing = await conn.execution_options(**{WRITE_OPTION: True})
        await writing.execute(insert(THINGS).values(name="a"))
        await writing.execute(insert(THINGS).values(name="b"))
        await writing.commit()
    assert begins == ["BEGIN", None, "BEGIN IMMEDIATE", None]
    async with engine.connect() as conn:  # committed, in one transaction
        assert (await conn.execute(select(THINGS.c.name))).scalars().all() == ["a", "b"]


async def test_a_transaction_that_runs_nothing_costs_no_trip(
    engine: AsyncEngine, trips: list[str], begins: list[str | None]
) -> None:
    async with engine.connect() as conn:
        await conn.rollback()
    trips.clear()
    async with engine.begin():
        pass
    async with engine.connect() as conn:
        await conn.begin()
        await conn.rollback()
    assert trips == []
    # ...and its BEGIN does not linger: not for the next transaction on the connection,
    # nor for a statement sent on the driver's cursor outside any transaction.
    async with engine.connect() as conn:
        await conn.execute(select(THINGS))
        await conn.rollback()
        await conn.begin()
        await conn.commit()
        cursor = (await conn.get_raw_connection()).dbapi_connection.cursor()
        await conn.run_sync(lambda _: cursor.execute("SELECT 1"))
        cursor.close()
        assert not await in_transaction(conn)
    assert begins == ["BEGIN", "outside"]  # the driver's statement: no BEGIN with it


async def test_a_read_of_one_statement_is_one_trip_and_leaves_nothing_open(
    engine: AsyncEngine, trips: list[str], begins: list[str | None]
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(THINGS).values(name="a"))
    trips.clear()
    begins.clear()
    async with one_statement_reads(engine).connect() as conn:
        assert (await conn.execute(select(THINGS.c.name))).scalars().all() == ["a"]
        assert trips == ["_run"]
        assert not await in_transaction(conn)  # no BEGIN: nothing holds a snapshot
        trips.clear()
        await conn.rollback()
    assert trips == []  # no ROLLBACK went to SQLite
    assert begins == ["outside"]
    # The connection's next transaction, back from the pool, is an ordinary one.
    async with engine.connect() as conn:
        await conn.execute(select(THINGS))
        assert await in_transaction(conn)
        await conn.rollback()
    assert begins == ["outside", "BEGIN"]


async def test_a_second_statement_in_a_read_of_one_is_refused(
    engine: AsyncEngine, begins: list[str | None]
) -> None:
    async with one_statement_reads(engine).connect() as conn:
        await conn.execute(select(THINGS))
        # Two statements need one snapshot, so one BEGIN: never two transactions of their own.
        with pytest.raises(NotOneRead):
            await conn.execute(select(THINGS.c.id))
        await conn.rollback()
        await conn.execute(select(THINGS))  # a new transaction: one statement again
        await conn.rollback()
    assert begins == ["outside", "outside"]


async def test_a_read_of_one_statement_cannot_write(engine: AsyncEngine) -> None:
    async with one_statement_reads(engine).connect() as conn:
        with pytest.raises(NotOneRead, match="other than a SELECT"):
            await conn.execute(insert(THINGS).values(name="a"))  # would commit at once
        await conn.rollback()
    # Refused before SQLite saw it; the connection (the pool's one) writes as before.
    async with engine.begin() as conn:
        await conn.execute(insert(THINGS).values(name="b"))
    async with engine.connect() as conn:
        assert (await conn.execute(select(THINGS.c.name))).scalars().all() == ["b"]


async def test_a_failed_statement_alone_leaves_the_connection_as_it_was(
    engine: AsyncEngine, begins: list[str | None]
) -> None:
    async with one_statement_reads(engine).connect() as conn:
        with pytest.raises(sa_exc.OperationalError):
            await conn.execute(sql_text("SELECT * FROM no_such_table"))
        await conn.rollback()
    async with engine.connect() as conn:
        await conn.execute(insert(THINGS).values(name="a"))
        assert await in_transaction(conn)
        await conn.commit()
    assert begins == ["outside", "BEGIN"]


async def test_a_begin_refused_by_the_lock_opens_nothing(tmp_path: Path) -> None:
    """A write's BEGIN IMMEDIATE that cannot have the write lock within the busy
    timeout fails its first statement ("database is locked") and leaves no transaction
    open; the next statement begins again, so none runs outside a transaction, and the
    next transaction on the same connection takes the lock as it should."""
    path = tmp_path / "locked.db"
    engine = create_engine(sqlite_url(path), timeout=0.2)
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's writer
        async with engine.connect() as conn:
            writing = await conn.execution_options(**{WRITE_OPTION: True})
            with pytest.raises(sa_exc.OperationalError, match="locked"):
                await writing.execute(insert(THINGS).values(name="a"))
            assert not await in_transaction(conn)
            with pytest.raises(sa_exc.OperationalError, match="locked"):  # not autocommitted
                await writing.execute(insert(THINGS).values(name="b"))
            holder.execute("ROLLBACK")
            await writing.execute(insert(THINGS).values(name="c"))  # begins, then inserts
            assert await in_transaction(conn)
            await writing.rollback()
            await writing.execute(insert(THINGS).values(name="d"))  # a transaction of its own
            assert await in_transaction(conn)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                holder.execute("BEGIN IMMEDIATE")  # the lock is ours now
            await writing.commit()
        rows = holder.execute("SELECT name FROM things").fetchall()
        assert rows == [("d",)]
    finally:
        holder.close()
        await engine.dispose()


async def test_a_sign_in_cycle_makes_one_trip_per_statement(
    tmp_path: Path, migrated_template: Path, trips: list[str], begins: list[str | None]
) -> None:
    settings = Settings(database_url=copy_database(migrated_template, tmp_path / "cycle.db"))
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        await rt.service.create_user("alice", PASSWORD)
        await one_cycle(rt.service)  # the pool's connection opened, statements compiled
        statements = transactions = deferred = 0

        def count(*args: Any) -> None:
            nonlocal statements, deferred
            statements += 1
            deferred += bool(args[4].execution_options.get(DEFERRABLE, False))

        def began(*_: Any) -> None:
            nonlocal transactions
            transactions += 1

        event.listen(rt.engine.sync_engine, "before_cursor_execute", count)
        event.listen(rt.engine.sync_engine, "begin", began)
        trips.clear()
        begins.clear()
        try:
            await one_cycle(rt.service)
            await rt.service.live_session(1)  # a view's re-read: one statement
        finally:
            event.remove(rt.engine.sync_engine, "before_cursor_execute", count)
            event.remove(rt.engine.sync_engine, "begin", began)
        cycle = list(trips)  # not the engine's disposal below
    ran = [name for name in cycle if name == "_run"]
    ended = [name for name in cycle if name in ("commit", "_commit", "rollback")]
    alone = begins.count("outside")
    assert statements > 10 and transactions > 3
    # One trip per statement, except the audit rows, which went with the statement or
    # commit after them; the transactions' BEGINs went with their first statements.
    assert deferred >= 2  # the sign-in's audit row and the sign-out's
    assert len(ran) == statements - deferred
    assert len(cycle) == len(ran) + len(ended), " ".join(cycle)
    # A commit or rollback for each transaction, except the reads of one statement.
    assert alone == 1  # the re-read (the cycle's own look-ups were cached)
    assert len(ended) == transactions - alone


async def test_rows_counts_and_ids_come_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        added = await conn.execute(insert(THINGS).values(name="a"))
        assert added.lastrowid == 1 and added.rowcount == 1
        many = await conn.execute(insert(THINGS), [{"name": "b"}, {"name": "c"}])
        assert many.rowcount == 2
        returned = await conn.execute(insert(THINGS).values(name="d").returning(THINGS.c.id))
        assert returned.scalar_one() == 4
        changed = await conn.execute(
            update(THINGS).where(THINGS.c.id > 2).values(name="x" + THINGS.c.name)
        )
        assert changed.rowcount == 2
        nothing = await conn.execute(update(THINGS).where(THINGS.c.id > 99).values(name="y"))
        assert nothing.rowcount == 0
        gone = await conn.execute(delete(THINGS).where(THINGS.c.id >= 3).returning(THINGS.c.name))
        assert sorted(gone.scalars().all()) == ["xc", "xd"]
        assert (
            await conn.execute(select(THINGS.c.name).order_by(THINGS.c.id))
        ).scalars().all() == [
            "a",
            "b",
        ]
        first = (await conn.execute(select(THINGS).order_by(THINGS.c.id))).first()
        assert first is not None and first.name == "a"
        assert (await conn.execute(sql_text("SELECT 1 WHERE 0"))).all() == []


async def test_fetchmany_takes_arraysize(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        cursor = raw.dbapi_connection.cursor()
        await conn.run_sync(
            lambda _: cursor.execute("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3")
        )
        assert cursor.fetchmany() == [(1,)]
        cursor.arraysize = 5
        assert cursor.fetchmany() == [(2,), (3,)]
        cursor.close()
        await conn.rollback()


async def test_server_side_cursors_still_stream(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(THINGS), [{"name": f"n{i}"} for i in range(50)])
    async with engine.connect() as conn:
        result = await conn.stream(select(THINGS.c.name).order_by(THINGS.c.id))
        names = [name async for (name,) in result]
    assert names == [f"n{i}" for i in range(50)]


async def test_errors_are_translated_and_the_connection_goes_on(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(insert(THINGS).values(name="a"))
        with pytest.raises(sa_exc.IntegrityError):
            await conn.execute(insert(THINGS).values(name="a"))
        await conn.rollback()
        with pytest.raises(sa_exc.OperationalError):
            await conn.execute(sql_text("SELECT * FROM no_such_table"))
        await conn.rollback()
        with pytest.raises(sa_exc.IntegrityError):
            await conn.execute(insert(THINGS), [{"name": "b"}, {"name": "b"}])
        await conn.rollback()
        assert (await conn.execute(select(THINGS))).all() == []


async def test_a_closed_connection_says_so(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.close()  # type: ignore[union-attr]
        with pytest.raises(sa_exc.DBAPIError):
            await conn.execute(select(THINGS))
        await conn.invalidate()


def deferrable(name: str) -> Any:
    """An INSERT whose outcome nobody reads, as the audit and outbox repositories send."""
    return insert(THINGS).inline().values(name=name).execution_options(**{DEFERRABLE: True})


async def names_in(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(THINGS.c.name).order_by(THINGS.c.id))).scalars())


async def test_a_deferred_write_rides_the_next_statements_trip(
    engine: AsyncEngine, trips: list[str], begins: list[str | None]
) -> None:
    async with engine.connect() as conn:
        await conn.rollback()
        trips.clear()
        writing = await conn.execution_options(**{WRITE_OPTION: True})
        await writing.execute(deferrable("a"))
        assert trips == []  # waits
        # The next statement sees it: it ran first, in the same transaction and trip.
        assert (await writing.execute(select(THINGS.c.name))).scalars().all() == ["a"]
        assert trips == ["_run"] and begins == ["BEGIN IMMEDIATE"]
        await writing.execute(deferrable("b"))
        await writing.execute(deferrable("c"))
        await writing.commit()
        assert trips == ["_run", "_commit"]  # both with the commit, in its trip
    assert await names_in(engine) == ["a", "b", "c"]


async def test_a_transaction_of_deferred_writes_only_is_one_trip(
    engine: AsyncEngine, trips: list[str], tmp_path: Path
) -> None:
    async with engine.connect() as conn:
        await conn.rollback()
        trips.clear()
        writing = await conn.execution_options(**{WRITE_OPTION: True})
        await writing.execute(deferrable("a"))
        await writing.commit()
    assert trips == ["_commit"]  # BEGIN IMMEDIATE, the INSERT and COMMIT
    assert await names_in(engine) == ["a"]


async def test_a_commit_refused_by_the_lock_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    engine = create_engine(sqlite_url(path), timeout=0.1)
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        async with engine.connect() as conn:
            writing = await conn.execution_options(**{WRITE_OPTION: True})
            await writing.execute(deferrable("a"))
            with pytest.raises(sa_exc.OperationalError, match="locked"):
                await writing.commit()  # its BEGIN IMMEDIATE waited out the timeout
            await writing.rollback()
            holder.execute("ROLLBACK")
            await writing.execute(deferrable("b"))
            await writing.commit()
        assert await names_in(engine) == ["b"]
    finally:
        holder.close()
        await engine.dispose()


async def test_a_server_side_cursor_sees_the_deferred_writes(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(deferrable("a"))
        result = await conn.stream(select(THINGS.c.name))
        assert [name async for (name,) in result] == ["a"]
        await conn.commit()
    assert await names_in(engine) == ["a"]


async def test_a_read_of_one_statement_defers_no_write(engine: AsyncEngine) -> None:
    async with one_statement_reads(engine).connect() as conn:
        with pytest.raises(NotOneRead):
            await conn.execute(deferrable("a"))
    assert await names_in(engine) == []
