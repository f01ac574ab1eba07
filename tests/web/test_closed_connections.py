"""A websocket that has closed is let go at once and quietly (``release_when_lost`` in
``authdemo.ui.bridge``).

Sanic schedules an HTTP timeout check for every connection; once the connection is a
websocket, its ``close()`` no longer cancels it, and the pending timer held the closed
connection (protocol, websocket, frames) for half of Sanic's shortest timeout, 30 s by
default: thousands of them under a steady stream of connects (row 8 of the bench).
And Sanic feeds each read to the websocket in a task it keeps no reference to: frames
that arrive after the handler stopped reading leave such tasks waiting for ever, which
asyncio reports as errors in the log when the connection is freed."""

from __future__ import annotations

import asyncio
import gc
import json
from dataclasses import replace
from typing import Any

import idom
import pytest
from sanic import Request, Sanic
from sanic.server.protocols.websocket_protocol import WebSocketProtocol

from authdemo.config import Settings
from authdemo.http.app import create_app
from authdemo.ui import bridge
from authdemo.ui.bridge import ViewConnection, install_bridge
from tests.conftest import cheap_hasher
from tests.support.gates import wait_until
from tests.support.idom_client import IdomClient, flood_until_closed
from tests.support.live import Live, listening, serve


def websocket_protocols() -> set[int]:
    """The server-side websocket connections alive in this process, by identity (the
    protocol takes no weak reference)."""
    gc.collect()
    return {
        id(thing)
        for thing in gc.get_objects()
        if isinstance(thing, WebSocketProtocol) and thing.websocket is not None
    }


async def test_a_closed_websocket_is_not_kept_alive_by_a_timer(live: Live) -> None:
    before = websocket_protocols()  # left by earlier tests of this worker, if any
    client = await IdomClient.connect(live.base_url)
    opened = websocket_protocols() - before
    assert len(opened) == 1  # this connection's server side
    await client.close()
    for _ in range(50):  # the server side finishes its handler, then lets go
        if not opened & websocket_protocols():
            break
        await asyncio.sleep(0.1)
    assert not opened & websocket_protocols()


def sanic_data_tasks() -> set[asyncio.Task[Any]]:
    """The tasks Sanic started to feed frames to a websocket, still pending."""
    return {
        task
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__.startswith("WebsocketImplProtocol.async_")
    }


async def test_frames_left_unread_at_close_leave_no_pending_task_behind(
    settings: Settings,
) -> None:
    """A flood is cut off by the server (code 1008) while the client still sends: those
    frames are never read. Their tasks must end with the connection, not linger until the
    connection is freed and asyncio logs "Task was destroyed but it is pending!"."""
    app = create_app(
        replace(settings, ws_events_per_second=5),
        name="authdemo_unread",
        hasher_factory=cheap_hasher,
    )
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        async with serve(app) as live:
            client = await IdomClient.connect(live.base_url)
            await flood_until_closed(client)
            await client.close()
            for _ in range(50):  # the server side sees the connection lost, then lets go
                if not sanic_data_tasks():
                    break
                await asyncio.sleep(0.1)
            assert not sanic_data_tasks()
            gc.collect()  # frees the closed connection (nothing holds it): quietly
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not reported, reported


@idom.component
def Ready() -> Any:
    """The root of the bridge apps below: one element."""
    return idom.html.p({"id": "ready"}, "ready")


