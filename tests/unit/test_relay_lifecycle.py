"""The relay's edges: when a worker says it lost the host's listener (once, after a grace),
when the relay drops a worker, and how the main process starts and stops the listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from authdemo import relay as relay_module
from authdemo.relay import (
    MAX_BACKLOG,
    RELAY_ENV,
    HostListener,
    RelayClient,
    RelayServer,
    install_host_listener,
    relay_path,
    serve_host_listener,
)


class Strict:
    """Records exactly what a change-feed target is told."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, object]] = []

    def notified(self, row_id: int | None) -> None:
        self.heard.append(("notified", row_id))

    def listening(self, on: bool) -> None:
        self.heard.append(("listening", on))


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@contextlib.asynccontextmanager
async def running(coroutine: Any) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def relay_at(path: str, listening: bool = True) -> AsyncIterator[RelayServer]:
    server = RelayServer()
    server.listening(listening)
    unix = await asyncio.start_unix_server(server.serve_client, path)
    try:
        yield server
    finally:
        unix.close()
        server.close()
        await unix.wait_closed()


class FakeWriter:
    def __init__(self, backlog: int) -> None:
        self.transport = SimpleNamespace(get_write_buffer_size=lambda: backlog)
        self.lines: list[bytes] = []
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def close(self) -> None:
        self.closed = True


def test_the_relay_drops_and_disconnects_a_worker_only_past_the_backlog(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RelayServer()
    at_limit, past = FakeWriter(MAX_BACKLOG), FakeWriter(MAX_BACKLOG + 1)
    server._writers |= {at_limit, past}  # type: ignore[arg-type]
    server.notified(5)
    assert at_limit.lines == [b"N5\n"] and not at_limit.closed
    assert past.lines == [] and past.closed
    assert server.workers == 1
    assert warnings(caplog) == ["a worker stopped reading the relay; dropping it"]


async def test_a_worker_that_goes_away_leaves_the_relay(tmp_path: Path) -> None:
    path = str(tmp_path / "listen.sock")
    async with relay_at(path) as server:
        async with running(RelayClient(path, Strict(), retry=0.02).run()):
            await until(lambda: server.workers == 1)
        await until(lambda: server.workers == 0)


async def test_a_worker_warns_once_when_the_listener_stays_away_past_the_startup_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "listen.sock")
    monkeypatch.setattr(relay_module, "STARTUP_GRACE", 0.4)
    target = Strict()
    async with running(RelayClient(path, target, retry=0.02).run()):
        await asyncio.sleep(0.1)
        assert warnings(caplog) == []  # the listener may just not have made its socket yet
        await until(lambda: bool(warnings(caplog)))
        await asyncio.sleep(0.1)  # several more failed attempts
        [warning] = warnings(caplog)
        assert warning.startswith("cannot follow the host's listener: ")
        assert target.heard == []  # never listening, so never told it stopped
        monkeypatch.setattr(relay_module, "RESTART_GRACE", 0.2)
        async with relay_at(path):
            await until(lambda: target.heard == [("listening", True)])
            assert warnings(caplog)[1:] == ["following the host's listener again"]
        # Lost again for longer than the grace: said again (it is news again).
        await until(lambda: len(warnings(caplog)) == 3)
        assert warnings(caplog)[2].startswith("cannot follow the host's listener: ")


async def test_a_worker_that_loses_the_listener_warns_only_if_it_stays_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "listen.sock")
    monkeypatch.setattr(relay_module, "RESTART_GRACE", 0.4)
    target = Strict()
    async with running(RelayClient(path, target, retry=0.02).run()):
        async with relay_at(path):
            await until(lambda: target.heard == [("listening", True)])
        await until(lambda: len(target.heard) == 2)
        async with relay_at(path):  # back within the grace: nothing to say
            await until(lambda: len(target.heard) == 3)
        assert warnings(caplog) == []
        await asyncio.sleep(0.1)
        assert warnings(caplog) == []
        await until(lambda: bool(warnings(caplog)))  # away for longer than the grace
        await asyncio.sleep(0.1)
        [warning] = warnings(caplog)
        assert warning.startswith("cannot follow the host's listener: ")
        # told once that it stopped listening each time, however many attempts follow
        assert target.heard == [
            ("listening", True),
            ("listening", False),
            ("listening", True),
            ("listening", False),
        ]


async def test_a_worker_says_when_the_listener_went_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "listen.sock")
    monkeypatch.setattr(relay_module, "RESTART_GRACE", 0.0)  # no patience: warn at once
    target = Strict()
    async with running(RelayClient(path, target, retry=10).run()):
        async with relay_at(path):
            await until(lambda: target.heard == [("listening", True)])
        await until(lambda: bool(warnings(caplog)))
    assert warnings(caplog) == ["cannot follow the host's listener: the host's listener went away"]


async def test_a_worker_retries_the_relay_every_fifth_of_a_second_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        pauses.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(relay_module.asyncio, "sleep", sleep)
    async with running(RelayClient(str(tmp_path / "none.sock"), Strict()).run()):
        while len(pauses) < 3:
            await real_sleep(0.001)
    assert pauses[:3] == [0.2, 0.2, 0.2]


