"""``python -m bench.signin_cost``: what one sign-in cycle costs the server besides hashing.

Runs the service in this process on a fresh SQLite file, with argon2id at a near-free
cost (8 KiB, t=1) so the database work shows: sign in (throttle reservation, password
check, session, ticket), redeem the ticket, resolve the new cookie, sign out. Prints the
wall time and this process's CPU time per cycle (medians of ``--rounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from authdemo.bootstrap import runtime
from authdemo.config import Argon2Params, Settings
from authdemo.domain import ClientInfo
from authdemo.security import Argon2Hasher, hash_token
from bench.prep import migrate
from bench.scenarios import sqlite_url

NEAR_FREE = Argon2Params(memory_kib=8, time_cost=1, parallelism=1)


async def measure(cycles: int, rounds: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="authdemo-signin-cost-") as tmp:
        url = sqlite_url(Path(tmp) / "cost.db")
        migrate(url)
        settings = Settings(database_url=url)
        async with runtime(settings, hasher_factory=lambda _: Argon2Hasher(NEAR_FREE, 1)) as rt:
            service = rt.service
            await service.create_user("alice", "correct horse")
            client = ClientInfo("127.0.0.1", "bench")
            walls, cpus = [], []
            for round_ in range(rounds + 1):  # the first round warms up
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(cycles):
                    page = service.new_token()
                    result = await service.login(hash_token(page), "alice", "correct horse", client)
                    token = (await service.redeem_ticket(result.ticket, page)).token
                    await service.resolve(token)
                    await service.logout(result.signed_in.session.id)
                if round_:
                    walls.append((time.perf_counter() - wall) / cycles * 1000)
                    cpus.append((time.process_time() - cpu) / cycles * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    wall, cpu = asyncio.run(measure(args.cycles, args.rounds))
    print(f"sign-in cycle without hashing: wall {wall:.1f} ms, CPU {cpu:.1f} ms (medians)")


if __name__ == "__main__":
    main()
