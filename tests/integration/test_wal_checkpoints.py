"""A server's SQLite WAL is checkpointed by a background task, never in a request's commit.

By SQLite's default the commit that takes the WAL past 1,000 pages copies them back
into the database file before it returns; while a purge ran in another process, nearly
every write of the server paid for the purge's pages that way.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from authdemo.db.engine import checkpoint_wal, create_engine, keep_checkpointing

FOUR_MB = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
    " INSERT INTO filler (v) SELECT randomblob(4000) FROM n"
)


def wal_of(db_url: str) -> Path:
    return Path((make_url(db_url).database or "") + "-wal")


async def write_4mb(engine: AsyncEngine, times: int, pause: float = 0.0) -> None:
    for _ in range(times):
        async with engine.connect() as conn:
            await conn.execute(text(FOUR_MB))
            await conn.commit()
        await asyncio.sleep(pause)


async def make_filler(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("CREATE TABLE filler (id INTEGER PRIMARY KEY, v BLOB)"))
        await conn.commit()


@pytest.mark.sqlite_only
async def test_a_serving_engines_commits_never_checkpoint(db_url: str) -> None:
    engine = create_engine(db_url, background_checkpoints=True)
    try:
        await make_filler(engine)
        await write_4mb(engine, 10)
        # Nothing was copied back, so the WAL never started over: it holds all 40 MB.
        assert wal_of(db_url).stat().st_size > 36 * 1024 * 1024
        busy, pages, copied = await checkpoint_wal(engine)
        assert (busy, copied) == (0, pages) and pages > 9000
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only
async def test_the_background_task_keeps_the_wal_short(db_url: str) -> None:
    engine = create_engine(db_url, background_checkpoints=True)
    task = asyncio.create_task(keep_checkpointing(engine, interval=0.02))
    try:
        await make_filler(engine)
        await write_4mb(engine, 10, pause=0.2)  # time for a checkpoint after each
        assert wal_of(db_url).stat().st_size < 12 * 1024 * 1024
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


async def test_a_failing_checkpoint_is_said_once_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="authdemo.db")
    calls = 0
    done = asyncio.Event()

    async def flaky(_: object) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise OSError("disk I/O error")
        if calls == 5:
            done.set()

    task = asyncio.create_task(keep_checkpointing(None, 0.001, flaky))  # type: ignore[arg-type]
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    failed = [r for r in caplog.records if "WAL checkpoint failed" in r.getMessage()]
    assert len(failed) == 1 and "disk I/O error" in failed[0].getMessage()
    assert [r.getMessage() for r in caplog.records].count("WAL checkpoints work again") == 1


async def test_a_checkpoint_under_way_finishes_before_the_task_ends() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished = False

    async def slow(_: object) -> None:
        nonlocal finished
        started.set()
        await release.wait()
        finished = True

    task = asyncio.create_task(keep_checkpointing(None, 0.001, slow))  # type: ignore[arg-type]
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the checkpoint
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished


@pytest.mark.sqlite_only
async def test_a_server_cuts_back_the_wal_a_bulk_process_grew(db_url: str) -> None:
    """A purge's WAL may grow to 256 MiB; once a server starts the WAL over, it is small."""
    server = create_engine(db_url)
    bulk = create_engine(db_url, bulk=True)
    try:
        await make_filler(server)  # the server is up: the WAL is not deleted
        await write_4mb(bulk, 10)  # ~40 MB of WAL
        assert wal_of(db_url).stat().st_size > 32 * 1024 * 1024
        for _ in range(3):  # a checkpoint at the first commit, the WAL started over after
            async with server.connect() as conn:
                await conn.execute(text("INSERT INTO filler (v) VALUES (x'00')"))
                await conn.commit()
        assert wal_of(db_url).stat().st_size <= 16 * 1024 * 1024
    finally:
        await bulk.dispose()
        await server.dispose()
