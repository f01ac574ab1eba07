"""Many idle signed-in websockets: all stay alive, and memory does not creep while held
(bench/run.py holds 1,000 for 60 s and reports RSS per connection)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.prep import signed_in_cookies
from tests.support.db import in_thread
from tests.support.idom_client import IdomClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_idle_websockets_stay_alive_and_memory_stays_flat(
    db_url: str, tmp_path: Path
) -> None:
    count = 200
    cookies = in_thread(lambda: signed_in_cookies(db_url, count, users=count))
    server = ServerProcess(
        db_url,
        tmp_path / "server.log",
        env={"AUTHDEMO_WS_PER_ADDRESS": "1000", "AUTHDEMO_WS_PING_INTERVAL": "1s"},
    ).start()
    assert server.process is not None
    try:
        gate = asyncio.Semaphore(50)

        async def open_one(cookie: str) -> IdomClient:
            async with gate:
                client = await IdomClient.connect(server.base_url, cookie=cookie, timeout=30)
                await client.wait_for_id("greeting", timeout=30)
                return client

        clients = await asyncio.gather(*(open_one(c) for c in cookies))
        await asyncio.sleep(2)
        settled = rss_kib(server.process.pid)
        await asyncio.sleep(6)  # idle, with pings every second
        later = rss_kib(server.process.pid)
        assert later - settled < 2048, (settled, later)  # no per-second growth
        assert all(c.ws.state.name == "OPEN" for c in clients)
        note = clients[0].find("note")
        assert note is not None
        await clients[0].fire(note, "on_change", {"target": {"value": "still here"}})
        await clients[0].wait_for_id("note-saved")
        for client in clients:
            await client.close()
    finally:
        server.stop()
