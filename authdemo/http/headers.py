"""Response headers every response carries, and a response type that sends them cheaply.

Sanic re-encodes and sanitises every header of every response; for the page, which is
served on each visit, the constant headers are encoded once, at start, instead. Every
other response of the app (its own routes, error pages) gets them from one response
middleware; a route opts out with ``ctx_security_headers=False``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse

from ..config import Settings
from .proxy import request_scheme

# IDOM's client needs neither inline scripts nor eval (its eval serves only <script>
# elements with content, which authdemo never renders) nor inline styles (it sets styles
# through the CSSOM, which CSP allows). 'self' covers the same-origin websocket.
BASE_POLICY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default-src", ("'self'",)),
    ("script-src", ("'self'",)),
    ("style-src", ("'self'",)),
    ("img-src", ("'self'", "data:")),
    ("connect-src", ("'self'",)),
    ("font-src", ("'self'",)),
    ("object-src", ("'none'",)),
    ("base-uri", ("'none'",)),
    ("form-action", ("'self'",)),
    ("frame-ancestors", ("'none'",)),
)


def content_security_policy(extra: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """authdemo's policy with ``extra`` sources merged in: one header, each source once.

    A directive the base policy leaves to ``default-src`` (media-src, frame-src…) starts
    from 'self', as default-src did, rather than from nothing."""
    directives = {name: list(sources) for name, sources in BASE_POLICY}
    for name, sources in (extra or {}).items():
        merged = directives.setdefault(name, ["'self'"])
        merged.extend(s for s in sources if s not in merged)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


CONTENT_SECURITY_POLICY = content_security_policy()
_HARDENING = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
SECURITY_HEADERS = {"content-security-policy": CONTENT_SECURITY_POLICY, **_HARDENING}
HSTS = {"strict-transport-security": "max-age=63072000; includeSubDomains"}


@dataclass(frozen=True)
class SecurityHeaders:
    """The headers of one app: its Content-Security-Policy and the fixed hardening set."""

    plain: Mapping[str, str]
    """On every response."""
    tls: Mapping[str, str]
    """On responses over https: ``plain`` and HSTS."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityHeaders:
        policy = content_security_policy(settings.csp_sources())
        plain = {"content-security-policy": policy, **_HARDENING}
        return cls(plain=plain, tls={**plain, **HSTS})

    def for_scheme(self, https: bool) -> Mapping[str, str]:
        return self.tls if https else self.plain


EncodedHeaders = tuple[tuple[bytes, bytes], ...]


def encode_headers(*groups: Mapping[str, str]) -> EncodedHeaders:
    return tuple(
        (name.encode("ascii"), value.encode("latin-1"))
        for group in groups
        for name, value in group.items()
    )


class PreparedResponse(HTTPResponse):
    """An HTTPResponse whose constant headers were encoded in advance."""

    __slots__ = ("_prepared",)

    def __init__(self, body: bytes, prepared: EncodedHeaders, status: int = 200) -> None:
        super().__init__(body, status=status, content_type=None)
        self._prepared = prepared

    @property
    def processed_headers(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self._prepared
        for name, value in self.headers.items():  # the few set per response
            yield name.encode("ascii"), f"{value}".encode("latin-1")


R = TypeVar("R", bound=BaseHTTPResponse)


def add_security_headers(response: R, headers: Mapping[str, str]) -> R:
    """Add ``headers`` the response does not set itself: a route that sends its own
    (say, a stricter Content-Security-Policy) keeps it, and there is never a second."""
    present = response.headers
    for name, value in headers.items():
        if name not in present:
            present[name] = value
    return response


def install_security_headers(app: Sanic[Any, Any], headers: SecurityHeaders) -> None:
    """Every response of ``app`` gets the security headers: authdemo's routes, the
    app's own routes and error pages alike. Prepared responses (the page, static files)
    carry them already. A route opts out with ``ctx_security_headers=False``::

        @app.get("/embed/widget", ctx_security_headers=False)
    """

    def secure_response(request: Request, response: BaseHTTPResponse) -> None:
        if isinstance(response, PreparedResponse):
            return
        route = request.route
        if route is not None and getattr(route.ctx, "security_headers", True) is False:
            return
        https = request_scheme(request, request.app.ctx.trusted) == "https"
        add_security_headers(response, headers.for_scheme(https))

    app.register_middleware(secure_response, "response")
