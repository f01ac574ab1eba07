"""Several workers (one database file or server) and several hosts (two processes on one
database): revocations reach every open tab, and no sticky sessions are needed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scale.conftest import PASSWORD, create_users
from tests.support.idom_client import IdomClient, page_cookie
from tests.support.server import ServerProcess, start_all
from tests.support.sockets import owner_pid
from tests.support.workers import spread_views

pytestmark = pytest.mark.slow


async def signed_in_client(base_url: str, cookie: str | None = None) -> IdomClient:
    client = await IdomClient.connect(base_url, cookie=cookie)
    await client.login("alice", PASSWORD)
    await client.wait_for_id("greeting")
    return client


@pytest.fixture
def two_workers(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, tmp_path / "workers.log", workers=2)
    server.start(meanwhile=lambda: create_users(db_url, "alice"))
    yield server
    server.stop()


async def test_a_revocation_through_one_worker_reaches_a_tab_on_the_other(
    two_workers: ServerProcess,
) -> None:
    clients, spare = await spread_views(  # a signed-in tab on each worker
        two_workers, lambda: signed_in_client(two_workers.base_url)
    )
    (actor,), (bystander,) = clients.values()
    started = time.monotonic()
    await actor.click("logout-others")
    await bystander.wait_for(lambda c: c.find("login-form") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0
    for client in [actor, bystander, *spare]:
        await client.close()


@pytest.fixture
def two_hosts(db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(db_url, tmp_path / "host-a.log")
    second = ServerProcess(db_url, tmp_path / "host-b.log")
    start_all([first, second], meanwhile=lambda: create_users(db_url, "alice"))
    yield first, second
    first.stop()
    second.stop()


async def test_a_cookie_from_one_host_is_signed_in_on_the_other(
    two_hosts: tuple[ServerProcess, ServerProcess],
) -> None:
    host_a, host_b = two_hosts
    client = await IdomClient.connect(host_a.base_url, follow_tickets=False)
    await client.login("alice", PASSWORD)
    await client.wait_for(lambda c: c.ticket_src() is not None)
    # The browser's image requests may land on either host: both on the other one. Its
    # "cookie held" reaches this host's view through the outbox.
    response = await client.redeem(host_b.base_url)
    assert response.status_code == 303
    await client.wait_for_id("greeting", timeout=5)
    async with await IdomClient.connect(host_b.base_url, cookie=client.cookie) as elsewhere:
        assert elsewhere.find("greeting") is not None
    await client.close()


async def test_a_revocation_on_one_host_reaches_a_tab_on_the_other(
    two_hosts: tuple[ServerProcess, ServerProcess],
) -> None:
    host_a, host_b = two_hosts
    actor = await signed_in_client(host_a.base_url)
    bystander = await signed_in_client(host_b.base_url)
    started = time.monotonic()
    await actor.click("logout-others")
    await bystander.wait_for(lambda c: c.find("login-form") is not None, timeout=1.0)
    assert time.monotonic() - started < 1.0
    await actor.close()
    await bystander.close()


def test_workers_refuse_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path / "x.log", workers=2
    )
    with pytest.raises(RuntimeError, match="run `authdemo migrate`"):
        server.start(timeout=15)


async def get_on_worker(server: ServerProcess, pid: int, path: str, headers: dict[str, str]) -> int:
    """GET ``path`` over a connection that worker ``pid`` accepted; the status."""
    for _ in range(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            port = int(writer.get_extra_info("sockname")[1])
            await asyncio.sleep(0.05)  # ss lists the connection once it was accepted
            if owner_pid(server.port, port) != pid:
                continue
            lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
            await writer.drain()
            status_line = await reader.readline()
            return int(status_line.split()[1])
        finally:
            writer.close()
    raise AssertionError(f"no connection reached worker {pid}")


async def test_a_follow_answered_by_one_worker_reaches_a_tab_on_the_other(
    two_workers: ServerProcess,
) -> None:
    base_url = two_workers.base_url
    pre_sign_in = await page_cookie(base_url)
    tabs, spare = await spread_views(  # one tab of this browser on each worker
        two_workers,
        lambda: IdomClient.connect(base_url, cookie=pre_sign_in, follow_tickets=False),
    )
    (one_pid, (one,)), (_, (two,)) = tabs.items()
    await one.login("alice", PASSWORD)
    await one.wait_for(lambda c: c.ticket_src() is not None)
    assert (await one.redeem(base_url)).status_code == 303
    await one.wait_for_id("greeting")
    await two.wait_for(lambda c: c.follow_src() is not None, timeout=1.0)
    src = two.follow_src()
    assert src is not None
    # The browser's image request lands on the *first* worker: the answer travels to
    # the second through the broadcast.
    headers = {"sec-fetch-site": "same-origin", "Cookie": str(one.cookie)}
    started = time.monotonic()
    assert await get_on_worker(two_workers, one_pid, src, headers) == 200
    await two.wait_for_id("greeting", timeout=1.0)
    assert time.monotonic() - started < 1.0
    for tab in [one, two, *spare]:
        await tab.close()
