"""Who is really calling: the peer address, or X-Forwarded-For when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: Request, trusted_proxies: tuple[Network, ...]) -> str:
    """The caller's address. X-Forwarded-For is read right to left, skipping our own proxies, so a
    client cannot choose its address by sending the header itself."""
    peer = request.client.host if request.client else ""
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    # Every X-Forwarded-For line counts, in order: a proxy may add its own line rather than append to one.
    lines = request.headers.getlist("x-forwarded-for")
    hops = [hop.strip() for line in lines for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def is_allowed(address: str, allowed: tuple[Network, ...]) -> bool:
    """An empty allow-list allows everyone (the signature still decides)."""
    return not allowed or _in(address, allowed)
