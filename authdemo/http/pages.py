"""The page: IDOM's index.html, with the session cookie when the visitor needs one.

This runs on every page view, so it is written for speed: a first visit (no cookie)
costs no database access and the constant headers are encoded once, at start.
"""

from __future__ import annotations

import re
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse, text

from ..service import AuthService
from ..ui.bridge import index_html
from ..ui.library import library
from .cookies import cookie_affixes, read_session_cookie
from .headers import PreparedResponse, SecurityHeaders, encode_headers
from .health import UNAVAILABLE
from .insecure import InsecureOriginWarning
from .proxy import request_scheme

# The last segment of the path has an extension (favicon.ico, app.js, x.css.map): a
# request for a file the app does not have, not a page. It gets a 404, and no cookie.
_FILE_LIKE = re.compile(r"\.[A-Za-z0-9]{1,16}$")


def looks_like_file(path: str) -> bool:
    return bool(_FILE_LIKE.search(path.rsplit("/", 1)[-1]))


def install_pages(app: Sanic[Any, Any], security: SecurityHeaders) -> None:
    settings = app.ctx.settings
    ui = library(settings.ui)
    body = index_html(settings.page_title, stylesheet=settings.stylesheet, ui=ui).encode()
    base = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
    prepared = {
        False: encode_headers(base, security.for_scheme(False)),
        True: encode_headers(base, security.for_scheme(True)),
    }
    # The cookie lives as long as a session may (the service's policy is made from the
    # same setting when the server starts).
    lifetime = int(settings.absolute_timeout.total_seconds())
    before_token, after_token = cookie_affixes(lifetime, name=settings.cookie_name)
    insecure = InsecureOriginWarning()

    async def page(request: Request, path: str = "") -> HTTPResponse:
        # "_…" is reserved for /_idom (or /_reactpy), /_auth, /_authdemo
        if path.startswith("_") or looks_like_file(path):
            raise NotFound("Not found")
        https = request_scheme(request, app.ctx.trusted) == "https"
        if app.ctx.health.down:  # fail closed at once, without waiting for a timeout
            return text(UNAVAILABLE, status=503, headers={"retry-after": "5"})
        if not https:
            insecure.check(request)
        service: AuthService = app.ctx.service
        token = read_session_cookie(request)
        needs_cookie = token is None
        if token is not None:  # a returning visitor: check it (and slide its expiry)
            needs_cookie = (await service.visit(token)).needs_new_token
        response = PreparedResponse(body, prepared[https])
        if needs_cookie:
            response.headers["set-cookie"] = before_token + service.new_token() + after_token
        return response

    # HEAD as GET (Sanic sends the headers, not the body): uptime checkers and load
    # balancers probe with it.
    methods = ("GET", "HEAD")
    app.add_route(page, "/", name="page_root", methods=methods)
    app.add_route(page, "/<path:path>", name="page_path", methods=methods)
