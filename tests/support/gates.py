"""Forcing interleavings: a hasher that stops each password check until the test says go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from authdemo.config import Settings
from authdemo.security import PasswordHasher
from tests.conftest import cheap_hasher


class Gate:
    """While armed, every password check (real or dummy) waits here *after* hashing.

    ``started`` counts checks that reached the hasher at all (armed or not), so a test
    can count hashes; ``waiting`` how many are held right now."""

    def __init__(self) -> None:
        self.armed = False
        self.started = 0
        self.waiting = 0
        self.arrived = asyncio.Event()
        self.released = asyncio.Event()

    def arm(self) -> None:
        self.armed = True
        self.arrived.clear()
        self.released.clear()

    def release(self) -> None:
        self.armed = False
        self.released.set()

    async def hold(self) -> None:
        if not self.armed:
            return
        self.waiting += 1
        self.arrived.set()
        try:
            await self.released.wait()
        finally:
            self.waiting -= 1


class GatedHasher:
    def __init__(self, inner: PasswordHasher, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    async def hash(self, password: str) -> str:
        return await self._inner.hash(password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        self._gate.started += 1
        result = await self._inner.verify(password, password_hash)
        await self._gate.hold()
        return result

    async def dummy_verify(self, password: str) -> None:
        self._gate.started += 1
        await self._inner.dummy_verify(password)
        await self._gate.hold()

    def close(self) -> None:
        self._inner.close()


def gated(
    gate: Gate, inner: Callable[[Settings], Any] = cheap_hasher
) -> Callable[[Settings], PasswordHasher]:
    """A ``hasher_factory`` for ``bootstrap.runtime`` whose checks stop at ``gate``."""
    return lambda settings: GatedHasher(inner(settings), gate)


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class GatedCommits:
    """A unit-of-work factory whose write transactions stop just before they commit while
    ``gate`` is armed (locks taken, changes made, nothing committed yet)."""

    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def __call__(self, *, write: bool = False, one_statement: bool = False) -> Any:
        uow = self._inner(write=write, one_statement=one_statement)
        return _GatedUnitOfWork(uow, self._gate) if write else uow


class _GatedUnitOfWork:
    def __init__(self, inner: Any, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    async def __aenter__(self) -> _GatedUnitOfWork:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit(self) -> None:
        await self._gate.hold()
        await self._inner.commit()


class BeforeFirstWrite:
    """A unit-of-work factory that runs ``meanwhile`` once, just before its first write
    transaction begins: "read → [someone else commits this] → write", forced."""

    def __init__(self, inner: Any, meanwhile: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._meanwhile: Callable[[], Awaitable[None]] | None = meanwhile

    def __call__(self, *, write: bool = False, one_statement: bool = False) -> Any:
        uow = self._inner(write=write, one_statement=one_statement)
        if not write or self._meanwhile is None:
            return uow
        meanwhile, self._meanwhile = self._meanwhile, None
        return _AfterAwaiting(uow, meanwhile)


class _AfterAwaiting:
    def __init__(self, inner: Any, first: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._first = first

    async def __aenter__(self) -> Any:
        await self._first()
        return await self._inner.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self._inner.__aexit__(*exc)
