"""authdemo's asyncpg adapter: a pooled connection is pinged in one round trip (a
simple-protocol ``SELECT 1``), not in a transaction of three, and a connection the
server dropped while it sat in the pool is still replaced before a unit of work uses it.
Deferrable writes wait for the next statement or the commit, and go together."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from authdemo.db.asyncpg_driver import PING, OneTripPingConnection, combined
from authdemo.db.engine import DEFERRABLE, WRITE_OPTION, create_engine
from tests.integration.test_deferred_writes import NOTES, THINGS, deferrable, names_in
from tests.integration.test_deferred_writes import engine as engine  # a fixture
from tests.support.pgbouncer import PgBouncer

pytestmark = pytest.mark.postgresql_only

# What asyncpg's connection is asked to do: a ping of SQLAlchemy's adapter is
# ``transaction()`` (then its start and rollback) around ``fetchrow(";")``.
_SPIED = ("execute", "fetch", "fetchrow", "fetchval", "prepare", "transaction")


@pytest.fixture
def driver_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every call of ``_SPIED`` on any asyncpg connection, with its first argument."""
    calls: list[tuple[str, Any]] = []
    for name in _SPIED:
        original = getattr(asyncpg.Connection, name)

        def spy(self: Any, *args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
            calls.append((_name, args[0] if args else None))
            return _f(self, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, name, spy)
    return calls


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        await conn.rollback()
    return pid


async def test_a_pooled_connection_is_pinged_with_one_statement_outside_a_transaction(
    db_url: str, driver_calls: list[tuple[str, Any]]
) -> None:
    engine = create_engine(db_url, pool=1)
    try:
        await _backend_pid(engine)  # the connection is made and goes back to the pool
        driver_calls.clear()
        async with engine.connect() as conn:  # checked out again: pinged first
            raw = (await conn.get_raw_connection()).dbapi_connection
            assert isinstance(raw, OneTripPingConnection)
            assert driver_calls == [("execute", PING)]
    finally:
        await engine.dispose()


async def test_a_connection_dropped_in_the_pool_is_replaced_before_it_is_used(
    db_url: str,
) -> None:
    engine = create_engine(db_url, pool=1)
    try:
        dropped = await _backend_pid(engine)
        dsn = make_url(db_url).set(drivername="postgresql")
        admin = await asyncpg.connect(dsn.render_as_string(hide_password=False))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", dropped)
        finally:
            await admin.close()
        assert await _backend_pid(engine) != dropped  # no error: the ping saw it gone
    finally:
        await engine.dispose()


async def test_behind_pgbouncer_a_pooled_connection_is_pinged_with_one_statement(
    db_url: str, pgbouncer: PgBouncer, driver_calls: list[tuple[str, Any]]
) -> None:
    """A simple-protocol statement is one message, which PgBouncer's transaction mode runs
    on one server connection: the ping needs no transaction there either."""
    through = pgbouncer.url(make_url(db_url).database or "")
    engine = create_engine(through, pool=1, pooler=True)
    try:
        await _backend_pid(engine)
        for _ in range(3):
            driver_calls.clear()
            async with engine.connect() as conn:
                assert driver_calls == [("execute", PING)]
                await conn.execute(text("SELECT 1"))  # the connection works after it
                await conn.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the adapter prepared and ran, from now on."""
    statements: list[str] = []
    real = OneTripPingConnection._prepare

    async def recorded(self: Any, operation: str, *args: Any) -> Any:
        statements.append(" ".join(operation.split()))
        return await real(self, operation, *args)

    monkeypatch.setattr(OneTripPingConnection, "_prepare", recorded)
    return statements


async def test_deferred_writes_waiting_together_go_as_one_statement(
    engine: AsyncEngine, sent: list[str]
) -> None:
    async with engine.connect() as conn:
        writing = await conn.execution_options(**{WRITE_OPTION: True})
        await writing.execute(deferrable("a"))
        await writing.execute(deferrable("note", NOTES))
        await writing.execute(deferrable("b"))
        assert sent == []  # they wait
        await writing.commit()
    # Into two tables, one statement; the second row of a table after it, so that the
    # table's ids keep the order the rows were written in.
    assert len(sent) == 2, sent
    assert sent[0].startswith("WITH authdemo_deferred_0 AS (INSERT INTO deferred_things")
    assert sent[0].count("INSERT INTO deferred_notes") == 1
    assert sent[1].startswith("INSERT INTO deferred_things")
    assert await names_in(engine) == ["a", "b"]
    assert await names_in(engine, NOTES) == ["note"]


async def test_the_next_statement_sees_the_deferred_writes(
    engine: AsyncEngine, sent: list[str]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(deferrable("a"))
        await conn.execute(deferrable("note", NOTES))
        assert (await conn.execute(select(THINGS.c.name))).scalars().all() == ["a"]
        assert len(sent) == 2 and sent[0].startswith("WITH")  # sent before it
        assert sent[1].startswith("SELECT")
        await conn.commit()
    assert await names_in(engine) == ["a"]
    assert await names_in(engine, NOTES) == ["note"]


async def test_in_autocommit_a_deferrable_write_runs_at_once(
    engine: AsyncEngine, sent: list[str]
) -> None:
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.execute(deferrable("a"))
        assert len(sent) == 1
    assert await names_in(engine) == ["a"]


def test_writes_combine_with_their_parameters_renumbered() -> None:
    first = "INSERT INTO a (x, y) VALUES ($1::VARCHAR, $2::INTEGER)"
    second = "INSERT INTO b (z) VALUES ($1::VARCHAR)"
    third = "INSERT INTO c (p, q) VALUES ($2, $1)"
    assert combined([(first, ("x", 1)), (second, ("z",)), (third, ("q", "p"))]) == [
        (
            "WITH authdemo_deferred_0 AS (INSERT INTO a (x, y) VALUES ($1::VARCHAR, $2::INTEGER)), "
            "authdemo_deferred_1 AS (INSERT INTO b (z) VALUES ($3::VARCHAR)) "
            "INSERT INTO c (p, q) VALUES ($5, $4)",
            ("x", 1, "z", "q", "p"),
        )
    ]
    # A second write into a table starts the next statement.
    assert combined([(first, ("x", 1)), (second, ("z",)), (first, ("y", 2))]) == [
        (
            "WITH authdemo_deferred_0 AS (INSERT INTO a (x, y) VALUES ($1::VARCHAR, $2::INTEGER)) "
            "INSERT INTO b (z) VALUES ($3::VARCHAR)",
            ("x", 1, "z"),
        ),
        (first, ("y", 2)),
    ]
    quoted = "INSERT INTO b (z) VALUES ('$1')"
    assert combined([(first, ("x", 1)), (quoted, ())]) == [(first, ("x", 1)), (quoted, ())]
    assert combined([(second, ("z",))]) == [(second, ("z",))]


async def test_a_write_that_returns_rows_is_never_deferred(
    engine: AsyncEngine, sent: list[str]
) -> None:
    async with engine.connect() as conn:
        # Without inline(), PostgreSQL's dialect asks for the new id (RETURNING).
        added = insert(THINGS).values(name="a").execution_options(**{DEFERRABLE: True})
        assert (await conn.execute(added)).inserted_primary_key == (1,)
        assert len(sent) == 1 and "RETURNING" in sent[0]
        await conn.commit()
