"""Run an app on Sanic's own server inside the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sanic import Sanic

from authdemo.http.app import AuthdemoApp
from tests.support.idom_client import serving, stream_url
from tests.support.ports import listening_socket


@dataclass
class Live:
    app: AuthdemoApp
    base_url: str
    http: httpx.AsyncClient

    @property
    def origin(self) -> str:
        return self.base_url

    @property
    def ui(self) -> str:
        """The UI library this app renders with: "idom" or "reactpy"."""
        return self.app.ctx.settings.ui

    @property
    def stream_url(self) -> str:
        """The websocket URL of the page at ``/`` (``/_idom/stream`` or ``/_reactpy/…``)."""
        return stream_url(self.base_url, self.ui)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(self.base_url + path, **kwargs)


@asynccontextmanager
async def listening(app: Sanic[Any, Any], ui: str = "idom") -> AsyncIterator[str]:
    """Serve any Sanic ``app`` (whose pages render with ``ui``) on a free port; yields
    its base URL."""
    sock = listening_socket()  # bound before Sanic is handed it: no port to race for
    port = int(sock.getsockname()[1])
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    await server.start_serving()
    base_url = f"http://127.0.0.1:{port}"
    try:
        with serving(base_url, ui):
            yield base_url
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()


@asynccontextmanager
async def serve(app: AuthdemoApp) -> AsyncIterator[Live]:
    async with (
        listening(app, app.ctx.settings.ui) as base_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        yield Live(app, base_url, http)
