"""One client cannot take the server down: websockets per address, slow readers."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from authdemo.config import Settings
from authdemo.domain import StorageUnavailable
from authdemo.http.app import create_app
from authdemo.http.cookies import COOKIE_NAME
from authdemo.http.limits import Slot
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import serve
from tests.web.conftest import signed_in_token

_names = itertools.count()


async def test_websockets_per_address_are_capped_and_freed_on_close(settings: Settings) -> None:
    app = create_app(
        replace(settings, ws_per_address=3),
        name=f"authdemo_cap_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        held = [await IdomClient.connect(live.base_url) for _ in range(3)]
        url = live.stream_url
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, additional_headers={"Origin": live.base_url}, origin=None)
        assert refused.value.response.status_code == 429
        await held.pop().close()
        for _ in range(50):  # the server notices the close
            if app.ctx.open_sockets["127.0.0.1"] < 3:
                break
            await asyncio.sleep(0.02)
        again = await IdomClient.connect(live.base_url)
        assert again.find("login-form") is not None
        for client in [*held, again]:
            await client.close()


async def test_a_closed_websocket_frees_one_place_though_its_slot_is_given_back_twice(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection's slot is given back when the connection closes and again when the
    task that served its TCP connection ends: the second time must free nothing, or each
    closed tab would open one place too many while the others stay open."""
    app = create_app(
        replace(settings, ws_per_address=2),
        name=f"authdemo_cap_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    reserved: list[Slot] = []
    releases: Counter[int] = Counter()
    real_release = Slot.release

    def counted_release(slot: Slot) -> None:
        releases[id(slot)] += 1
        real_release(slot)

    monkeypatch.setattr(Slot, "release", counted_release)
    async with serve(app) as live:
        real_reserve = app.ctx.sockets.reserve

        def recorded_reserve(network: str) -> Slot | None:
            slot = real_reserve(network)
            if slot is not None:
                reserved.append(slot)
            return slot

        app.ctx.sockets.reserve = recorded_reserve  # type: ignore[method-assign]
        closing = await IdomClient.connect(live.base_url)
        staying = await IdomClient.connect(live.base_url)
        assert len(reserved) == 2
        await closing.close()
        async with asyncio.timeout(10):  # both give-backs happened
            while releases[id(reserved[0])] < 2:
                await asyncio.sleep(0.01)
        assert app.ctx.open_sockets["127.0.0.1"] == 1  # `staying` holds its place
        again = await IdomClient.connect(live.base_url)
        with pytest.raises(InvalidStatus) as refused:  # the cap of two holds
            await websockets.connect(
                live.stream_url, additional_headers={"Origin": live.base_url}, origin=None
            )
        assert refused.value.response.status_code == 429
        for client in (staying, again):
            await client.close()


def saved_after_saving() -> Callable[[IdomClient], bool]:
    """A ``wait_for`` condition met once the note said "Saving…" and then "Saved.": the
    save just fired has committed. (Counting updates was not enough: a late repeat of
    the previous "Saved." could complete the count, and the loop then ran one save
    ahead of the database, its last save still uncommitted when it was checked.)"""
    saving = False

    def condition(client: IdomClient) -> bool:
        nonlocal saving
        saving = saving or client.find("note-saving") is not None
        return saving and client.find("note-saved") is not None

    return condition


async def test_a_client_that_reads_nothing_does_not_stall_the_others(settings: Settings) -> None:
    app = create_app(
        replace(settings, ws_events_per_second=1000),
        name=f"authdemo_slow_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        await live.app.ctx.service.create_user("alice", "correct horse")
        token = await signed_in_token(live.app.ctx.service)
        cookie = f"{COOKIE_NAME}={token}"
        # A tab of alice's session that stops reading: every note saved in her other tab
        # is pushed to it (40 KB each), until its socket buffers are full and stay full.
        url = live.stream_url
        slow = await websockets.connect(
            url, additional_headers={"Origin": live.base_url, "Cookie": cookie}, origin=None
        )
        slow.transport.pause_reading()
        writer = await IdomClient.connect(live.base_url, cookie=cookie)
        note = writer.find("note")
        assert note is not None
        for i in range(150):  # 6 MB: more than loopback buffers hold
            await writer.fire(note, "on_change", {"target": {"value": f"{i}" + "x" * 40_000}})
            await writer.wait_for(saved_after_saving(), timeout=5)
        saved = await live.app.ctx.service.live_sessions("alice")
        assert str(saved[0][0].data["note"]).startswith("149")
        # Meanwhile everybody else is served as usual.
        bystander = await IdomClient.connect(live.base_url)
        started = asyncio.get_running_loop().time()
        await bystander.login("nobody", "whatever pw")
        await bystander.wait_for_id("login-error", timeout=5)
        assert asyncio.get_running_loop().time() - started < 2
        for client in (writer, bystander):
            await client.close()
        slow.transport.abort()


async def test_concurrent_handshakes_from_one_address_get_exactly_the_cap(
    settings: Settings,
) -> None:
    """60 handshakes at once, each parked in the cookie look-up (the handshake's first
    ``await``) until every one of them is either parked there or refused: only as many
    as the cap may ever get that far."""
    app = create_app(
        replace(settings, ws_per_address=5),
        name=f"authdemo_cap_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    attempts = 60
    async with serve(app) as live:
        service = app.ctx.service
        real_visit = service.visit
        gate = asyncio.Event()
        everyone_arrived = asyncio.Event()
        parked = refused = 0

        def arrived() -> None:
            if parked + refused == attempts:
                everyone_arrived.set()

        async def gated_visit(token: str | None) -> object:
            nonlocal parked
            parked += 1
            arrived()
            await gate.wait()
            return await real_visit(token)

        service.visit = gated_visit  # type: ignore[method-assign]
        url = live.stream_url

        async def handshake() -> websockets.ClientConnection | None:
            nonlocal refused
            try:
                return await websockets.connect(
                    url, additional_headers={"Origin": live.base_url}, origin=None
                )
            except InvalidStatus as refusal:
                assert refusal.response.status_code == 429
                refused += 1
                arrived()
                return None

        tasks = [asyncio.create_task(handshake()) for _ in range(attempts)]
        await asyncio.wait_for(everyone_arrived.wait(), timeout=30)
        gate.set()
        accepted = [ws for ws in await asyncio.gather(*tasks) if ws is not None]
        try:
            assert len(accepted) == 5
            assert refused == attempts - 5
            assert app.ctx.open_sockets["127.0.0.1"] == 5
        finally:
            for ws in accepted:
                await ws.close()


async def test_a_handshake_that_fails_after_reserving_gives_its_slot_back(
    settings: Settings,
) -> None:
    app = create_app(
        replace(settings, ws_per_address=1),
        name=f"authdemo_cap_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        service = app.ctx.service
        real_visit = service.visit

        async def failing_visit(token: str | None) -> object:
            raise StorageUnavailable()

        service.visit = failing_visit  # type: ignore[method-assign]
        url = live.stream_url
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, additional_headers={"Origin": live.base_url}, origin=None)
        assert refused.value.response.status_code == 503
        assert app.ctx.open_sockets["127.0.0.1"] == 0
        service.visit = real_visit  # type: ignore[method-assign]
        app.ctx.health.down = False  # as the probe would, once the database answers
        client = await IdomClient.connect(live.base_url)  # the one slot is free
        assert client.find("login-form") is not None
        await client.close()


async def test_a_client_that_leaves_mid_handshake_gives_its_slot_back(settings: Settings) -> None:
    """Parked in the cookie look-up, the client hangs up: the upgrade never happens and
    no connection ever opens, yet the slot it reserved must not stay taken (or one
    client could lock its whole address out by hanging up N times)."""
    app = create_app(
        replace(settings, ws_per_address=1),
        name=f"authdemo_cap_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        service = app.ctx.service
        real_visit = service.visit
        gate, parked = asyncio.Event(), asyncio.Event()

        async def gated_visit(token: str | None) -> object:
            parked.set()
            await gate.wait()
            return await real_visit(token)

        service.visit = gated_visit  # type: ignore[method-assign]
        port = int(live.base_url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"GET /_{live.ui}/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Origin: {live.base_url}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        await asyncio.wait_for(parked.wait(), timeout=10)
        assert app.ctx.open_sockets["127.0.0.1"] == 1
        writer.close()  # hang up while the handshake waits
        await writer.wait_closed()
        gate.set()
        async with asyncio.timeout(10):
            while app.ctx.open_sockets["127.0.0.1"]:
                await asyncio.sleep(0.01)
        service.visit = real_visit  # type: ignore[method-assign]
        client = await IdomClient.connect(live.base_url)  # the one slot is free again
        assert client.find("login-form") is not None
        await client.close()
