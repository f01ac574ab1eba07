"""Websocket slots per client network: a slot given back twice frees one place, not two."""

from __future__ import annotations

from authdemo.http.limits import SocketSlots


def test_a_slot_released_twice_frees_one_place_only() -> None:
    slots = SocketSlots(limit=2)
    first, second = slots.reserve("198.51.100.0/24"), slots.reserve("198.51.100.0/24")
    assert first is not None and second is not None
    first.release()
    first.release()  # the connection closed, then the task that served it ended
    assert slots.open["198.51.100.0/24"] == 1  # `second` still holds its place
    assert slots.reserve("198.51.100.0/24") is not None
    assert slots.reserve("198.51.100.0/24") is None  # the cap holds: two are open


def test_the_last_slot_released_twice_leaves_no_debt_behind() -> None:
    slots = SocketSlots(limit=1)
    only = slots.reserve("198.51.100.0/24")
    assert only is not None
    only.release()
    only.release()
    assert "198.51.100.0/24" not in slots.open  # no entry left (and no -1 to spend)
    assert slots.reserve("198.51.100.0/24") is not None
    assert slots.reserve("198.51.100.0/24") is None
