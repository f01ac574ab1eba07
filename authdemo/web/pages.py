"""The page: IDOM's index.html, with the session cookie when the visitor needs one.

This runs on every page view, so it is written for speed: a first visit (no cookie)
costs no database access and the constant headers are encoded once, at start.
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse, text

from ..service import AuthService
from .bridge import index_html
from .cookies import cookie_header, read_session_cookie
from .headers import HSTS, SECURITY_HEADERS, PreparedResponse, encode_headers, secure
from .health import UNAVAILABLE
from .proxy import request_scheme


def install_pages(app: Sanic[Any, Any], title: str = "authdemo") -> None:
    body = index_html(title).encode()
    base = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
    prepared = {
        False: encode_headers(base, SECURITY_HEADERS),
        True: encode_headers(base, SECURITY_HEADERS, HSTS),
    }

    async def page(request: Request, path: str = "") -> HTTPResponse:
        if path.startswith("_"):  # reserved for /_idom, /_auth, /_authdemo
            raise NotFound("Not found")
        https = request_scheme(request, app.ctx.trusted) == "https"
        if app.ctx.health.down:  # fail closed at once, without waiting for a timeout
            response = text(UNAVAILABLE, status=503, headers={"retry-after": "5"})
            return secure(response, https)
        service: AuthService = app.ctx.service
        token = read_session_cookie(request)
        needs_cookie = token is None
        if token is not None:  # a returning visitor: check it (and slide its expiry)
            needs_cookie = (await service.visit(token)).needs_new_token
        response = PreparedResponse(body, prepared[https])
        if needs_cookie:
            lifetime = int(service.policy.absolute_timeout.total_seconds())
            response.headers["set-cookie"] = cookie_header(service.new_token(), lifetime)
        return response

    app.add_route(page, "/", name="page_root")
    app.add_route(page, "/<path:path>", name="page_path")
