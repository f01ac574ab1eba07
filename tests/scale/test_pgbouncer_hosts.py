"""Three hosts of four workers behind one PgBouncer in transaction mode: three listeners
straight to PostgreSQL, never more query connections than PgBouncer's pool, and no
revocation lost when PgBouncer restarts.

Workers read the outbox on their own only once a minute here while their host's
listener is connected, so a revocation that reaches them came through the listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.conftest import PASSWORD, create_users
from tests.support.idom_client import IdomClient
from tests.support.pg import (
    admin_url,
    connections,
    database_of,
    name_connections_by_default,
)
from tests.support.pgbouncer import SKIP_REASON, PgBouncer, binary
from tests.support.server import ServerProcess
from tests.support.workers import LISTEN, listeners, operator_revokes, views_on_every_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgresql_only,
    pytest.mark.skipif(binary() is None, reason=SKIP_REASON),
]

HOSTS = 3
WORKERS = 4
POOL = 6
SERVER = "(through PgBouncer)"


@pytest.fixture
def bouncer() -> Iterator[PgBouncer]:
    url = admin_url()
    assert url is not None
    running = PgBouncer(url, pool_size=POOL).start()
    yield running
    running.close()


@pytest.fixture
def hosts(db_url: str, bouncer: PgBouncer, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    create_users(db_url, "alice")
    name_connections_by_default(database_of(db_url), "authdemo")  # as the README advises
    env = {
        "AUTHDEMO_LISTEN_URL": db_url,  # the listener straight to PostgreSQL
        "AUTHDEMO_DB_POOL": "null",
        "AUTHDEMO_BROADCAST_POLL_LISTENING": "60s",
    }
    through = bouncer.url(database_of(db_url))
    servers: list[ServerProcess] = []
    try:
        for n in range(HOSTS):
            log = tmp_path / f"host{n}.log"
            servers.append(ServerProcess(through, log, workers=WORKERS, env=env).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


class Sampler:
    """Samples the database's connections until stopped; keeps the largest counts."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.most: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            counts = await connections(self.database)
            counts[SERVER] = sum(n for name, n in counts.items() if name != LISTEN)
            for name, count in counts.items():
                self.most[name] = max(self.most.get(name, 0), count)
            await asyncio.sleep(0.05)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def signed_in_everywhere(hosts: list[ServerProcess]) -> list[IdomClient]:
    views = [group[0] for host in hosts for group in await views_on_every_worker(host)]
    for view in views:
        await view.login("alice", PASSWORD)
        await view.wait_for_id("greeting")
    return views


async def signed_out(view: IdomClient) -> None:
    await view.wait_for(lambda c: c.find("login-form") is not None, timeout=15.0)


async def test_three_hosts_hold_three_listeners_and_stay_within_the_pool(
    hosts: list[ServerProcess], db_url: str
) -> None:
    database = database_of(db_url)
    await listeners(database, expected=HOSTS)
    with Sampler(database) as sampled:
        views = await signed_in_everywhere(hosts)  # twelve sign-ins, one per worker
        actor = await IdomClient.connect(hosts[0].base_url)
        await actor.login("alice", PASSWORD)
        await actor.wait_for_id("greeting")
        await actor.click("logout-others")
        for view in views:
            await signed_out(view)
        counts = await connections(database)
    assert counts[LISTEN] == HOSTS and sampled.most[LISTEN] == HOSTS, sampled.most
    assert 0 < sampled.most[SERVER] <= POOL, sampled.most
    assert set(sampled.most) <= {"authdemo", SERVER, LISTEN}, sampled.most
    for view in [*views, actor]:
        await view.close()


async def test_a_revocation_while_pgbouncer_restarts_is_not_lost(
    hosts: list[ServerProcess], db_url: str, bouncer: PgBouncer
) -> None:
    await listeners(database_of(db_url), expected=HOSTS)
    views = await signed_in_everywhere(hosts)
    bouncer.stop()
    # The operator's command goes straight to PostgreSQL; its notification reaches every
    # worker at once, and their reads fail until PgBouncer is back.
    await operator_revokes("alice", db_url)
    await asyncio.sleep(1.0)  # several failed reads on every worker
    bouncer.start()
    for view in views:
        await signed_out(view)
    for view in views:
        await view.close()


async def test_a_revocation_by_the_cli_through_pgbouncer_reaches_all_twelve_workers(
    hosts: list[ServerProcess], db_url: str, bouncer: PgBouncer
) -> None:
    await listeners(database_of(db_url), expected=HOSTS)
    views = await signed_in_everywhere(hosts)
    await operator_revokes("alice", bouncer.url(database_of(db_url)), listen_url=db_url)
    for view in views:
        await signed_out(view)
    for view in views:
        await view.close()
