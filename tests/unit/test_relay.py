"""The host's relay: what the one listener hears reaches every worker connected to it,
and a worker that loses the relay reads the outbox often until it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authdemo import relay as relay_module
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


async def test_a_worker_that_stops_reading_is_disconnected_and_catches_up_on_reconnecting(
    relay: tuple[RelayServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that leaves the relay's lines unread is dropped once its backlog passes
    ``MAX_BACKLOG``, and dropping means disconnecting: only the end of its connection
    tells the worker that it missed notifications (it then reads the outbox, connects
    again, and the ``L`` it gets makes it catch up)."""
    server, path = relay
    server.listening(True)
    monkeypatch.setattr(relay_module, "MAX_BACKLOG", 16 * 1024)
    stalled: list[asyncio.BaseTransport] = []
    real_open = asyncio.open_unix_connection

    async def first_connection_stalls(
        path: str,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await real_open(path)
        if not stalled:  # the worker's first connection stops reading (a busy loop, …)
            writer.transport.pause_reading()
            stalled.append(writer.transport)
        return reader, writer

    monkeypatch.setattr(asyncio, "open_unix_connection", first_connection_stalls)
    recorder = Recorder()
    async with worker(path, recorder):
        async with asyncio.timeout(10):
            while server.workers == 0:
                await asyncio.sleep(0.01)
        sent = 0
        while server.workers and sent < 1_000_000:  # until the relay gives up on it
            server.notified(sent)
            sent += 1
        assert server.workers == 0, "the relay never dropped the stalled worker"
        stalled[0].resume_reading()  # it reads what was sent before the drop, then...
        async with asyncio.timeout(10):
            while recorder.heard[-2:] != ["deaf", "listening"]:
                recorder.changed.clear()
                await recorder.changed.wait()
        assert recorder.heard[0] == "listening"
        assert server.workers == 1  # connected again
        server.notified(7)
        assert (await recorder.until(len(recorder.heard) + 1))[-1] == 7
