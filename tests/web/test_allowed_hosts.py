"""Issue 13: AUTHDEMO_ALLOWED_HOSTS. A request or websocket handshake addressed to a host
name that is not listed gets 400 before anything else runs — the defence against DNS
rebinding, where a page on evil.example reaches this server under its own name and its
Origin therefore equals the Host it sent."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from authdemo.config import Settings
from authdemo.http.app import create_app
from tests.conftest import cheap_hasher
from tests.support.live import Live, serve

_names = itertools.count()


@pytest.fixture
async def listed(settings: Settings) -> AsyncIterator[Live]:
    """The app with app.example (any port) and every subdomain of example.org listed."""
    app = create_app(
        replace(settings, allowed_hosts=("app.example", ".example.org")),
        name=f"authdemo_hosts_{next(_names)}",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as running:
        yield running


async def exchange(live: Live, request: bytes) -> tuple[int, bytes]:
    """Send raw request bytes (any Host header we like); the status and the whole head."""
    port = int(live.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), head


async def get_page(live: Live, host: str) -> tuple[int, bytes]:
    return await exchange(
        live, f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )


async def websocket_handshake(live: Live, host: str, origin: str) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    status, _ = await exchange(
        live,
        (
            f"GET /_{live.ui}/stream HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    return status


def port_of(live: Live) -> str:
    return live.base_url.rsplit(":", 1)[1]


async def test_a_page_for_a_host_not_listed_gets_400_and_no_cookie(listed: Live) -> None:
    status, head = await get_page(listed, f"evil.example:{port_of(listed)}")
    assert status == 400
    assert b"set-cookie" not in head.lower()


async def test_a_websocket_for_a_host_not_listed_gets_400_even_with_a_matching_origin(
    listed: Live,
) -> None:
    """The DNS-rebinding handshake: Origin and Host agree, and name the attacker's site."""
    evil = f"evil.example:{port_of(listed)}"
    assert await websocket_handshake(listed, evil, f"http://{evil}") == 400
    assert listed.app.ctx.open_sockets == {}  # refused before a slot was reserved


async def test_the_host_is_checked_before_the_origin(listed: Live) -> None:
    assert await websocket_handshake(listed, "evil.example", "https://elsewhere.example") == 400


@pytest.mark.parametrize(
    "host",
    ["", "app.example.evil.example", "notexample.org", "app.example@evil.example", "[::1]"],
)
async def test_near_misses_and_odd_host_headers_get_400(listed: Live, host: str) -> None:
    status, _ = await get_page(listed, host)
    assert status == 400


async def test_every_route_checks_the_host(listed: Live) -> None:
    for path in ("/_authdemo/static/app.css", "/_auth/ticket/x", "/no/such/page"):
        status, _ = await exchange(
            listed,
            f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode(),
        )
        assert status == 400, path


@pytest.mark.parametrize(
    "host", ["app.example", "APP.EXAMPLE", "app.example.", "example.org", "www.example.org"]
)
async def test_a_listed_host_is_served_on_any_port(listed: Live, host: str) -> None:
    status, head = await get_page(listed, f"{host}:{port_of(listed)}")
    assert status == 200
    assert b"set-cookie" in head.lower()


async def test_a_websocket_for_a_listed_host_is_accepted(listed: Live) -> None:
    host = f"app.example:{port_of(listed)}"
    assert await websocket_handshake(listed, host, f"http://{host}") == 101


async def test_a_listed_host_still_needs_its_own_origin(listed: Live) -> None:
    host = f"app.example:{port_of(listed)}"
    assert await websocket_handshake(listed, host, "http://www.example.org") == 403


async def test_without_the_setting_any_host_is_served_as_before(live: Live) -> None:
    evil = f"evil.example:{port_of(live)}"
    assert (await get_page(live, evil))[0] == 200
    assert await websocket_handshake(live, evil, f"http://{evil}") == 101
