"""The server's background tasks: the SQLite WAL checkpoints run beside the requests;
at the stop, a task that ignores its cancellation never holds the stop up (it is
logged and left behind), and database work under way ends, its connection given back,
before the engine is disposed of."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy import event

from authdemo.broadcast import BroadcastFollower
from authdemo.http import app as app_module
from authdemo.http.app import CHECKPOINT_TASK, AuthdemoApp
from tests.support.live import serve


async def stubborn() -> None:
    """Swallows every cancellation, as a misbehaving library might."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


async def test_a_background_task_that_will_not_stop_does_not_hold_up_the_stop(
    app: AuthdemoApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app_module, "BACKGROUND_STOP_WAIT", 0.2)
    caplog.set_level(logging.WARNING, logger="authdemo.http.app")
    left: asyncio.Task[None] | None = None
    async with serve(app) as live:
        left = asyncio.create_task(stubborn(), name="stubborn")
        live.app.ctx.background.append(left)
        await asyncio.sleep(0.05)  # it runs, into its sleep
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert "background task stubborn did not stop; left behind" in caplog.text
    assert left is not None and not left.done()
    left.get_coro().close()  # type: ignore[union-attr]


async def test_a_server_on_sqlite_runs_the_checkpoints_and_stops_them(
    app: AuthdemoApp, db_backend: str
) -> None:
    async with serve(app) as live:
        named = [t for t in live.app.ctx.background if t.get_name() == CHECKPOINT_TASK]
        assert len(named) == (1 if db_backend == "sqlite" else 0)
        await asyncio.sleep(0.05)
        assert all(not t.done() for t in named)
    assert all(t.done() for t in named)


async def test_a_poll_under_way_at_the_stop_gives_its_connection_back_before_the_close(
    app: AuthdemoApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut instead, the connection would be dropped unclosed (a SQLite connection's
    thread then answers a loop that is closed, in whichever test runs next)."""
    polling = asyncio.Event()
    real_poll = BroadcastFollower.poll

    async def slow_poll(self: BroadcastFollower) -> int:
        async with self._uow() as tx:  # a connection held across the stop
            await tx.broadcasts.position()
            polling.set()
            await asyncio.sleep(0.3)
        return await real_poll(self)

    monkeypatch.setattr(BroadcastFollower, "poll", slow_poll)
    in_use = [1]  # the poll's connection, taken before the count starts
    at_dispose: list[int] = []
    async with serve(app) as live:
        await asyncio.wait_for(polling.wait(), 5)
        engine = live.app.ctx.runtime.engine.sync_engine
        event.listen(engine, "checkout", lambda *_: in_use.append(1))
        event.listen(engine, "checkin", lambda *_: in_use.append(-1))
        event.listen(engine, "engine_disposed", lambda *_: at_dispose.append(sum(in_use)))
    assert at_dispose == [0]
