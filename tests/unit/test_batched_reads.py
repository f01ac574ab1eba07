"""``BatchedReads``: keys asked at once are read together, and an ask is never answered
by a read that had started before it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from typing import Any

import pytest

from authdemo.service.batching import BatchedReads


class Store:
    """A table of values that a test changes between reads, and the reads made of it,
    each parked until the test lets it answer (``release``)."""

    def __init__(self) -> None:
        self.values: dict[int, str] = {}
        self.reads: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.fail: BaseException | None = None

    async def read_many(self, keys: list[int]) -> Mapping[int, str]:
        self.reads.append(keys)
        found = {key: self.values[key] for key in keys if key in self.values}  # read now
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail is not None:
            raise self.fail
        return found

    async def release(self, read: int) -> None:
        await self.started(read + 1)
        self.gates[read].set()

    async def started(self, reads: int) -> None:
        for _ in range(100):
            if len(self.reads) >= reads:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{reads} reads expected, {len(self.reads)} started")


async def test_an_ask_when_nothing_runs_is_read_at_once_alone() -> None:
    store = Store()
    store.values[1] = "one"
    reads = BatchedReads(store.read_many)
    answer = asyncio.ensure_future(reads(1))
    await store.release(0)
    assert await answer == "one"
    assert store.reads == [[1]]
    missing = asyncio.ensure_future(reads(2))
    await store.release(1)
    assert await missing is None  # not found: None, as the port leaves it out
    assert store.reads == [[1], [2]]


async def test_keys_asked_while_a_read_runs_are_read_together_next_each_once() -> None:
    store = Store()
    store.values.update({1: "a", 2: "b", 3: "c"})
    reads = BatchedReads(store.read_many)
    first = asyncio.ensure_future(reads(1))
    await store.started(1)
    later = [asyncio.ensure_future(reads(k)) for k in (2, 3, 2, 1)]
    await asyncio.sleep(0)
    assert store.reads == [[1]]  # nothing else starts while the first read runs
    await store.release(0)
    await store.release(1)
    assert await first == "a"
    assert await asyncio.gather(*later) == ["b", "c", "b", "a"]
    assert store.reads == [[1], [2, 3, 1]]


async def test_an_ask_is_never_answered_by_a_read_that_started_before_it() -> None:
    """The second ask of key 1 comes after a change that the running read did not see:
    it waits for the next read, which sees it (a view re-reading after a revoke must not
    get the list from before it)."""
    store = Store()
    store.values[1] = "before"
    reads = BatchedReads(store.read_many)
    first = asyncio.ensure_future(reads(1))
    await store.started(1)
    store.values[1] = "after"  # changed once the first read had read
    second = asyncio.ensure_future(reads(1))
    await store.release(0)
    assert await first == "before"
    await asyncio.sleep(0)
    assert not second.done()
    await store.release(1)
    assert await second == "after"
    assert store.reads == [[1], [1]]


async def test_a_failed_read_fails_its_callers_and_the_next_read_goes_on() -> None:
    store = Store()
    store.values.update({1: "a", 2: "b"})
    store.fail = RuntimeError("the database went away")
    reads = BatchedReads(store.read_many)
    first = asyncio.ensure_future(reads(1))
    await store.started(1)
    second = asyncio.ensure_future(reads(2))
    await store.release(0)
    with pytest.raises(RuntimeError, match="went away"):
        await first
    store.fail = None
    await store.release(1)
    assert await second == "b"


async def test_a_caller_that_goes_away_leaves_the_read_to_the_others() -> None:
    """Cancelling one caller cancels neither the shared answer nor the read: the others
    get it, and an answer nobody collects is not reported as lost."""
    store = Store()
    store.values[1] = "a"
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
    reads = BatchedReads(store.read_many)
    first = asyncio.ensure_future(reads(1))
    await store.started(1)
    gone, stays = asyncio.ensure_future(reads(1)), asyncio.ensure_future(reads(1))
    await asyncio.sleep(0)
    gone.cancel()
    await store.release(0)
    await store.release(1)
    assert await first == "a" and await stays == "a"
    assert gone.cancelled()

    store.fail = RuntimeError("nobody hears this")
    alone = asyncio.ensure_future(reads(1))
    await store.started(3)
    alone.cancel()
    await store.release(2)
    await asyncio.sleep(0)
    del alone
    gc.collect()
    assert reported == []


async def test_no_more_than_the_limit_is_read_in_one_statement() -> None:
    store = Store()
    store.values.update({k: str(k) for k in range(6)})
    reads = BatchedReads(store.read_many, limit=2)
    asked = [asyncio.ensure_future(reads(k)) for k in range(6)]
    for read in range(4):
        await store.release(read)
    assert await asyncio.gather(*asked) == [str(k) for k in range(6)]
    assert store.reads == [[0], [1, 2], [3, 4], [5]]


def test_a_read_left_behind_by_a_closed_loop_does_not_hold_up_the_next() -> None:
    store = Store()
    store.values[1] = "a"
    reads = BatchedReads(store.read_many)

    left: list[asyncio.Future[str | None]] = []

    async def ask_and_leave() -> None:
        left.append(asyncio.ensure_future(reads(1)))
        await store.started(1)  # the read is parked when this loop ends

    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # its tasks die pending
    loop.run_until_complete(ask_and_leave())
    loop.close()  # closed under the parked read, which never answers

    async def ask_again() -> str | None:
        answer = asyncio.ensure_future(reads(1))
        await store.release(1)
        return await answer

    assert asyncio.run(ask_again()) == "a"
