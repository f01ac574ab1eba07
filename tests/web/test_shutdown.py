"""The server's background tasks: the SQLite WAL checkpoints run beside the requests,
and, at the stop, a task that ignores its cancellation never holds the stop up (it is
logged and left behind)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

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
