"""authdemo's asyncpg adapter: a pooled connection is pinged in one round trip (a
simple-protocol ``SELECT 1``), not in a transaction of three, and a connection the
server dropped while it sat in the pool is still replaced before a unit of work uses it."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from authdemo.db.asyncpg_driver import PING, OneTripPingConnection
from authdemo.db.engine import create_engine
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
