"""Writes nobody reads the outcome of (``engine.DEFERRABLE``), on both databases: they
wait for the transaction's next statement or its commit, the next statement sees
them, a rollback discards them, and a failure is never lost nor taken for another
statement's. How they travel is each adapter's (``test_aiosqlite_driver.py``: in the
next trip; ``test_asyncpg_driver.py``: together, as one statement)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from authdemo.db.engine import DEFERRABLE, create_engine

META = MetaData()
THINGS = Table(
    "deferred_things",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), unique=True, nullable=False),
)
NOTES = Table(
    "deferred_notes",
    META,
    Column("id", Integer, primary_key=True),
    Column("text", String(20), nullable=False),
)


@pytest.fixture
async def engine(db_url: str, db_backend: str) -> AsyncIterator[AsyncEngine]:
    # Through PgBouncer too: the writes that go together are one statement there as well,
    # prepared unnamed, as every statement behind a transaction pooler.
    engine = create_engine(db_url, pool=2, pooler=db_backend == "pgbouncer")
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


def deferrable(name: str, table: Table = THINGS) -> Any:
    """An INSERT whose outcome nobody reads, as the audit and outbox repositories send."""
    written = insert(table).inline().values({table.c[1].name: name})
    return written.execution_options(**{DEFERRABLE: True})


async def names_in(engine: AsyncEngine, table: Table = THINGS) -> list[str]:
    async with engine.connect() as conn:
        found = await conn.execute(select(table.c[1]).order_by(table.c.id))
        return list(found.scalars())


async def test_the_next_statement_sees_the_deferred_writes(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(deferrable("a"))
        await conn.execute(deferrable("note", NOTES))
        assert (await conn.execute(select(THINGS.c.name))).scalars().all() == ["a"]
        await conn.commit()
    assert await names_in(engine) == ["a"]
    assert await names_in(engine, NOTES) == ["note"]


async def test_a_rollback_discards_deferred_writes(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(deferrable("a"))
        await conn.rollback()
        # Not in the next transaction on the same connection either.
        await conn.execute(deferrable("b"))
        await conn.commit()
        assert await names_in(engine) == ["b"]
        await conn.execute(deferrable("c"))
        await conn.execute(select(THINGS))  # sent: rolled back with the transaction
        await conn.rollback()
        await conn.execute(deferrable("d"))
        await conn.commit()
    assert await names_in(engine) == ["b", "d"]


async def test_a_failed_deferred_write_is_not_the_next_statements_error(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(THINGS).values(name="taken"))
    async with engine.connect() as conn:
        await conn.execute(deferrable("taken"))  # will break the unique name
        with pytest.raises(sa_exc.DatabaseError, match="deferred") as raised:
            # A repository that answers this statement's IntegrityError (a taken name)
            # must not take the earlier write's for it.
            await conn.execute(insert(THINGS).values(name="b"))
        assert not isinstance(raised.value, sa_exc.IntegrityError)
        with pytest.raises(sa_exc.DatabaseError, match="deferred"):
            await conn.commit()  # the caller went on: never a commit without the write
        await conn.rollback()  # SQLAlchemy's; it sends nothing after a failed commit
        await conn.execute(insert(THINGS).values(name="c"))  # the connection goes on
        await conn.commit()
    assert await names_in(engine) == ["taken", "c"]


async def test_a_deferred_write_failing_at_the_commit_commits_nothing(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(THINGS).values(name="taken"))
    async with engine.connect() as conn:
        await conn.execute(insert(THINGS).values(name="a"))
        await conn.execute(deferrable("note", NOTES))
        await conn.execute(deferrable("taken"))
        with pytest.raises(sa_exc.DatabaseError, match="deferred") as raised:
            await conn.commit()
        assert not isinstance(raised.value, sa_exc.IntegrityError)
        await conn.rollback()
        # Rolled back by the adapter, not left open or aborted: the next transaction
        # on the connection works.
        await conn.execute(insert(THINGS).values(name="d"))
        await conn.commit()
    assert await names_in(engine) == ["taken", "d"]
    assert await names_in(engine, NOTES) == []


async def test_driver_sql_is_never_deferred(engine: AsyncEngine) -> None:
    """An option set on the connection reaches statements with no compiled form to
    tell whether they return rows: they run as they come."""
    async with engine.connect() as conn:
        marked = await conn.execution_options(**{DEFERRABLE: True})
        await marked.exec_driver_sql("INSERT INTO deferred_notes (text) VALUES ('x')")
        await marked.commit()
    assert await names_in(engine, NOTES) == ["x"]
