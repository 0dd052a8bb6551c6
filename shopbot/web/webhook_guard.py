"""In front of every `/webhook/...` endpoint: a per-address rate limit, and a count of every answer.

Heleket and Telegram send from a few addresses; anyone else hammering the endpoints gets 429 with a
`Retry-After` before the body is read or a signature checked. The address is the one `client_ip`
trusts (X-Forwarded-For only through `[web] trusted_proxies`). Every answer, refused or not, is
counted in `shopbot_webhook_requests_total{endpoint,status}`.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopbot.guard.limiter import Limit, RateLimiter
from shopbot.metrics import Metrics
from shopbot.web.client_ip import Network, client_ip

PREFIX = "/webhook/"
ENDPOINTS = ("/webhook/heleket", "/webhook/telegram")  # metric labels stay bounded


class WebhookGuard:
    """Pure ASGI middleware; everything that is not a webhook passes untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        per_minute: int,
        burst: int,
        trusted_proxies: tuple[Network, ...],
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.limit = Limit("webhook", per_minute, burst)
        self.proxies = trusted_proxies
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        endpoint = path if path in ENDPOINTS else "other"
        address = client_ip(Request(scope), self.proxies)
        verdict = await self.limiter.take(f"webhook:{address}", self.limit)
        if not verdict.allowed:
            self.metrics.rate_limit_hits.labels("webhook").inc()
            self.metrics.webhook_requests.labels(endpoint, "429").inc()
            body = msgspec.json.encode({"error": "too_many_requests", "retry_after": verdict.retry_seconds})
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", str(verdict.retry_seconds).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.webhook_requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
