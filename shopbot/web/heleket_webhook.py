"""`POST /webhook/heleket`: Heleket's payment webhooks, stored in the inbox and answered.

The endpoint does only what must happen before the answer: the address check, the body read once and at most
MAX_BODY bytes, the signature checked on it before anything else is believed, and one statement storing the
verified event in the inbox (`heleket_inbox`, once per uuid, status and finality) that wakes the settlers;
concurrent requests share that statement and its commit (payments/inbox.py), each answered once it committed.
Answers: 200 once the event is stored (a repeat included: it is stored already), a 4xx naming the problem for
anything forged or malformed (403 address, 413 size, 401 signature, 400 body), and 503 when the event could not
be stored (the database out of reach or busy: web/app.py answers those with `Retry-After`, so Heleket sends it
again). Whether the invoice is ours, what Heleket's payment/info says about it, and the credit are the
settler's (payments/settler.py), after the answer. Nothing here moves money.
"""

from __future__ import annotations

import logging

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopbot.config.schema import Config
from shopbot.metrics import Metrics
from shopbot.payments.heleket_wire import decode_webhook
from shopbot.payments.inbox import Answering, InboxWriter
from shopbot.payments.settler import inbox_event
from shopbot.payments.signing import WebhookRejected, verify_webhook
from shopbot.request_body import BodyTooLarge, read_limited
from shopbot.web.client_ip import client_ip, is_allowed, parse_networks

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


def heleket_webhook_route(
    config: Config, pool: asyncpg.Pool, metrics: Metrics, answering: Answering | None = None
) -> Route:
    """The route, bound to the shop's database (the inbox) and its Heleket key; `answering` (the settler's)
    counts the signed webhooks coming in, so the settler lets a flood of them go first."""
    allowed = parse_networks(config.heleket.allowed_ips)
    proxies = parse_networks(config.web.trusted_proxies)
    api_key = config.heleket.api_key
    inbox = InboxWriter(pool)
    coming = answering if answering is not None else Answering()

    def refuse(status: int, reason: str, detail: str = "") -> Response:
        metrics.errors.labels(f"heleket_webhook_{reason}").inc()
        log.warning("heleket webhook refused (%s)%s", reason, f": {detail}" if detail else "")
        return JSONResponse({"error": reason, "detail": detail}, status_code=status)

    async def on_heleket_webhook(request: Request) -> Response:
        if not api_key:  # without a key every signature would "verify"
            return refuse(503, "heleket_not_configured", "set [heleket] api_key")
        caller = client_ip(request, proxies)
        if not is_allowed(caller, allowed):
            return refuse(403, "address_not_allowed", caller)
        try:
            raw = await read_limited(request, MAX_BODY)
        except BodyTooLarge:
            return refuse(413, "body_too_large", f"over {MAX_BODY} bytes")
        try:
            payload = verify_webhook(raw, api_key.reveal())
            webhook = decode_webhook(payload)
        except WebhookRejected as rejected:
            status = 401 if rejected.reason in ("missing_signature", "bad_signature") else 400
            return refuse(status, rejected.reason, rejected.detail or "")
        if webhook.type != "payment":
            return refuse(400, "unsupported_type", webhook.type)
        coming.arrived()  # only signed ones: a flood of forged webhooks must not hold back the credits
        new = await inbox.store(inbox_event(payload))
        return JSONResponse({"ok": True, "stored": "new" if new else "repeat"})

    return Route("/webhook/heleket", on_heleket_webhook, methods=["POST"])