async def test_letting_one_connection_go_leaves_the_others_frames_alone() -> None:
    """Only the lost connection's tasks are cancelled: another connection's frames, held
    by Sanic while its handler is busy (here: its ``before_event`` hook, stopped until
    the test lets it go), are still delivered once it reads again."""
    busy = asyncio.Event()
    seen: list[int] = []  # events that reached the hook, by connection number
    app = Sanic(f"bridge_bystander_{id(busy)}")

    connections = 0

    def connect(request: Request) -> ViewConnection:
        nonlocal connections
        connections += 1
        number = connections

        async def hook() -> bool:
            seen.append(number)
            if number == 1:  # the bystander's handler stays busy until the test says go
                await busy.wait()
            return False

        return ViewConnection(Ready(), hook, lambda: None)

    install_bridge(app, connect, events_per_second=5)
    async with listening(app) as base_url:
        bystander = await IdomClient.connect(base_url, page_first=False)
        event = json.dumps({"target": "none", "data": []})
        await bystander.ws.send(event)
        await wait_until(lambda: seen == [1])  # its handler is busy, not reading
        await bystander.ws.send(event)
        await bystander.ws.send(event)  # held by Sanic, unread for now
        await wait_until(lambda: len(sanic_data_tasks()) >= 1)

        flooder = await IdomClient.connect(base_url, page_first=False)
        await flood_until_closed(flooder)
        await flooder.close()
        await asyncio.sleep(0.5)  # the flooder's connection is lost and let go
        assert seen.count(1) == 1

        busy.set()
        await wait_until(lambda: seen.count(1) == 3)  # both held events were delivered
        await bystander.close()


async def test_a_websocket_lost_while_its_handler_still_runs_is_aborted_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the TCP connection goes before the handler ends (here: it waits in an event's
    ``before_event`` hook), Sanic cancels the handler and then schedules an abort of the
    closed transport ``close_timeout`` (10 s) later. That timer (its context) held the
    request, and what the app keeps on ``request.ctx``, until then: about a thousand
    closed connections at any time under row 8's steady stream of connects, and RSS that
    grew with them. Once the connection is lost there is nothing left to wait for: the
    abort is scheduled at once, and the request goes with the connection."""
    loop = asyncio.get_running_loop()
    aborts: list[float] = []  # the delay of each abort scheduled
    call_later = loop.call_later

    def spy(delay: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__name__", "") == "abort":
            aborts.append(delay)
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", spy)
    entered = asyncio.Event()
    app = Sanic(f"bridge_lost_busy_{id(entered)}")

    def connect(request: Request) -> ViewConnection:
        async def hook() -> bool:
            entered.set()
            await asyncio.Event().wait()  # still running when the connection goes
            return False

        return ViewConnection(Ready(), hook, lambda: None)

    install_bridge(app, connect)
    async with listening(app) as base_url:
        client = await IdomClient.connect(base_url, page_first=False)
        await client.ws.send(json.dumps({"target": "none", "data": []}))
        await entered.wait()
        await client.close()
        await wait_until(lambda: bool(aborts), timeout=5)
        await asyncio.sleep(0.2)  # Sanic ends the connection twice: handler and protocol
    assert aborts and set(aborts) == {0}, aborts


class LateTaker:
    """Stands in for Sanic's websocket: one data task that takes the event lock only
    after the connection was lost, then waits for a message nobody will fetch."""

    def __init__(self) -> None:
        self.connection_lost_waiter = asyncio.get_running_loop().create_future()
        self.io_proto = object()  # no HTTP timeout check left to cancel
        self.process_event_mutex = asyncio.Lock()

    async def async_data_received(self) -> None:
        await self.connection_lost_waiter  # still on its way when the connection goes
        await asyncio.sleep(0.01)
        async with self.process_event_mutex:
            await asyncio.Event().wait()


async def test_a_data_task_that_takes_the_lock_after_the_loss_is_cancelled_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge, "LOOK_AGAIN_AFTER", 0.1)
    ws = LateTaker()
    bridge.release_when_lost(ws)  # type: ignore[arg-type]
    stuck = asyncio.create_task(ws.async_data_received())
    ws.connection_lost_waiter.set_result(None)
    await asyncio.sleep(0.05)
    assert ws.process_event_mutex.locked() and not stuck.done()  # missed by the first look
    await asyncio.wait({stuck}, timeout=2)
    assert stuck.cancelled()
