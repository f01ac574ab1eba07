"""Reads that many callers ask for at once, answered together in one statement.

A read through aiosqlite is a trip to its connection's thread and back, and under load
each trip costs far more CPU than its statement (the threads take turns at the GIL):
about 0.75 ms a trip against 0.27 ms for a whole account read on an idle server
(docs/performance.md, "Account reads in batches"). Fifty views that connect at once and
each read their account make fifty trips; read together, they make a few.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

BATCH_LIMIT = 200
"""At most this many keys in one statement (each is bound twice, within SQLite's 32,766
parameters and PostgreSQL's 65,535 with room to spare); more wait for the next read."""


class BatchedReads(Generic[K, V]):
    """Reads of one key each, answered in batches by ``read_many`` (the keys asked → what
    was found for them; a key left out is answered None).

    Invariants:
    - An ask is never answered by a read that had started before it: every key asked
      while a read runs waits for the next one, so a caller that asks after a change
      sees that change, as it would with a read of its own.
    - One read at a time. An ask while none runs starts one at once: an idle server
      answers as before, one statement for one key, without waiting.
    - Callers of the same key in one batch share one answer; a key is read once.
    - A read runs to its end even if every caller it was for has gone: a caller awaits
      its answer through ``asyncio.shield``, which also marks a failure as retrieved
      once its caller is cancelled. A read that fails fails the callers it was for; keys
      asked meanwhile are read next all the same.
    """

    def __init__(
        self,
        read_many: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        limit: int = BATCH_LIMIT,
    ) -> None:
        self._read_many = read_many
        self._limit = limit
        self._queued: dict[K, asyncio.Future[V | None]] = {}
        self._reading: asyncio.Future[Mapping[K, V]] | None = None

    async def __call__(self, key: K) -> V | None:
        """What ``read_many`` finds for ``key``, from a read that starts after this call."""
        loop = asyncio.get_running_loop()
        if self._reading is not None and self._reading.get_loop() is not loop:
            self._reading = None  # left behind by a loop that has closed (tests, restarts)
            self._queued.clear()
        answer = self._queued.get(key)
        if answer is None:
            answer = self._queued[key] = loop.create_future()
        if self._reading is None:
            self._start()
        return await asyncio.shield(answer)

    def _start(self) -> None:
        batch = dict(itertools.islice(self._queued.items(), self._limit))
        for key in batch:
            del self._queued[key]
        reading = self._reading = asyncio.ensure_future(self._read_many(list(batch)))
        reading.add_done_callback(lambda done: self._answer(batch, done))

    def _answer(
        self, batch: dict[K, asyncio.Future[V | None]], reading: asyncio.Future[Mapping[K, V]]
    ) -> None:
        if self._reading is reading:
            self._reading = None
        for key, answer in batch.items():  # only this read settles them
            if reading.cancelled():
                answer.cancel()
            elif (error := reading.exception()) is not None:
                answer.set_exception(error)
            else:
                answer.set_result(reading.result().get(key))
        if self._queued and self._reading is None:
            self._start()
