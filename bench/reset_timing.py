"""``python -m bench.reset_timing``: how long "forgot password" takes to answer for an
address that is a verified account's and for one that is no account's, with and
without the answer floor (``EmailPolicy.answer_floor``).

Runs the service on a fresh SQLite database (or ``--database-url``), the mail outbox
unsent, the limits raised out of the way; prints the median of ``--rounds`` requests of
each kind and their difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from authdemo.bootstrap import runtime
from authdemo.config import Settings
from authdemo.db.migrations import upgrade
from authdemo.domain import ClientInfo


async def measure(url: str, floor_ms: int, rounds: int) -> str:
    settings = Settings(database_url=url, mail_console=True)
    async with runtime(settings) as rt:
        rt.service.email = replace(
            rt.service.email,
            answer_floor=timedelta(milliseconds=floor_ms),
            mails_per_address=10 * rounds,
            mails_per_network=10 * rounds,
        )
        owner = f"owner{floor_ms}@example.org"
        await rt.service.create_user_with_email(f"owner{floor_ms}", "correct horse", owner)
        known: list[float] = []
        unknown: list[float] = []
        for i in range(rounds):
            for times, address in ((known, owner), (unknown, f"nobody{i}.{floor_ms}@example.org")):
                started = time.perf_counter()
                await rt.service.request_password_reset(address, ClientInfo(f"10.0.{i % 250}.1"))
                times.append(time.perf_counter() - started)
    k, u = statistics.median(known), statistics.median(unknown)
    return (
        f"floor {floor_ms:>3} ms: known {k * 1000:.1f} ms, unknown {u * 1000:.1f} ms, "
        f"difference {(k - u) * 1000:+.1f} ms (medians of {rounds})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a migrated database (default: a fresh SQLite)")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'timing.db'}"
        upgrade(url)
    for floor in (0, 300):
        print(asyncio.run(measure(url, floor, args.rounds)))


if __name__ == "__main__":
    main()
