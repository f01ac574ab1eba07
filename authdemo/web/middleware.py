"""Session middleware: cookie in, cookie out; the websocket handshake's Origin check."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, text

from ..domain import ClientInfo
from ..service import AuthService, Resolution
from .cookies import read_session_cookie, set_session_cookie
from .health import UNAVAILABLE
from .proxy import Networks, client_address, request_scheme

log = logging.getLogger(__name__)

# Paths that never get a session cookie: cacheable static files (a Set-Cookie there
# would either defeat caching or hand one visitor's token to the next through a
# shared cache), the ticket endpoint, which manages the cookie itself, and the rest of
# the reserved /_… space. The websocket (/_idom/stream) is handled before this check.
NO_SESSION_PREFIXES = ("/_idom/", "/_authdemo/", "/_auth/")
# IDOM's client needs neither inline scripts nor eval (its eval serves only <script>
# elements with content, which authdemo never renders) nor inline styles (it sets styles
# through the CSSOM, which CSP allows). 'self' covers the same-origin websocket.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
HSTS = "max-age=63072000; includeSubDomains"

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


def install_session_middleware(app: Sanic[Any, Any]) -> None:
    @app.on_request
    async def resolve_session(request: Request) -> BaseHTTPResponse | None:
        route = request.route
        is_websocket = route is not None and route.extra.websocket
        if not is_websocket and request.path.startswith(NO_SESSION_PREFIXES):
            return None
        if app.ctx.health.down:  # fail closed at once, without waiting for a timeout
            return text(UNAVAILABLE, status=503, headers={"retry-after": "5"})
        if is_websocket and not origin_allowed(
            request, app.ctx.settings.allowed_origins, app.ctx.trusted
        ):
            log.warning("websocket refused: origin %r not allowed", request.headers.get("origin"))
            return text("Forbidden: cross-origin websocket", status=403)
        service: AuthService = app.ctx.service
        request.ctx.session = await service.visit(read_session_cookie(request))
        return None

    async def finish_response(request: Request, response: BaseHTTPResponse) -> None:
        response.headers.update(SECURITY_HEADERS)
        if request_scheme(request, app.ctx.trusted) == "https":
            response.headers["strict-transport-security"] = HSTS
        resolution: Resolution | None = getattr(request.ctx, "session", None)
        if resolution is None or not resolution.needs_new_token:
            return
        if request.route and request.route.extra.websocket:
            return
        service: AuthService = app.ctx.service
        set_session_cookie(
            response,
            service.new_token(),
            int(service.policy.absolute_timeout.total_seconds()),
        )

    app.register_middleware(finish_response, attach_to="response")
