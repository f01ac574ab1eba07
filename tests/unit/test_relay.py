"""The host's relay: what the one listener hears reaches every worker connected to it,
and a worker that loses the relay reads the outbox often until it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authdemo.relay import RelayClient, RelayServer


class Recorder:
    def __init__(self) -> None:
        self.heard: list[object] = []
        self.changed = asyncio.Event()

    def notified(self, row_id: int | None) -> None:
        self.heard.append(row_id)
        self.changed.set()

    def listening(self, on: bool) -> None:
        self.heard.append("listening" if on else "deaf")
        self.changed.set()

    async def until(self, count: int) -> list[object]:
        async with asyncio.timeout(5):
            while len(self.heard) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.heard


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[tuple[RelayServer, str]]:
    server = RelayServer()
    path = str(tmp_path / "listen.sock")
    unix = await asyncio.start_unix_server(server.serve_client, path)
    yield server, path
    unix.close()
    server.close()


@contextlib.asynccontextmanager
async def worker(path: str, recorder: Recorder) -> AsyncIterator[None]:
    task = asyncio.create_task(RelayClient(path, recorder, retry=0.05).run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_worker_hears_the_state_on_connecting_then_each_notification(
    relay: tuple[RelayServer, str],
) -> None:
    server, path = relay
    server.listening(True)
    first, second = Recorder(), Recorder()
    async with worker(path, first), worker(path, second):
        await first.until(1)
        await second.until(1)
        server.notified(41)
        server.notified(None)
        assert await first.until(3) == ["listening", 41, None]
        assert await second.until(3) == ["listening", 41, None]


async def test_a_listener_that_lost_postgresql_sends_the_workers_polling(
    relay: tuple[RelayServer, str],
) -> None:
    server, path = relay
    recorder = Recorder()
    async with worker(path, recorder):
        assert await recorder.until(1) == ["deaf"]
        server.listening(True)
        server.listening(False)
        assert await recorder.until(3) == ["deaf", "listening", "deaf"]


async def test_a_worker_that_loses_the_relay_polls_and_catches_up_when_it_is_back(
    relay: tuple[RelayServer, str],
) -> None:
    server, path = relay
    server.listening(True)
    recorder = Recorder()
    async with worker(path, recorder):
        await recorder.until(1)
        server.close()  # the listener process went away (its socket closes)
        assert await recorder.until(3) == ["listening", "deaf", "listening"]  # reconnected
