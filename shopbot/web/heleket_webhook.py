"""`POST /webhook/heleket`: Heleket's payment webhooks.

The body is read once and at most MAX_BODY bytes; the signature is checked on it before anything
else is believed, and even a signed body only makes us ask Heleket (payments/confirm.py). Answers: 200
once Heleket's state is applied or known (duplicates included), 200 `unconfirmed` when Heleket does not
say what the webhook said (a test webhook must not be retried for ever; the reconciler keeps asking),
503 when Heleket cannot be asked (so it retries), 404 for an order we do not know (so Heleket retries,
in case our row is not visible yet), and a 4xx naming the problem for anything forged or malformed.
Nothing here moves money: `Settlement` does.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopbot.config.schema import Config
from shopbot.metrics import Metrics
from shopbot.payments.confirm import settle_webhook
from shopbot.payments.heleket_wire import decode_webhook
from shopbot.payments.lookup import PaymentLookup
from shopbot.payments.settle import Outcome, Settlement
from shopbot.payments.signing import WebhookRejected, verify_webhook
from shopbot.request_body import BodyTooLarge, read_limited
from shopbot.web.client_ip import client_ip, is_allowed, parse_networks

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
_STATUS = {
    Outcome.CREDITED: 200,
    Outcome.RECORDED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.UNCONFIRMED: 200,
    Outcome.UNKNOWN_INVOICE: 404,
    Outcome.MISMATCH: 422,
    Outcome.UNAVAILABLE: 503,
}


def heleket_webhook_route(
    config: Config, settlement: Settlement, metrics: Metrics, lookup: PaymentLookup | None
) -> Route:
    """The route, bound to the shop's settlement, its Heleket key, and the lookup that asks Heleket."""
    allowed = parse_networks(config.heleket.allowed_ips)
    proxies = parse_networks(config.web.trusted_proxies)
    api_key = config.heleket.api_key
    for outcome in Outcome:  # every outcome exported from the start, at zero
        metrics.payments.labels(outcome.value)

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
        outcome = await settle_webhook(webhook, settlement, lookup)
        metrics.payments.labels(outcome.value).inc()
        if outcome in (Outcome.UNKNOWN_INVOICE, Outcome.MISMATCH, Outcome.UNAVAILABLE):
            return refuse(_STATUS[outcome], outcome.value, webhook.order_id)
        return JSONResponse({"ok": True, "outcome": outcome.value}, status_code=_STATUS[outcome])

    return Route("/webhook/heleket", on_heleket_webhook, methods=["POST"])
