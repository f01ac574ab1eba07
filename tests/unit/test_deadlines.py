"""Every open view's expiry on one loop timer (``authdemo.ui.connection.deadlines``):
``call_later``'s semantics, one timer in the loop however many views wait."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from authdemo.ui.connection.deadlines import Deadlines

VIEW: contextvars.ContextVar[str] = contextvars.ContextVar("view", default="none")


def _scheduled(loop: asyncio.AbstractEventLoop) -> int:
    """Timers the loop holds that are not cancelled (asyncio's own heap)."""
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]


async def test_callbacks_run_once_in_the_order_of_their_times() -> None:
    deadlines = Deadlines()
    ran: list[str] = []
    deadlines.call_later(0.03, lambda: ran.append("c"))
    deadlines.call_later(0.01, lambda: ran.append("a"))
    deadlines.call_later(0.02, lambda: ran.append("b"))
    await asyncio.sleep(0.08)
    assert ran == ["a", "b", "c"]
    assert len(deadlines) == 0


async def test_nothing_runs_early() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    started = loop.time()
    ran: list[float] = []
    deadlines.call_later(0.05, lambda: ran.append(loop.time()))
    await asyncio.sleep(0.02)
    assert ran == []
    await asyncio.sleep(0.08)
    assert len(ran) == 1 and ran[0] - started >= 0.05 - 0.002


async def test_a_thousand_views_hold_one_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    before = _scheduled(loop)
    deadlines = Deadlines()
    entries = [deadlines.call_later(60 + i / 1000, lambda: None) for i in range(1000)]
    assert len(deadlines) == 1000
    assert _scheduled(loop) == before + 1
    # An earlier deadline re-arms the one timer rather than adding another.
    deadlines.call_later(30, lambda: None)
    assert _scheduled(loop) == before + 1
    for entry in entries:
        entry.cancel()
    assert len(deadlines) == 1


async def test_a_cancelled_deadline_never_runs() -> None:
    deadlines = Deadlines()
    ran: list[str] = []
    first = deadlines.call_later(0.01, lambda: ran.append("first"))
    deadlines.call_later(0.02, lambda: ran.append("second"))
    first.cancel()
    first.cancel()  # twice is once
    assert len(deadlines) == 1
    await asyncio.sleep(0.06)
    assert ran == ["second"]


async def test_the_last_cancelled_deadline_leaves_no_timer_in_the_loop() -> None:
    loop = asyncio.get_running_loop()
    before = _scheduled(loop)
    deadlines = Deadlines()
    entry = deadlines.call_later(60, lambda: None)
    assert _scheduled(loop) == before + 1
    entry.cancel()
    assert _scheduled(loop) == before
    assert len(deadlines) == 0


async def test_a_callback_may_cancel_another_due_at_the_same_time() -> None:
    deadlines = Deadlines()
    ran: list[str] = []
    second = None

    def first() -> None:
        ran.append("first")
        assert second is not None
        second.cancel()

    deadlines.call_later(0.01, first)
    second = deadlines.call_later(0.01, lambda: ran.append("second"))
    await asyncio.sleep(0.05)
    assert ran == ["first"]
    assert len(deadlines) == 0


async def test_a_deadline_set_by_a_callback_runs_on_a_later_turn() -> None:
    """As with ``call_later``: a callback that re-arms at once cannot spin in one turn."""
    deadlines = Deadlines()
    turns: list[int] = []
    turn = 0

    async def count_turns() -> None:
        nonlocal turn
        while True:
            turn += 1
            await asyncio.sleep(0)

    counter = asyncio.ensure_future(count_turns())

    def again() -> None:
        turns.append(turn)
        if len(turns) < 3:
            deadlines.call_later(0, again)

    deadlines.call_later(0.01, again)
    await asyncio.sleep(0.05)
    counter.cancel()
    assert len(turns) == 3 and turns[0] < turns[1] < turns[2]


async def test_a_failing_callback_is_reported_and_the_others_still_run() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        deadlines = Deadlines()
        ran: list[str] = []

        def fail() -> None:
            raise ValueError("boom")

        deadlines.call_later(0.01, fail)
        deadlines.call_later(0.01, lambda: ran.append("after"))
        deadlines.call_later(0.03, lambda: ran.append("later"))
        await asyncio.sleep(0.06)
        assert ran == ["after", "later"]
        assert [type(each["exception"]) for each in reported] == [ValueError]
    finally:
        loop.set_exception_handler(None)


async def test_a_callback_runs_in_the_context_its_deadline_was_set_in() -> None:
    deadlines = Deadlines()
    seen: list[str] = []

    async def view(name: str, delay: float) -> None:
        VIEW.set(name)
        deadlines.call_later(delay, lambda: seen.append(VIEW.get()))

    await asyncio.gather(view("one", 0.02), view("two", 0.01))
    await asyncio.sleep(0.05)
    assert seen == ["two", "one"]


async def test_cancelled_deadlines_do_not_pile_up() -> None:
    """A view re-arms at each re-read: cancelled entries are dropped, not kept until
    their time (which may be hours away)."""
    deadlines = Deadlines()
    keep = [deadlines.call_later(3600, lambda: None) for _ in range(100)]
    for _ in range(10_000):
        deadlines.call_later(3600, lambda: None).cancel()
    assert len(deadlines) == 100
    assert len(deadlines._heap) <= 2 * len(keep) + 1


def test_deadlines_of_one_loop_cannot_be_set_from_another() -> None:
    deadlines = Deadlines()

    async def arm() -> None:
        deadlines.call_later(3600, lambda: None)

    asyncio.run(arm())
    with pytest.raises(RuntimeError, match="another"):
        asyncio.run(arm())


def test_a_new_loop_starts_afresh_once_nothing_is_pending() -> None:
    deadlines = Deadlines()
    ran: list[int] = []

    async def arm_and_cancel() -> None:
        deadlines.call_later(3600, lambda: None).cancel()

    async def arm_and_wait() -> None:
        deadlines.call_later(0.01, lambda: ran.append(1))
        await asyncio.sleep(0.05)

    asyncio.run(arm_and_cancel())
    asyncio.run(arm_and_wait())
    assert ran == [1]
