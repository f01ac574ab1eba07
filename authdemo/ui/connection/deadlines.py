"""Every open view's expiry on one event-loop timer.

Each view signs out when its session's time is up, and re-reads its session at least
once per half idle window (``lifecycle``), without polling: it waits for a deadline. With
``loop.call_later`` per view, every open view held a timer handle, the bound method it
calls and a copy of its context, and the loop kept them all in its own heap. Here the
deadlines of every view of one server sit in one heap of small entries, and the loop
holds a single timer, for the earliest of them.

Semantics are ``call_later``'s: a deadline runs its callback once, at or after its time,
in the context it was set in (a copy taken then), unless it was cancelled first; a
callback that raises is reported to the loop's exception handler and the others still
run. Cancelled entries leave the heap when they come first, or all at once when they are
more than half of it (asyncio's own rule for its timers), so views that re-arm often
(each re-read) leave no growing heap behind.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time
from collections.abc import Callable

# A deadline due within the clock's resolution is due now (asyncio's own rule).
_RESOLUTION = time.get_clock_info("monotonic").resolution
# The heap is compacted when more than half of it is cancelled and it holds at least this
# many entries.
_COMPACT_FROM = 64


class Deadline:
    """One callback at one time; ``cancel()`` before it runs and it never does."""

    __slots__ = ("_callback", "_context", "_owner", "_when")

    def __init__(
        self,
        owner: Deadlines,
        when: float,
        callback: Callable[[], object],
        context: contextvars.Context,
    ) -> None:
        self._when = when
        self._callback: Callable[[], object] | None = callback
        """None once cancelled or run."""
        self._context = context
        self._owner: Deadlines | None = owner
        """None once out of the heap (taken to run, or dropped)."""

    def when(self) -> float:
        """Its time, on the loop's clock (``loop.time()``), as ``TimerHandle.when``."""
        return self._when

    def cancel(self) -> None:
        if self._callback is None:
            return
        self._callback = None
        if self._owner is not None:
            self._owner._cancelled()


class Deadlines:
    """The deadlines of one event loop's views, behind one ``loop.call_at``."""

    __slots__ = ("_armed", "_armed_at", "_cancelled_count", "_heap", "_loop", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._cancelled_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._armed: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")

    def __len__(self) -> int:
        """Deadlines still to come (cancelled ones not counted)."""
        return len(self._heap) - self._cancelled_count

    def call_later(self, delay: float, callback: Callable[[], object]) -> Deadline:
        """Run ``callback()`` ``delay`` seconds from now, on the running loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if len(self):
                raise RuntimeError("deadlines of one event loop set from another")
            self._forget(loop)
        when = loop.time() + max(0.0, delay)
        entry = Deadline(self, when, callback, contextvars.copy_context())
        heapq.heappush(self._heap, (when, next(self._order), entry))
        if when < self._armed_at:
            self._arm(when)
        return entry

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start afresh on ``loop`` (nothing is pending on the previous one)."""
        if self._armed is not None:
            self._armed.cancel()
        self._heap.clear()
        self._cancelled_count = 0
        self._loop = loop
        self._armed = None
        self._armed_at = float("inf")

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = when
        self._armed = self._loop.call_at(when, self._fire)

    def _cancelled(self) -> None:
        """One entry still in the heap was cancelled."""
        self._cancelled_count += 1
        heap = self._heap
        if len(heap) == self._cancelled_count:  # nothing left to wait for
            for item in heap:
                item[2]._owner = None
            heap.clear()
            self._cancelled_count = 0
            if self._armed is not None:
                self._armed.cancel()
                self._armed = None
                self._armed_at = float("inf")
        elif len(heap) >= _COMPACT_FROM and self._cancelled_count * 2 > len(heap):
            kept = []
            for item in heap:
                if item[2]._callback is None:
                    item[2]._owner = None
                else:
                    kept.append(item)
            heap[:] = kept
            heapq.heapify(heap)
            self._cancelled_count = 0

    def _fire(self) -> None:
        """The earliest deadline is due: take every due one out of the heap, re-arm for
        the next, then run them (a callback that sets a new deadline, even one due at
        once, sees it run on a later turn of the loop, as with ``call_later``)."""
        loop = self._loop
        assert loop is not None
        self._armed = None
        self._armed_at = float("inf")
        heap = self._heap
        now = loop.time() + _RESOLUTION
        due: list[Deadline] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            entry._owner = None
            if entry._callback is None:
                self._cancelled_count -= 1
            else:
                due.append(entry)
        if heap:
            self._arm(heap[0][0])
        for entry in due:
            callback, entry._callback = entry._callback, None
            if callback is None:  # cancelled by a callback that ran before it
                continue
            try:
                entry._context.run(callback)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as error:
                loop.call_exception_handler(
                    {"message": "Exception in a view's deadline", "exception": error}
                )
