"""How the session list says when: as a person reads it, the exact moment kept aside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authdemo.ui.components.sessions import ago

NOW = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "said"),
    [
        (timedelta(seconds=-5), "just now"),  # a clock slightly ahead
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 min ago"),
        (timedelta(minutes=59, seconds=59), "59 min ago"),
        (timedelta(hours=1), "1 hour ago"),
        (timedelta(hours=23, minutes=59), "23 hours ago"),
        (timedelta(days=1), "yesterday"),
        (timedelta(days=6, hours=23), "6 days ago"),
        (timedelta(days=7), "on 28 November 2026"),
    ],
)
def test_a_moment_is_said_relative_to_now(before: timedelta, said: str) -> None:
    assert ago(NOW - before, NOW) == said