class FakeNotifications:
    made: list[FakeNotifications] = []

    def __init__(self, url: str, target: Any, *, keepalive: float, retry: float) -> None:
        self.args = (url, target, keepalive, retry)
        self.cancelled = False
        FakeNotifications.made.append(self)

    async def run(self) -> None:
        self.args[1].listening(True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale socket file"])
async def test_the_host_listener_serves_its_workers_until_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stale: bool
) -> None:
    FakeNotifications.made = []
    monkeypatch.setattr(relay_module, "PostgresNotifications", FakeNotifications)
    path = tmp_path / "listen.sock"
    if stale:
        path.write_text("left by a listener that was killed")
    target = Strict()
    async with (
        running(serve_host_listener("postgresql://db/x", str(path))),
        running(RelayClient(str(path), target, retry=0.02).run()),
    ):
        await until(lambda: target.heard == [("listening", True)])
        [notifications] = FakeNotifications.made
        url, relay, keepalive, retry = notifications.args
        assert (url, keepalive, retry) == ("postgresql://db/x", 5.0, 1.0)
        relay.notified(9)
        await until(lambda: target.heard[-1:] == [("notified", 9)])
        assert relay.workers == 1
    assert notifications.cancelled
    assert relay.workers == 0  # closed with the listener
    with pytest.raises(ConnectionRefusedError):  # the socket no longer accepts
        await asyncio.open_unix_connection(str(path))


def test_the_host_listener_thread_runs_the_listener_until_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = threading.Event()
    seen: list[object] = []

    async def serve(listen_url: str, path: str) -> None:
        seen.append((listen_url, path, threading.current_thread().name))
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    monkeypatch.setattr(relay_module, "serve_host_listener", serve)
    listener = HostListener("postgresql://db/x", "/tmp/x.sock")
    assert listener._thread.daemon  # never keeps a stopping host alive
    listener.start()
    assert started.wait(5)
    listener.stop()
    assert not listener._thread.is_alive()
    assert seen == [("postgresql://db/x", "/tmp/x.sock", "authdemo-listen"), "cancelled"]
    assert listener._loop.is_closed()


def test_stopping_the_host_listener_waits_no_longer_than_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    started, release = threading.Event(), threading.Event()

    async def stubborn(listen_url: str, path: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            release.wait(10)  # a listener slow to let go (a blocking close)
            raise

    monkeypatch.setattr(relay_module, "serve_host_listener", stubborn)
    listener = HostListener("postgresql://db/x", "/tmp/x.sock")
    listener.start()
    assert started.wait(5)
    began = time.monotonic()
    listener.stop(timeout=0.2)
    try:
        assert time.monotonic() - began < 5
        assert listener._thread.is_alive()  # given up on, not waited for
    finally:
        release.set()
        listener._thread.join(5)


class FakeListener:
    made: list[FakeListener] = []

    def __init__(self, listen_url: str, path: str) -> None:
        self.listen_url, self.path = listen_url, path
        self.events: list[str] = []
        FakeListener.made.append(self)

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


def _app(workers: int) -> Any:
    listeners: dict[str, Callable[[Any], None]] = {}

    def on(event: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            listeners[event] = fn
            return fn

        return register

    return SimpleNamespace(
        state=SimpleNamespace(workers=workers),
        main_process_start=on("start"),
        main_process_stop=on("stop"),
        listeners=listeners,
    )


def test_the_main_process_of_several_workers_on_postgresql_runs_the_hosts_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeListener.made = []
    monkeypatch.setattr(relay_module, "HostListener", FakeListener)
    monkeypatch.delenv(RELAY_ENV, raising=False)
    settings = SimpleNamespace(
        database_url="postgresql+asyncpg://db/x", listener_url="postgresql+asyncpg://direct/x"
    )
    app = _app(workers=2)
    install_host_listener(app, settings)  # type: ignore[arg-type]
    app.listeners["start"](app)
    [listener] = FakeListener.made
    assert listener.listen_url == "postgresql+asyncpg://direct/x"
    folder = Path(listener.path).parent
    assert Path(listener.path).name == "listen.sock" and folder.is_dir()
    assert os.environ[RELAY_ENV] == listener.path == relay_path()
    app.listeners["stop"](app)
    assert listener.events == ["start", "stop"]
    assert not folder.exists()
    assert RELAY_ENV not in os.environ and relay_path() is None


@pytest.mark.parametrize(
    ("workers", "url"), [(1, "postgresql+asyncpg://db/x"), (2, "sqlite+aiosqlite:///x.db")]
)
def test_one_worker_or_sqlite_runs_no_hosts_listener(
    monkeypatch: pytest.MonkeyPatch, workers: int, url: str
) -> None:
    FakeListener.made = []
    monkeypatch.setattr(relay_module, "HostListener", FakeListener)
    monkeypatch.delenv(RELAY_ENV, raising=False)
    app = _app(workers)
    install_host_listener(app, SimpleNamespace(database_url=url, listener_url=url))  # type: ignore[arg-type]
    app.listeners["start"](app)
    app.listeners["stop"](app)
    assert FakeListener.made == [] and RELAY_ENV not in os.environ


def test_an_empty_relay_variable_means_no_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RELAY_ENV, "")
    assert relay_path() is None
