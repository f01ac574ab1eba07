"""Who is asking, from where: the websocket handshake's Origin check and client info."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

from ..domain import ClientInfo, client_network
from ..service import AuthService
from .cookies import read_session_cookie
from .health import UNAVAILABLE
from .proxy import Networks, client_address, request_scheme

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin string, or None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def own_origin(request: Request, trusted: Networks = ()) -> tuple[str, str, int] | None:
    """The origin this request was addressed to: its scheme and Host header."""
    return origin_of(f"{request_scheme(request, trusted)}://{request.host}")


def origin_allowed(request: Request, extra: tuple[str, ...], trusted: Networks = ()) -> bool:
    """Scheme, host and port all equal to ours (or a configured extra origin)."""
    header = request.headers.get("origin")
    if not header:
        return False
    presented = origin_of(header)
    if presented is None:
        return False  # "null", garbage, paths
    allowed = {own_origin(request, trusted), *(origin_of(o) for o in extra)}
    return presented in allowed


def client_info(request: Request, trusted: Networks = ()) -> ClientInfo:
    """Address (not spoofable: forwarded headers only from trusted proxies) and agent."""
    return ClientInfo(
        addr=client_address(request, trusted),
        user_agent=request.headers.get("user-agent", ""),
    ).clipped()


def websocket_handshake(
    app: Sanic[Any, Any],
) -> Callable[[Request], Awaitable[HTTPResponse | None]]:
    """The check before a websocket is accepted: database up, Origin ours, a slot free
    for the client's address, cookie resolved.

    A refusal is an ordinary HTTP response (403, 429, 503), sent before any component
    runs. The slot is reserved before the first ``await`` (see ``limits``) and handed
    to the connection in ``request.ctx.socket_slot``.
    """

    async def check(request: Request) -> HTTPResponse | None:
        if app.ctx.health.down:  # fail closed at once, without waiting for a timeout
            return text(UNAVAILABLE, status=503, headers={"retry-after": "5"})
        if not origin_allowed(request, app.ctx.settings.allowed_origins, app.ctx.trusted):
            log.warning("websocket refused: origin %r not allowed", request.headers.get("origin"))
            return text("Forbidden: cross-origin websocket", status=403)
        network = client_network(client_address(request, app.ctx.trusted))
        slot = app.ctx.sockets.reserve(network)
        if slot is None:
            log.warning("websocket refused: %s holds too many", network)
            return text("Too many connections", status=429)
        try:
            service: AuthService = app.ctx.service
            request.ctx.session = await service.visit(read_session_cookie(request))
        except BaseException:  # 503, a cancelled handshake…: the slot was never used
            slot.release()
            raise
        request.ctx.socket_slot = slot
        # The connection normally gives the slot back when it closes; should it never get
        # that far (the upgrade fails, the client leaves first), the end of the task
        # serving this TCP connection does.
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(slot.release_when_done)
        return None

    return check
