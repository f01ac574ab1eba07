"""authdemo's aiosqlite adapter: a statement is one trip to aiosqlite's thread, and
SQLAlchemy gets from it everything it got from its own adapter (rows, row counts, the
last row id, errors translated, server-side cursors). SQLite only."""

from __future__ import annotations

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
from sqlalchemy.ext.asyncio import AsyncEngine

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.aiosqlite_driver import OneTripCursor
from authdemo.db.engine import create_engine
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


async def test_a_read_transaction_is_three_trips(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.connect() as conn:  # the pool holds the connection: no trip to open it
        await conn.rollback()
    trips.clear()
    async with engine.connect() as conn:
        assert (await conn.execute(select(THINGS))).all() == []
        await conn.rollback()
    # BEGIN (our "begin" hook), the SELECT, the ROLLBACK: one trip each. SQLAlchemy's
    # own adapter made eight (cursor, execute, [fetch,] close for each statement).
    assert trips == ["_run", "_run", "rollback"]


async def test_a_sign_in_cycle_makes_one_trip_per_statement(
    tmp_path: Path, migrated_template: Path, trips: list[str]
) -> None:
    settings = Settings(database_url=copy_database(migrated_template, tmp_path / "cycle.db"))
    async with runtime(settings, hasher_factory=cheap_hasher) as rt:
        await rt.service.create_user("alice", PASSWORD)
        await one_cycle(rt.service)  # the pool's connection opened, statements compiled
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(rt.engine.sync_engine, "before_cursor_execute", count)
        trips.clear()
        try:
            await one_cycle(rt.service)
        finally:
            event.remove(rt.engine.sync_engine, "before_cursor_execute", count)
        cycle = list(trips)  # not the engine's disposal below
    ran = [name for name in cycle if name == "_run"]
    ended = [name for name in cycle if name in ("commit", "rollback")]
    assert statements > 10  # BEGINs included
    assert len(ran) == statements
    assert len(cycle) == len(ran) + len(ended), " ".join(cycle)


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
