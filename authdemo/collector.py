"""The garbage collector of a serving process: fewer and shorter collections.

Every websocket connect builds a layout of short-lived objects, many of them in
reference cycles (IDOM's model states, task groups), and each lives across several of
Python's young collections (every 700 allocations by default): they reach the oldest
generation while in use, and once they are garbage only a full collection, which walks
the whole heap, frees them. Measured on the demo with 50 clients connecting at once
(the Performance page): with Python's thresholds about a quarter of the server's CPU
went to collections, most of it to full ones, more than one a second.

So a serving process, once started, freezes what start-up made (modules, the app, its
engine: they live as long as the process; ``gc.freeze`` takes them out of every later
collection) and collects its young objects every 10,000 allocations instead of 700, so
that most connection objects are collected young. Objects are still collected, only in
larger batches (``AUTHDEMO_GC_THRESHOLDS``; ``python`` keeps the interpreter's own).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def tune_collector(thresholds: tuple[int, int, int] | None) -> None:
    """Freeze the objects alive now and set the collector's ``thresholds``; None does
    nothing. Called once per worker process, after its app has started."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    log.info(
        "garbage collector: thresholds %s; %d objects from start-up frozen",
        ",".join(map(str, thresholds)),
        gc.get_freeze_count(),
    )
