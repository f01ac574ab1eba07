"""``python -m bench.sql_overhead``: what one SQL statement costs in CPU, layer by layer.

The sign-in cycle runs about 36 statements; this says what each costs before any of
authdemo's own code runs, so that the cycle's profile can be read: the same primary-key
SELECT of a user (authdemo's schema, one row), executed ``--statements`` times in
transactions of ten, through each layer of the stack:

- ``sqlite3`` — the standard library, synchronously (the floor);
- ``aiosqlite`` — the same through aiosqlite's thread (each call is a hop there and back);
- ``SQLAlchemy AsyncConnection`` — a Core statement on an async connection;
- ``SQLAlchemy AsyncSession (Core)`` — the same statement through the ORM session;
- ``SQLAlchemy AsyncSession (ORM)`` — ``select(UserRow)``, an entity loaded (what the
  repositories' reads do).

On SQLite the last two layers again through authdemo's adapter
(``authdemo.db.aiosqlite_driver``, what authdemo's engines use): one trip to aiosqlite's
thread per statement, where SQLAlchemy's own adapter makes three or four.

Then one write, ``UPDATE authdemo_users SET credential_epoch = ? WHERE id = ?``, three
ways through the ORM session (on SQLite through SQLAlchemy's own adapter, as the layers
above it: they compare how a statement is built, not adapters), to show what the
repositories' writes pay for how they are built (docs/performance.md, "Statements built
once"):

- ``UPDATE built per call (ORM)`` — ``update(UserRow).where(...).values(...)`` built on
  each call, as the sign-in cycle's writes were until the statements were built once;
- ``UPDATE built once (ORM)`` — the same built once, its values as parameters;
- ``UPDATE built once (Core)`` — the same on the table (``UserRow.__table__``): the
  repositories' writes now.

With ``--postgres URL`` the asyncpg rows are added (raw asyncpg, then the SQLAlchemy
layers). CPU is this process's (``time.process_time``: every thread, aiosqlite's
included); medians of ``--rounds`` alternating rounds. No server runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from authdemo.db import aiosqlite_driver
from authdemo.db.models import UserRow
from bench.prep import migrate, signed_in_cookies

PER_TRANSACTION = 10
ONE_TRIP_CORE = "AsyncConnection (Core), one-trip adapter"
ONE_TRIP_ORM = "AsyncSession (ORM entity), one-trip adapter"
USERS = UserRow.__table__
CORE = select(USERS).where(USERS.c.id == 1)
ENTITY = select(UserRow).where(UserRow.id == 1)
RAW = "SELECT * FROM authdemo_users WHERE id = 1"
UPDATE_ORM = (
    update(UserRow)
    .where(UserRow.id == bindparam("key"))
    .values(credential_epoch=bindparam("epoch"))
)
UPDATE_CORE = (
    update(USERS).where(USERS.c.id == bindparam("key")).values(credential_epoch=bindparam("epoch"))
)
NO_SYNC = {"synchronize_session": False}  # as the repositories' ORM updates

Layer = Callable[[], Awaitable[None]]
Opened = tuple[dict[str, Layer], Callable[[], Awaitable[None]]]  # the layers, and their close


def sqlalchemy_layers(engine: AsyncEngine) -> dict[str, Layer]:
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def connection_core() -> None:
        async with engine.connect() as conn:
            for _ in range(PER_TRANSACTION):
                (await conn.execute(CORE)).first()
            await conn.rollback()

    async def session_core() -> None:
        async with sessions() as session:
            for _ in range(PER_TRANSACTION):
                (await session.execute(CORE)).first()
            await session.rollback()

    async def session_orm() -> None:
        async with sessions() as session:
            for _ in range(PER_TRANSACTION):
                await session.scalar(ENTITY)
                session.expunge_all()  # as a new unit of work would: load it again
            await session.rollback()

    async def update_per_call() -> None:
        async with sessions() as session:
            for epoch in range(PER_TRANSACTION):
                statement = update(UserRow).where(UserRow.id == 1).values(credential_epoch=epoch)
                await session.execute(statement, execution_options=NO_SYNC)
            await session.rollback()

    async def update_orm_once() -> None:
        async with sessions() as session:
            for epoch in range(PER_TRANSACTION):
                values = {"key": 1, "epoch": epoch}
                await session.execute(UPDATE_ORM, values, execution_options=NO_SYNC)
            await session.rollback()

    async def update_core_once() -> None:
        async with sessions() as session:
            for epoch in range(PER_TRANSACTION):
                await session.execute(UPDATE_CORE, {"key": 1, "epoch": epoch})
            await session.rollback()

    return {
        "SQLAlchemy AsyncConnection (Core)": connection_core,
        "SQLAlchemy AsyncSession (Core)": session_core,
        "SQLAlchemy AsyncSession (ORM entity)": session_orm,
        "UPDATE built per call (ORM)": update_per_call,
        "UPDATE built once (ORM)": update_orm_once,
        "UPDATE built once (Core)": update_core_once,
    }


async def sqlite_layers(path: Path) -> Opened:
    import aiosqlite

    sync = sqlite3.connect(path)
    adb = await aiosqlite.connect(path)

    async def plain() -> None:
        for _ in range(PER_TRANSACTION):
            sync.execute(RAW).fetchone()
        sync.rollback()

    async def threaded() -> None:
        for _ in range(PER_TRANSACTION):
            async with adb.execute(RAW) as cursor:
                await cursor.fetchone()
        await adb.rollback()

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_reset_on_return=None)
    # The same through authdemo's adapter: one trip to aiosqlite's thread per statement.
    one_trip = create_async_engine(
        f"sqlite+aiosqlite:///{path}", pool_reset_on_return=None, module=aiosqlite_driver.adapter()
    )

    async def close() -> None:
        sync.close()
        await adb.close()
        await engine.dispose()
        await one_trip.dispose()

    layers = {"sqlite3 (synchronous)": plain, "aiosqlite": threaded}
    adapted = sqlalchemy_layers(one_trip)
    return {
        **layers,
        **sqlalchemy_layers(engine),
        ONE_TRIP_CORE: adapted["SQLAlchemy AsyncConnection (Core)"],
        ONE_TRIP_ORM: adapted["SQLAlchemy AsyncSession (ORM entity)"],
    }, close


async def postgres_layers(url: str) -> Opened:
    import asyncpg

    raw = await asyncpg.connect(url)

    async def plain() -> None:
        async with raw.transaction():
            for _ in range(PER_TRANSACTION):
                await raw.fetchrow(RAW)

    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_reset_on_return=None
    )

    async def close() -> None:
        await raw.close()
        await engine.dispose()

    return {"asyncpg": plain, **sqlalchemy_layers(engine)}, close


async def measure_opened(
    opening: Awaitable[Opened], statements: int, rounds: int
) -> dict[str, float]:
    """Open the layers, measure them, close them."""
    layers, close = await opening
    try:
        return await measure(layers, statements, rounds)
    finally:
        await close()


async def measure(layers: dict[str, Layer], statements: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in layers}
    for layer in layers.values():  # warm: connections, statement caches
        for _ in range(20):
            await layer()
    for _ in range(rounds):
        for name, layer in layers.items():
            started = time.process_time()
            for _ in range(statements // PER_TRANSACTION):
                await layer()
            samples[name].append((time.process_time() - started) / statements)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, figures: dict[str, float]) -> None:
    floor = min(figures.values())
    print(title)
    for name, seconds in figures.items():
        print(f"  {name:<45} {seconds * 1e6:7.0f} µs CPU per statement ({seconds / floor:.1f}×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--statements", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("AUTHDEMO_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="authdemo-sql-") as tmp:
        path = Path(tmp) / "sql.db"
        url = f"sqlite+aiosqlite:///{path}"
        migrate(url)
        signed_in_cookies(url, 1)  # one user, id 1
        figures = measure_opened(sqlite_layers(path), args.statements, args.rounds)
        report("SQLite (a file, WAL)", asyncio.run(figures))
    if args.postgres:
        from tests.support.pg import PostgresDatabases, app_url

        os.environ["AUTHDEMO_TEST_POSTGRES_URL"] = args.postgres
        databases = PostgresDatabases()
        name = databases.fresh()
        try:
            url = app_url(name)
            signed_in_cookies(url, 1)
            plain_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
            figures = measure_opened(postgres_layers(plain_url), args.statements, args.rounds)
            report("PostgreSQL (127.0.0.1)", asyncio.run(figures))
        finally:
            databases.drop(name)
            databases.close()


if __name__ == "__main__":
    main()
