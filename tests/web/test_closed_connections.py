"""A websocket that has closed is let go at once: nothing of it stays alive behind the
event loop's timers (``release_timeout_check`` in ``authdemo.ui.bridge``).

Sanic schedules an HTTP timeout check for every connection; once the connection is a
websocket, its ``close()`` no longer cancels it, and the pending timer held the closed
connection (protocol, websocket, frames) for half of Sanic's shortest timeout, 30 s by
default: thousands of them under a steady stream of connects (row 8 of the bench)."""

from __future__ import annotations

import asyncio
import gc

from sanic.server.protocols.websocket_protocol import WebSocketProtocol

from tests.support.idom_client import IdomClient
from tests.support.live import Live


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
