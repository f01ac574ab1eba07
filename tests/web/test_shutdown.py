"""Stopping the server: a background task that ignores its cancellation never holds the
stop up (it is logged and left behind)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from authdemo.http import app as app_module
from authdemo.http.app import AuthdemoApp
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
