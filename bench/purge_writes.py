"""``python -m bench.purge_writes``: how long a server's write waits while a purge runs.

Row 7 times the purge and the page views beside it; page views only read, and in WAL
mode readers never wait for a writer. This times what does wait: a write transaction
(``BEGIN IMMEDIATE``, one insert, commit) through an engine built as a server builds
its own, with its background checkpoints running, every ``--every`` seconds for as long
as ``authdemo purge-expired`` runs on a SQLite database of ``--rows`` live and as many
expired session rows (the row 7 set-up). ``--in-commits``: the commits checkpoint, as
SQLite does by default (and authdemo's servers did before ``keep_checkpointing``).

A write waits for two things: the write lock, which the purge holds for one batch at a
time (SQLite's busy handler retries at growing intervals, up to 100 ms apart), and the
checkpoint its own commit runs, with ``--in-commits`` (SQLite's auto-checkpoint copies
what the purge wrote since the last one back into the database file).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from authdemo.db.engine import WRITE_OPTION, create_engine, keep_checkpointing
from bench.prep import fill_sessions, migrate, signed_in_cookies
from bench.scenarios import purge_finished, sqlite_url, start_purge


async def writes_during_purge(
    url: str, every: float, in_commits: bool
) -> tuple[float, list[float]]:
    """(seconds the purge took, each write's seconds)."""
    engine = create_engine(url, background_checkpoints=not in_commits)
    checkpoints = None if in_commits else asyncio.create_task(keep_checkpointing(engine))
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE bench_probe (id INTEGER PRIMARY KEY)"))
            await conn.commit()
        started = time.monotonic()
        purge = await start_purge(url)
        waits = []
        while purge.returncode is None:
            begun = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execution_options(**{WRITE_OPTION: True})
                await conn.execute(text("INSERT INTO bench_probe DEFAULT VALUES"))
                await conn.commit()
            waits.append(time.perf_counter() - begun)
            await asyncio.sleep(every)
        await purge_finished(purge)
        return time.monotonic() - started, waits
    finally:
        if checkpoints is not None:
            checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="live and expired rows")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between writes")
    parser.add_argument(
        "--in-commits", action="store_true", help="commits checkpoint (SQLite's default)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="authdemo-purge-writes-") as tmp:
        url = sqlite_url(Path(tmp) / "purge.db")
        migrate(url)
        signed_in_cookies(url, 1)
        fill_sessions(url, args.rows, expired=False)
        fill_sessions(url, args.rows, expired=True)
        seconds, waits = asyncio.run(writes_during_purge(url, args.every, args.in_commits))
    waits.sort()
    ms = [w * 1000 for w in waits]
    where = "in the commits" if args.in_commits else "in the background"
    print(
        f"checkpoints {where}; purge of {args.rows:,} expired rows: {seconds:.1f} s; {len(ms)} writes: "
        f"p50 {statistics.median(ms):.0f} ms, p99 {ms[int(len(ms) * 0.99)]:.0f} ms, "
        f"slowest {ms[-1]:.0f} ms, {sum(m > 100 for m in ms)} over 100 ms"
    )


if __name__ == "__main__":
    main()
