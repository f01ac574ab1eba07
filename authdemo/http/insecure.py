"""Plain-http development on a host the browser does not trust: say so, once.

The session cookie is ``Secure`` (its ``__Host-`` name demands it). Browsers store a
Secure cookie from plain http only for ``localhost`` (and its subdomains), 127.0.0.0/8
and [::1]; from ``http://devbox.test:8000`` they drop it without a word, so a sign-in
shows in the open tab and is gone at the next reload. Rather than weaken the cookie,
authdemo explains: one warning in the log per host (per process) and a notice in the
sign-in form (``#insecure-origin-notice``).
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from sanic import Request

from .hosts import host_name
from .proxy import Networks, request_scheme

log = logging.getLogger(__name__)

_WARN_HOSTS_MAX = 64
"""Distinct hosts warned about per process; any Host header may arrive, so it is capped."""


def keeps_secure_cookies(host: str) -> bool:
    """Browsers treat plain http to this host as secure (they keep Secure cookies)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def cookie_dropping_host(host_header: str) -> str | None:
    """The host name of a ``Host`` header whose plain-http pages cannot keep a Secure
    cookie; None for localhost, 127.0.0.1, [::1] (and for headers that name no host).

    Asked on every plain-http page load: parsing an address each time cost a third of
    a page view's CPU (issue 14), and a site sees few distinct ``Host`` values."""
    host = host_name(host_header)
    if host is None or keeps_secure_cookies(host):
        return None
    return host


def insecure_origin(request: Request, trusted: Networks) -> str | None:
    """The host name when this request came over plain http to a host whose pages cannot
    keep the session cookie; None over https and on localhost, 127.0.0.1, [::1]."""
    if request_scheme(request, trusted) == "https":
        return None
    return cookie_dropping_host(_host(request))


def _host(request: Request) -> str:
    """The ``Host`` header. Not ``request.host``: that parses the forwarding headers on
    first use (Sanic's proxy settings, which authdemo leaves unset, so the answer is the
    same), which cost more than the rest of a page view's check."""
    return str(request.headers.getone("host", ""))


class InsecureOriginWarning:
    """Logs the plain-http warning once per host name."""

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def check(self, request: Request) -> None:
        """Call for a request that came over plain http."""
        host = cookie_dropping_host(_host(request))
        if host is None or host in self.warned or len(self.warned) >= _WARN_HOSTS_MAX:
            return
        self.warned.add(host)
        log.warning(
            "http://%s is plain http to a host other than localhost: browsers drop the "
            "Secure session cookie there, so nobody can sign in on this address (the "
            "form says so and offers no sign-in). Serve https, or open it as "
            "http://localhost or http://127.0.0.1 (the docs: Deployment, Developing over "
            "plain http).",
            _host(request),
        )
