"""Background work that a shutdown must not cut half-way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish_first(operation: Awaitable[T]) -> T:
    """Await ``operation``; if the caller is cancelled meanwhile, let ``operation`` run to
    its end first, then let the cancellation through.

    For a background task's database work (a broadcast poll, a WAL checkpoint): cancelled
    at shutdown, the task ends only once its connection is back in the pool, so the engine
    is never disposed, nor the event loop closed, under a query still running. (Cut
    instead, the connection is dropped unclosed, and its SQLite thread later answers a
    closed loop.) A second cancellation while waiting is not held back."""
    task = asyncio.ensure_future(operation)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: its failure does not matter once we stop
        raise
