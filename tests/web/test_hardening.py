"""Response headers and websocket limits."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from websockets.exceptions import ConnectionClosed

from authdemo.config import Settings
from authdemo.http.app import create_app
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient, flood_until_closed
from tests.support.live import Live, serve


async def test_the_page_carries_a_strict_content_security_policy(live: Live) -> None:
    response = await live.get("/")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


async def test_every_response_carries_the_hardening_headers(live: Live) -> None:
    for path in ("/", f"/_{live.ui}/assets/missing.js", "/_authdemo/static/app.css"):
        headers = (await live.get(path)).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["x-frame-options"] == "DENY"


async def test_no_hsts_over_plain_http(live: Live) -> None:
    assert "strict-transport-security" not in (await live.get("/")).headers


async def test_an_oversized_message_closes_only_that_websocket(live: Live) -> None:
    victim = await IdomClient.connect(live.base_url)
    bystander = await IdomClient.connect(live.base_url)
    await victim.ws.send(json.dumps({"target": "x", "data": ["a" * 70_000]}))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(victim.ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await bystander.login("nobody", "whatever pw")
    await bystander.wait_for_id("login-error")
    await bystander.close()


async def test_garbage_frames_are_ignored(live: Live) -> None:
    client = await IdomClient.connect(live.base_url)
    for frame in ("not json", "[1, 2]", '{"target": 5}', "{" * 5000, b"\x00\xff binary"):
        await client.ws.send(frame)
    await client.login("nobody", "whatever pw")
    await client.wait_for_id("login-error")  # still served, in order
    await client.close()


async def test_an_event_flood_is_cut_off_without_hurting_other_connections(
    settings: Settings,
) -> None:
    app = create_app(
        replace(settings, ws_events_per_second=5),
        name="authdemo_flood",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        flooder = await IdomClient.connect(live.base_url)
        bystander = await IdomClient.connect(live.base_url)
        await flood_until_closed(flooder)
        await bystander.login("nobody", "whatever pw")
        await bystander.wait_for_id("login-error")
        await bystander.close()


async def test_a_peer_that_stops_answering_pings_is_dropped(settings: Settings) -> None:
    app = create_app(
        replace(
            settings,
            ws_ping_interval=timedelta(milliseconds=300),
            ws_ping_timeout=timedelta(milliseconds=300),
        ),
        name="authdemo_pings",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        host, port = live.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /_{live.ui}/stream HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nOrigin: {live.base_url}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        # A dead peer: read whatever comes (the first render, pings) and never answer.
        while await asyncio.wait_for(reader.read(65536), 5):
            pass
        assert time.monotonic() - started < 3
        writer.close()


async def test_pings_keep_a_live_but_idle_connection_open(settings: Settings) -> None:
    app = create_app(
        replace(
            settings,
            ws_ping_interval=timedelta(milliseconds=200),
            ws_ping_timeout=timedelta(milliseconds=200),
        ),
        name="authdemo_pings_alive",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        client = await IdomClient.connect(live.base_url)  # answers pings automatically
        await asyncio.sleep(1.5)
        await client.login("nobody", "whatever pw")
        await client.wait_for_id("login-error")
        await client.close()


async def test_head_of_the_page_is_answered_like_get_without_a_body(live: Live) -> None:
    """Uptime checkers and load balancers probe with HEAD: 200 and the page's headers,
    read off the wire so that a body sent anyway would show."""
    got = await live.get("/")
    host, port = live.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"HEAD / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert body == b""
    assert headers["content-type"] == got.headers["content-type"]
    assert headers["content-security-policy"] == got.headers["content-security-policy"].lower()
    assert "set-cookie" in headers  # a first visit, as by GET
