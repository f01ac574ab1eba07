"""Views held open on every worker of a real server, and the listeners PostgreSQL sees."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from tests.support.idom_client import IdomClient
from tests.support.pg import connections
from tests.support.server import ServerProcess
from tests.support.sockets import owner_pid

LISTEN = "authdemo-listen"


def local_port(client: IdomClient) -> int:
    return int(client.ws.transport.get_extra_info("sockname")[1])


SPARE_PAUSE = 0.1
"""Seconds to wait after a view lands on a worker that has its share already."""


async def spread_views(
    server: ServerProcess,
    connect: Callable[[], Awaitable[IdomClient]] | None = None,
    each: int = 1,
) -> tuple[dict[int, list[IdomClient]], list[IdomClient]]:
    """Views opened with ``connect`` (a plain ``IdomClient.connect`` by default) until
    every worker of ``server`` holds ``each``: the views by worker pid, and the spare
    ones that landed on a worker that had its share (still open; the caller closes them).

    The workers share one listening socket, and Linux hands a new connection to whichever
    worker's accept runs first: a worker busy elsewhere (the end of its start, another
    test on the same two cores) can lose that race many times in a row (40 times once in
    CI). So a spare view is followed by a pause, for the other worker to be waiting too."""
    opened = connect or (lambda: IdomClient.connect(server.base_url))
    views: dict[int, list[IdomClient]] = {}
    spare: list[IdomClient] = []

    def done() -> bool:
        return len(views) == server.workers and all(len(g) >= each for g in views.values())

    for _ in range(50 * server.workers * each):
        client = await opened()
        group = views.setdefault(owner_pid(server.port, local_port(client)), [])
        if len(group) < each:
            group.append(client)
            if done():
                return views, spare
        else:
            spare.append(client)
            await asyncio.sleep(SPARE_PAUSE)
    for client in [*spare, *(c for g in views.values() for c in g)]:
        await client.close()
    held = {pid: len(group) for pid, group in views.items()}
    raise AssertionError(f"the kernel never spread our views over every worker: {held}")


async def views_on_every_worker(server: ServerProcess, each: int = 1) -> list[list[IdomClient]]:
    """``each`` open views on every worker of ``server``: one list per worker."""
    views, spare = await spread_views(server, each=each)
    for client in spare:
        await client.close()
    return list(views.values())


async def listeners(database: str, expected: int = 1, within: float = 15.0) -> dict[str, int]:
    """The database's connections by name, once exactly ``expected`` listeners are there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (counts := await connections(database)).get(LISTEN, 0) != expected:
        assert loop.time() < deadline, f"expected {expected} listener(s), have {counts}"
        await asyncio.sleep(0.1)
    return counts


async def operator_revokes(username: str, database_url: str, listen_url: str | None = None) -> None:
    """``authdemo revoke-sessions username``, as an operator runs it; it must succeed."""
    env = {**os.environ, "AUTHDEMO_DATABASE_URL": database_url}
    if listen_url is not None:
        env["AUTHDEMO_LISTEN_URL"] = listen_url
    command = [sys.executable, "-m", "authdemo", "revoke-sessions", username]
    cli = await asyncio.create_subprocess_exec(*command, env=env)
    assert await cli.wait() == 0
