"""Garbage collection in a test worker: full collections between tests, never in one.

A full collection stops the whole worker: the test, the in-process server it talks to
and the clock its timing bounds read. Late in a run a worker's heap holds hundreds of
thousands of objects, and one such pause took up to half a second (2.4 s while every
app a test built stayed alive; see ``_apps_released`` in ``tests/conftest.py``). A
bound such as "the other tab follows within a second" then failed for a reason that
is not the product's.

So while a test body runs, the collector keeps to its two young generations (short:
they walk only young objects); the full collections Python would have made wait
until it ends, and Python's own rule then decides whether one is due. The body's
garbage is collected as before: the young collections free what dies young, and the
next full collection the rest.
"""

from __future__ import annotations

import gc
from collections.abc import Generator

import pytest

NEVER = 2**30
"""A full-collection threshold no test body reaches (Python's default is 10 young
collections)."""


def pytest_collection_finish(session: pytest.Session) -> None:
    """Take what the worker holds to its end (modules, the collected tests) out of the
    collector's sight: every full collection would otherwise walk them again."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    try:
        return (yield)
    finally:
        gc.set_threshold(young, middle, full)
