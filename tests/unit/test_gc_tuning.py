"""A serving process freezes its start-up objects and collects with larger thresholds
(``authdemo.collector``); the setting ``None`` (``AUTHDEMO_GC_THRESHOLDS=python``)
leaves the interpreter's collector alone."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest

from authdemo.collector import tune_collector


class Node:
    self: Node


@pytest.fixture
def thresholds_restored() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_thresholds_are_set_and_what_lives_is_frozen(
    thresholds_restored: tuple[int, int, int], caplog: pytest.LogCaptureFixture
) -> None:
    made_at_start = [[index] for index in range(1000)]  # tracked objects alive now
    garbage = Node()
    garbage.self = garbage  # a cycle nothing else holds: garbage, not yet collected
    gone = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    with caplog.at_level(logging.INFO, logger="authdemo.collector"):
        tune_collector((12_345, 17, 99))
    assert gc.get_threshold() == (12_345, 17, 99)
    assert gone() is None  # collected before the freeze: never kept for good
    assert gc.get_freeze_count() >= frozen_before + len(made_at_start)
    collected_from_now_on = {id(thing) for thing in gc.get_objects()}
    assert not any(id(item) in collected_from_now_on for item in made_at_start)
    assert "garbage collector: thresholds 12345,17,99;" in caplog.text


def test_none_leaves_the_collector_alone(thresholds_restored: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    frozen_before = gc.get_freeze_count()
    full_before = gc.get_stats()[2]["collections"]
    tune_collector(None)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen_before  # nothing frozen
    assert gc.get_stats()[2]["collections"] == full_before  # nor collected
