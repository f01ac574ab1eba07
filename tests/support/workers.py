"""Views held open on every worker of a real server, and the listeners PostgreSQL sees."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.idom_client import IdomClient
from tests.support.pg import connections
from tests.support.server import ServerProcess
from tests.support.sockets import owner_pid

LISTEN = "authdemo-listen"


def local_port(client: IdomClient) -> int:
    return int(client.ws.transport.get_extra_info("sockname")[1])


async def views_on_every_worker(server: ServerProcess, each: int = 1) -> list[list[IdomClient]]:
    """``each`` open views on every worker of ``server``: one list per worker."""
    views: dict[int, list[IdomClient]] = {}
    for _ in range(50 * server.workers * each):
        if len(views) == server.workers and all(len(group) >= each for group in views.values()):
            break
        client = await IdomClient.connect(server.base_url)
        group = views.setdefault(owner_pid(server.port, local_port(client)), [])
        if len(group) < each:
            group.append(client)
        else:
            await client.close()
    assert len(views) == server.workers, "the kernel never spread our views over every worker"
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
