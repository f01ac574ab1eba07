"""``python -m bench.hosts``: three ``authdemo run --workers 4`` behind one PgBouncer.

PgBouncer (Debian's package, transaction mode, a generated config on a free port) in
front of the PostgreSQL named by ``--postgres``; the hosts' queries go through it
(``AUTHDEMO_DB_POOL=null``), their listeners straight to PostgreSQL. Measures:

- revocation latency across the 12 workers: each trial opens one tab of one session on
  every worker, signs out in one of them (a different worker each trial) and times
  until the tabs on the 11 other workers show the sign-in form (p50/p99 of the slowest
  of the 11, and of every tab);
- with ``--soak S``: ``--clients`` tabs signing in and out for S seconds across the
  three hosts (errors, dropped connections and "too many clients" counted);
- throughout: the most ``authdemo-listen`` connections and the most connections from
  PgBouncer that PostgreSQL showed (sampled every 50 ms).

Prints the figures and writes them to ``bench/results/hosts.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.load import percentile
from bench.prep import signed_in_cookies
from bench.procs import Proc
from tests.scale.test_concurrency import sign_in_and_out
from tests.support.idom_client import IdomClient
from tests.support.pg import (
    PostgresDatabases,
    app_url,
    connections,
    name_connections_by_default,
)
from tests.support.pgbouncer import PgBouncer
from tests.support.sockets import owner_pid

HOSTS = 3
WORKERS = 4
LISTEN = "authdemo-listen"


class Sampler:
    """The most connections of each kind PostgreSQL showed, sampled until stopped."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.most: Counter[str] = Counter()

    async def run(self) -> None:
        while True:
            counts = await connections(self.database)
            counts["through PgBouncer"] = sum(n for k, n in counts.items() if k != LISTEN)
            for name, count in counts.items():
                self.most[name] = max(self.most[name], count)
            await asyncio.sleep(0.05)


