"""The in-process event bus's listener tables, and the flag a view waits on for its
cookie: both are held per open view, so both are kept small, and must still behave
as a set of listeners and an ``asyncio.Event`` do."""

from __future__ import annotations

import asyncio

from authdemo.events import EventKind, InProcessEventBus, SessionEvent
from authdemo.ui.connection.lifecycle import Flag


def revoked(session_id: int, user_id: int | None = None) -> SessionEvent:
    return SessionEvent(EventKind.REVOKED, (session_id,), user_id=user_id)


def test_a_listener_subscribed_twice_to_one_key_hears_each_event_once_and_one_call_stops_it() -> (
    None
):
    bus = InProcessEventBus()
    heard: list[SessionEvent] = []
    first = bus.subscribe(7, heard.append)
    bus.subscribe(7, heard.append)
    bus.deliver(revoked(7))
    assert len(heard) == 1
    first()
    bus.deliver(revoked(7))
    assert len(heard) == 1
    assert bus.listener_count() == 0


def test_unsubscribing_one_listener_keeps_the_others_and_an_empty_key_goes() -> None:
    bus = InProcessEventBus()
    a: list[SessionEvent] = []
    b: list[SessionEvent] = []
    stop_a = bus.subscribe(7, a.append)
    stop_b = bus.subscribe(7, b.append)
    stop_user = bus.subscribe_user(3, b.append)
    stop_a()
    stop_a()  # any number of calls
    bus.deliver(revoked(7, user_id=3))
    assert (a, b) == ([], [revoked(7, user_id=3)] * 2)
    stop_b()
    stop_user()
    assert bus.listener_count() == 0
    assert bus._listeners == {} and bus._users == {}  # nothing left behind per key


def test_a_listener_subscribed_while_an_event_is_delivered_hears_the_next_one() -> None:
    bus = InProcessEventBus()
    late: list[SessionEvent] = []

    def subscribe_another(event: SessionEvent) -> None:
        bus.subscribe(7, late.append)

    bus.subscribe(7, subscribe_another)
    bus.deliver(revoked(7))
    assert late == []
    bus.deliver(revoked(7))
    assert late == [revoked(7)]


async def test_the_flag_waits_as_an_event_does() -> None:
    flag = Flag()
    flag.set()
    await asyncio.wait_for(flag.wait(), 1)  # set before the wait: no wait at all
    flag.clear()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    flag.set()
    await asyncio.wait_for(waiter, 1)
    flag.clear()  # and again, with the event the first wait made
    again = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0.01)
    assert not again.done()
    flag.set()
    await asyncio.wait_for(again, 1)
