"""Scheduling for tests that put a machine-wide load on purpose.

The benchmark's smoke test runs every row with wrk at full load, for figures it does not
check. A test that starts fifty processes at once proves what happens when they race each
other. At normal priority they also starve whatever test the other pytest worker runs
meanwhile: a tab there waited 5.3 s for a follow it gets in 0.2 s, and failed its
one-second bound. At the highest niceness they race each other as hard, and the other
worker's tests run as on a quiet machine.

Niceness, not Linux's idle class (``SCHED_IDLE``): idle-class processes get next to no
CPU while anything else wants it. Beside two busy loops the fifty did not finish in
their 180 s, and one holding SQLite's write lock could be kept past the others' busy
timeout by an unrelated test.
"""

from __future__ import annotations

import os


def lowest() -> None:
    """``preexec_fn`` for a load-generating child process: the highest niceness."""
    os.nice(19)