async def connect(url: str, cookie: str | None = None) -> IdomClient:
    """A tab; a connection the loaded machine dropped on the way is tried again."""
    for attempt in range(5):
        try:
            return await IdomClient.connect(url, cookie=cookie, follow_tickets=False)
        except (OSError, httpx.HTTPError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def tab_on(host: Proc, pid: int, cookie: str) -> IdomClient:
    """A tab of ``cookie`` served by worker ``pid`` of ``host``."""
    for _ in range(200):
        tab = await connect(host.url, cookie)
        port = int(tab.ws.transport.get_extra_info("sockname")[1])
        if owner_pid(host.port, port) == pid:
            return tab
        await tab.close()
    raise RuntimeError(f"no connection reached worker {pid}")


async def workers_of(host: Proc) -> list[int]:
    seen: set[int] = set()
    for _ in range(400):
        tab = await connect(host.url)
        seen.add(owner_pid(host.port, int(tab.ws.transport.get_extra_info("sockname")[1])))
        await tab.close()
        if len(seen) == WORKERS:
            return sorted(seen)
    raise RuntimeError(f"only reached workers {seen} of {host.name}")


async def signed_out(tab: IdomClient, since: float) -> float:
    await tab.wait_for(lambda c: c.find("login-form") is not None, timeout=10)
    return time.perf_counter() - since


async def trials(hosts: list[Proc], cookies: list[str]) -> tuple[list[float], list[float]]:
    workers = [(host, pid) for host in hosts for pid in await workers_of(host)]
    slowest: list[float] = []
    every: list[float] = []
    for n, cookie in enumerate(cookies):
        tabs = [await tab_on(host, pid, cookie) for host, pid in workers]
        for tab in tabs:
            await tab.wait_for_id("logout", timeout=30)
        actor, others = tabs[n % len(tabs)], [t for i, t in enumerate(tabs) if i != n % len(tabs)]
        started = time.perf_counter()
        await actor.click("logout")
        times = await asyncio.gather(*(signed_out(t, started) for t in others))
        every.extend(times)
        slowest.append(max(times))
        for tab in tabs:
            await tab.close()
    return slowest, every


async def soak(hosts: list[Proc], clients: int, seconds: float) -> Counter[str]:
    stats: Counter[str] = Counter()
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(
            *(
                sign_in_and_out(hosts[i % len(hosts)].url, f"bench{i}", until, http, stats)
                for i in range(clients)
            )
        )
    return stats


async def measure(
    hosts: list[Proc], database: str, cookies: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    sampler = Sampler(database)
    sampling = asyncio.create_task(sampler.run())
    try:
        slowest, every = await trials(hosts, cookies)
        stats = await soak(hosts, args.clients, args.soak) if args.soak else Counter[str]()
    finally:
        sampling.cancel()
    ms = 1000
    return {
        "trials": len(slowest),
        "all 11 other workers signed out": {
            "p50_ms": round(percentile(slowest, 0.5) * ms, 1),
            "p99_ms": round(percentile(slowest, 0.99) * ms, 1),
            "max_ms": round(max(slowest) * ms, 1),
        },
        "each tab": {
            "p50_ms": round(percentile(every, 0.5) * ms, 1),
            "p99_ms": round(percentile(every, 0.99) * ms, 1),
        },
        "soak": dict(stats),
        "most connections seen by PostgreSQL": dict(sampler.most),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AUTHDEMO_TEST_POSTGRES_URL"),
        help="a PostgreSQL server to make a database in (e.g. postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--pool", type=int, default=20, help="PgBouncer's server pool")
    parser.add_argument("--db-pool", default="null", help="AUTHDEMO_DB_POOL of the hosts")
    parser.add_argument("--soak", type=float, default=0, help="seconds of sign-in/out soak")
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    if not args.postgres:
        parser.error("--postgres (or AUTHDEMO_TEST_POSTGRES_URL) is required")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    os.environ["AUTHDEMO_TEST_POSTGRES_URL"] = args.postgres
    databases = PostgresDatabases()
    name = databases.fresh()
    bouncer = PgBouncer(args.postgres, pool_size=args.pool).start()
    hosts: list[Proc] = []
    try:
        direct = app_url(name)
        name_connections_by_default(name, "authdemo")
        cookies = signed_in_cookies(direct, args.trials)
        if args.soak:
            signed_in_cookies(direct, 0, users=args.clients)
        env = {
            "AUTHDEMO_DATABASE_URL": bouncer.url(name),
            "AUTHDEMO_LISTEN_URL": direct,
            "AUTHDEMO_DB_POOL": args.db_pool,
            # Every tab comes from 127.0.0.1, like an office behind one NAT: raise the
            # per-address limits as the README advises (a sign-in in flight counts
            # against the address until it succeeds; 200 in flight would block it).
            "AUTHDEMO_WS_PER_ADDRESS": "100000",
            "AUTHDEMO_THROTTLE_ADDRESS_FAILURES": "100000",
        }
        workdir = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
        for n in range(HOSTS):
            argv = ["-m", "authdemo", "run", "--workers", str(WORKERS)]
            hosts.append(Proc(f"host{n}", argv, workdir, env))
        result = asyncio.run(measure(hosts, name, cookies, args))
        logs = "".join(host.log.read_text(errors="replace") for host in hosts)
        result["too many clients in the logs"] = logs.count("too many clients")
        result["tracebacks in the logs"] = logs.count("Traceback")
        result["setup"] = {
            "hosts": HOSTS,
            "workers per host": WORKERS,
            "PgBouncer pool": args.pool,
            "AUTHDEMO_DB_POOL": args.db_pool,
            "logs": str(workdir),
        }
    finally:
        for host in hosts:
            host.stop()
        bouncer.close()
        databases.drop(name)
        databases.close()
    out = Path(__file__).parent / "results" / "hosts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    bad = result["too many clients in the logs"] or any(
        k.startswith(("dropped", "refused", "ticket 5")) for k in result["soak"]
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
