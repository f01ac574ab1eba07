"""``finish_first``: a background task's database work is never cut half-way by the
task's cancellation at shutdown, and the cancellation still gets through."""

from __future__ import annotations

import asyncio
import gc

import pytest

from authdemo.tasks import finish_first


async def test_the_result_and_the_failure_of_the_operation_pass_through() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise OSError("disk I/O error")

    assert await finish_first(answer()) == 42
    with pytest.raises(OSError, match="disk I/O error"):
        await finish_first(fail())


async def test_a_cancelled_caller_ends_only_after_the_operation_then_is_cancelled() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    steps: list[str] = []

    async def operation() -> None:
        started.set()
        await release.wait()
        steps.append("operation ended")

    async def caller() -> None:
        await finish_first(operation())
        steps.append("caller went on")  # never: it was cancelled

    task = asyncio.create_task(caller())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # waiting for the operation
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["operation ended"]


async def test_an_operation_that_fails_after_the_cancellation_is_not_reported_as_lost() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))

    async def operation() -> None:
        started.set()
        await release.wait()
        raise OSError("database away")

    task = asyncio.create_task(finish_first(operation()))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    del task
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []  # no "Task exception was never retrieved"


async def test_a_second_cancellation_is_not_held_back() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    inner = asyncio.ensure_future(forever())
    task = asyncio.create_task(finish_first(inner))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.sleep(0.01)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not inner.done()  # still shielded: whoever owns it decides
    inner.cancel()
