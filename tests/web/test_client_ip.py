"""Who is calling, behind trusted proxies: every X-Forwarded-For line counts, so a client cannot hide behind a
second header line that a proxy added instead of appending to the first."""

from __future__ import annotations

from starlette.requests import Request

from shopbot.web.client_ip import client_ip, parse_networks

PROXIES = parse_networks(["10.0.0.0/8"])


def request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", line.encode()) for line in forwarded]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "client": (peer, 443)})


def test_every_forwarded_for_line_counts_right_to_left() -> None:
    # The client sent its own (forged) line; the proxy added the real address as a second line.
    assert client_ip(request("10.0.0.2", "31.133.220.8", "198.51.100.7"), PROXIES) == "198.51.100.7"
    assert client_ip(request("10.0.0.2", "31.133.220.8, 198.51.100.7", "10.0.0.3"), PROXIES) == "198.51.100.7"


def test_an_untrusted_peer_is_taken_as_it_is() -> None:
    assert client_ip(request("203.0.113.9", "31.133.220.8"), PROXIES) == "203.0.113.9"
