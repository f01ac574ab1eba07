"""The Host allow-list (``AUTHDEMO_ALLOWED_HOSTS``): requests addressed to any other host
name are answered 400 before anything else runs.

Why: the websocket's Origin check compares the Origin with the Host the browser sent.
A page on evil.example whose name an attacker points at this server's address (DNS
rebinding) sends ``Host: evil.example`` and ``Origin: http://evil.example`` — equal, so
only a list of the names this server really answers to tells it apart.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, text

log = logging.getLogger(__name__)

# A Host header is a name or a bracketed IPv6 address, and an optional port: nothing else
# (no user info, no path, no spaces), or it is refused.
_HOST_HEADER = re.compile(
    r"^(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::[0-9]{1,5})?$"
)


def host_name(header: str) -> str | None:
    """The host a ``Host`` header names (lower case, no port, no trailing dot), or None."""
    match = _HOST_HEADER.fullmatch(header)  # not match(): `$` also matches before a final \n
    if match is None:
        return None
    if match["ipv6"] is not None:
        try:
            return ipaddress.IPv6Address(match["ipv6"]).compressed
        except ValueError:
            return None
    return str(match["name"]).lower().removesuffix(".") or None


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """``name`` is listed, or is a subdomain of a ``.domain`` entry (or that domain)."""
    for pattern in allowed:
        if pattern.startswith("."):
            if name == pattern[1:] or name.endswith(pattern):
                return True
        elif name == pattern:
            return True
    return False


def host_check(
    app: Sanic[Any, Any],
) -> Callable[[Request], Coroutine[Any, Any, HTTPResponse | None]]:
    allowed: tuple[str, ...] = app.ctx.settings.allowed_hosts

    async def check(request: Request) -> HTTPResponse | None:
        name = host_name(request.host)
        if name is not None and host_allowed(name, allowed):
            return None
        log.debug("request refused: host %r not allowed", request.host)  # scanners: quiet
        return text("Bad Request: unknown host", status=400)

    return check


def install_host_check(app: Sanic[Any, Any]) -> None:
    """When hosts are listed, check every request (pages, files, tickets, websockets)
    first. When none are, add nothing: the hot paths keep having no global middleware."""
    if app.ctx.settings.allowed_hosts:
        app.register_middleware(host_check(app), "request", priority=1000)
