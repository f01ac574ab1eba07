"""Websocket slots per client network: a slot given back twice frees one place, not two."""

from __future__ import annotations

import asyncio

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


async def test_a_slot_handed_to_a_task_is_given_back_when_the_task_ends() -> None:
    """The handshake's fallback: a websocket whose upgrade never completes gives its slot
    back when the task serving its TCP connection ends."""
    slots = SocketSlots(limit=1)
    slot = slots.reserve("198.51.100.0/24")
    assert slot is not None
    task = asyncio.ensure_future(asyncio.sleep(0))
    task.add_done_callback(slot.release_when_done)
    assert slots.reserve("198.51.100.0/24") is None  # held while the task runs
    await task
    await asyncio.sleep(0)  # done callbacks run on the loop's next turn
    assert "198.51.100.0/24" not in slots.open
    assert slots.reserve("198.51.100.0/24") is not None
