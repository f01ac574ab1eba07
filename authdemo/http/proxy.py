"""Who is the client, and did it use HTTPS? Forwarded headers count only from proxies we
were told to trust (``AUTHDEMO_TRUSTED_PROXIES``); anybody can send them otherwise."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

from sanic import Request

from ..config import ipaddress_networks

Networks = tuple[IPv4Network | IPv6Network, ...]


def parse_networks(raw: str) -> Networks:
    """``127.0.0.1, 10.0.0.0/8, ::1`` → networks; raises ValueError on a bad entry."""
    return tuple(ipaddress_networks(raw))


def _trusted(addr: str, trusted: Networks) -> bool:
    try:
        ip = ip_address(addr)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def peer_address(request: Request) -> str:
    """The address of the TCP peer: the client, or the proxy in front of us."""
    return str(request.conn_info.client_ip if request.conn_info else "") or ""


def client_address(request: Request, trusted: Networks) -> str:
    """The client's address. ``X-Forwarded-For`` is read right to left, skipping trusted
    proxies; the first address that is not one of ours is the client."""
    peer = peer_address(request)
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("x-forwarded-for", [])
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer  # garbage from the client side: fall back to what we know
    return hops[0] if hops else peer


def request_scheme(request: Request, trusted: Networks) -> str:
    """``https`` when the client's connection was TLS (to us, or to a trusted proxy)."""
    if trusted and _trusted(peer_address(request), trusted):
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded
    # The connection itself, not request.scheme (which parses forwarded headers).
    return "https" if request.conn_info is not None and request.conn_info.ssl else "http"
