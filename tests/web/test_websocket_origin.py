"""The websocket handshake: same origin only, refused before any component runs."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from authdemo.config import Settings
from authdemo.http.app import create_app
from tests.conftest import cheap_hasher
from tests.support.idom_client import IdomClient
from tests.support.live import Live, serve


async def handshake_status(live: Live, origin: str | None) -> int:
    headers = {"Origin": origin} if origin is not None else {}
    url = live.stream_url
    try:
        async with websockets.connect(url, additional_headers=headers, origin=None) as ws:
            await ws.recv()
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_same_origin_handshake_renders_the_app(live: Live) -> None:
    client = await IdomClient.connect(live.base_url)
    assert client.find("login-form") is not None
    await client.close()


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "null",
        "https://evil.example",
        "http://127.0.0.1.evil.example",
        "http://evil.example/127.0.0.1",
        "not an origin",
    ],
)
async def test_foreign_or_missing_origins_are_refused_with_403(
    live: Live, origin: str | None
) -> None:
    assert await handshake_status(live, origin) == 403


async def test_another_port_on_the_same_host_is_refused(live: Live) -> None:
    port = int(live.base_url.rsplit(":", 1)[1])
    assert await handshake_status(live, f"http://127.0.0.1:{port + 1}") == 403


async def test_another_scheme_is_refused(live: Live) -> None:
    assert await handshake_status(live, live.base_url.replace("http://", "https://")) == 403


async def test_no_component_runs_for_a_refused_handshake(settings: Settings) -> None:
    from authdemo.ui.library import component, html

    rendered: list[str] = []

    @component
    def Recorder():  # type: ignore[no-untyped-def]
        rendered.append("render")
        return html.p("hello")

    app = create_app(settings, Recorder, name="authdemo_recorder", hasher_factory=cheap_hasher)
    async with serve(app) as live:
        assert await handshake_status(live, "https://evil.example") == 403
        assert rendered == []
        assert await handshake_status(live, live.base_url) == 101
        assert rendered == ["render"]


async def test_configured_extra_origins_are_accepted(settings: Settings) -> None:
    from dataclasses import replace

    app = create_app(
        replace(settings, allowed_origins=("https://app.example",)),
        name="authdemo_extra_origin",
        hasher_factory=cheap_hasher,
    )
    async with serve(app) as live:
        assert await handshake_status(live, "https://app.example") == 101
        assert await handshake_status(live, "https://other.example") == 403
