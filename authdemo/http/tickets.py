"""``GET /_auth/ticket/<ticket>``: where a browser picks up a session's new cookie.

After a login over the websocket, the page renders a hidden image pointing here. The
image request carries the browser's current cookie; if it is the one the ticket was
bound to, the response sets the session's new cookie. Same-origin only, single use,
short-lived; failures never touch the cookie. The response redirects the image to
``/_auth/held``, so the browser's next request carries the new cookie: only then do the
session's views stop saying "Signing in…".

``GET /_auth/follow/<nonce>``: the other open tabs of that browser follow the sign-in
(``service.follow``). A view whose cookie was retired renders a hidden image here, with
a nonce only it knows; the request carries the browser's current cookie, and that is
what the view may follow. Same-origin only; never sets or changes a cookie.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, raw, redirect, text

from ..domain import TicketRejected
from ..service import AuthService
from ..ui.hooks import FOLLOW_PATH, HELD_PATH, TICKET_PATH
from .cookies import read_session_cookie, set_session_cookie
from .middleware import client_info, origin_allowed
from .proxy import Networks

log = logging.getLogger(__name__)

# A 1x1 transparent GIF, so the hidden <img> loads cleanly.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""What a follow nonce looks like (``secrets.token_urlsafe``)."""


def same_origin(request: Request, extra: tuple[str, ...], trusted: Networks) -> bool:
    """Fetch metadata says same-origin, or a matching Origin header does."""
    site: str | None = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    return origin_allowed(request, extra, trusted)


def install_ticket_route(app: Sanic[Any, Any]) -> None:
    async def redeem(request: Request, ticket: str) -> HTTPResponse:
        if not same_origin(request, app.ctx.settings.allowed_origins, app.ctx.trusted):
            log.warning("ticket refused: not a same-origin request")
            return text("Forbidden", status=403, headers={"cache-control": "no-store"})
        service: AuthService = app.ctx.service
        try:
            redemption = await service.redeem_ticket(
                ticket, read_session_cookie(request), client_info(request, app.ctx.trusted)
            )
        except TicketRejected:
            return text("Gone", status=410, headers={"cache-control": "no-store"})
        # The image request is sent on to HELD_PATH: following it, the browser presents
        # the new cookie, which proves it stored it before any view says "signed in".
        response = redirect(HELD_PATH, status=303)
        remaining = redemption.session.absolute_expires_at - service.now()
        set_session_cookie(
            response,
            redemption.token,
            int(remaining.total_seconds()),
            name=app.ctx.settings.cookie_name,
        )
        return response

    async def held(request: Request) -> HTTPResponse:
        if same_origin(request, app.ctx.settings.allowed_origins, app.ctx.trusted):
            service: AuthService = app.ctx.service
            await service.cookie_held(read_session_cookie(request))
        return raw(PIXEL, content_type="image/gif", headers={"cache-control": "no-store"})

    async def follow(request: Request, nonce: str) -> HTTPResponse:
        headers = {"cache-control": "no-store"}
        if not same_origin(request, app.ctx.settings.allowed_origins, app.ctx.trusted):
            log.warning("follow refused: not a same-origin request")
            return text("Forbidden", status=403, headers=headers)
        if NONCE.fullmatch(nonce) is None:
            return text("Not Found", status=404, headers=headers)
        service: AuthService = app.ctx.service
        await service.follow(nonce, read_session_cookie(request))
        return raw(PIXEL, content_type="image/gif", headers=headers)

    app.add_route(redeem, f"{TICKET_PATH}/<ticket:str>", name="auth_ticket")
    app.add_route(held, HELD_PATH, name="auth_cookie_held")
    app.add_route(follow, f"{FOLLOW_PATH}/<nonce:str>", name="auth_follow")
