"""Response headers every response carries, and a response type that sends them cheaply.

Sanic re-encodes and sanitises every header of every response; for the page, which is
served on each visit, the constant headers are encoded once, at start, instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from sanic.response import BaseHTTPResponse, HTTPResponse

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
HSTS = {"strict-transport-security": "max-age=63072000; includeSubDomains"}

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


def secure(response: R, https: bool) -> R:
    """Add the security headers to an ordinary (not prepared) response."""
    response.headers.update(SECURITY_HEADERS)
    if https:
        response.headers.update(HSTS)
    return response
