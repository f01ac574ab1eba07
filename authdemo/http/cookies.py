"""The session cookie: its name (``AUTHDEMO_COOKIE_NAME``), how it is read, how it is set."""

from __future__ import annotations

from sanic import Request
from sanic.response import BaseHTTPResponse

from ..config import DEFAULT_COOKIE_NAME
from ..security import looks_like_token

COOKIE_NAME = DEFAULT_COOKIE_NAME
"""The default name; an app's own is ``settings.cookie_name`` (always ``__Host-…``)."""
_MAX_HEADER = 16 * 1024


def read_session_cookie(request: Request) -> str | None:
    """The session token from the ``Cookie`` header, by the app's literal name only.

    Sanic's ``request.cookies.get()`` falls back from ``__Host-x`` to ``x``; we parse
    the header ourselves so that a plain ``authdemo_session`` cookie can never stand
    in. With duplicates, the first value of the right shape wins; anything else
    (oversized headers, odd quoting, wrong alphabet) reads as "no cookie". The name is
    the requested app's (``settings.cookie_name``), so two apps on one host, whose
    cookies the browser sends to both, each read their own.
    """
    header: str | None = request.headers.get("cookie")
    if not header or len(header) > _MAX_HEADER:
        return None
    wanted: str = request.app.ctx.settings.cookie_name
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip() == wanted:
            value = value.strip()
            if looks_like_token(value):
                return value
    return None


def cookie_header(token: str, max_age: int, *, name: str) -> str:
    """The ``Set-Cookie`` value: ``__Host-`` prefix, hence Secure, Path=/ and no Domain."""
    before, after = cookie_affixes(max_age, name=name)
    return before + token + after


def cookie_affixes(max_age: int, *, name: str) -> tuple[str, str]:
    """``cookie_header``'s text before and after the token, made once by a route that
    sets the cookie on every first visit (the page)."""
    return f"{name}=", f"; Path=/; Max-Age={max(0, max_age)}; SameSite=Lax; Secure; HttpOnly"


def set_session_cookie(response: BaseHTTPResponse, token: str, max_age: int, *, name: str) -> None:
    response.headers.add("set-cookie", cookie_header(token, max_age, name=name))
    # A response that hands out a credential must never be stored by any cache.
    response.headers["cache-control"] = "no-store"
