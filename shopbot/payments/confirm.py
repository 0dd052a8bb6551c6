"""A signed webhook is a hint, not a payment: Heleket's payment/info decides what is applied.

The signature proves the body came from someone holding the payment key, not that the invoice is paid:
Heleket's own test webhooks (`/v1/test-webhook/payment`, for a real invoice) are signed with that key,
and so is every body ever sent, which can be replayed. So after the cheap checks on the body (our
invoice, its amount, a state already acted on), Heleket is asked about the invoice and its answer is
applied through `Settlement`, exactly as the reconciler applies it. Nothing about the webhook itself is
recorded as a payment state, so a webhook Heleket did not confirm can never make the genuine one after it a
duplicate. The settler (settler.py) runs this for each event of the inbox, after the webhook was answered; it
sends the notices of the result (`Settlement.tell`) once its own transaction has ended.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from shopbot.db.queries import queries
from shopbot.payments.heleket import HeleketError
from shopbot.payments.heleket_wire import HeleketWebhook
from shopbot.payments.lookup import PaymentLookup
from shopbot.payments.settle import Outcome, Settled, Settlement

log = logging.getLogger(__name__)


def _not_found(exc: HeleketError) -> bool:
    return not exc.temporary and "not found" in str(exc).lower()


async def settle_webhook(webhook: HeleketWebhook, settlement: Settlement, lookup: PaymentLookup | None) -> Settled:
    """Apply what Heleket says about the webhook's invoice, its notices not sent yet; UNCONFIRMED when it
    does not say what the webhook said (and nothing was credited), UNAVAILABLE when Heleket could not be asked."""
    invoice = await settlement.our_invoice(webhook)  # not about our invoice: nothing to ask Heleket
    if isinstance(invoice, Outcome):
        return Settled(invoice)
    if await queries.invoices.invoice_event_seen(settlement.pool, webhook.uuid, webhook.status, webhook.is_final):
        return Settled(Outcome.DUPLICATE)  # Heleket confirmed this very state before, and it was acted on
    if lookup is None:
        return Settled(Outcome.UNAVAILABLE)
    said = (webhook.uuid, webhook.status, webhook.is_final)
    try:
        # A remembered answer only if final and the same as the webhook's: anything else could hide the
        # change this webhook announces.
        info = await lookup.remembered(webhook.order_id, fresh=True)
        if info is None or (info.uuid, info.status, info.is_final) != said:
            info = await lookup.ask(webhook.order_id)
    except HeleketError as exc:
        if _not_found(exc):
            log.warning(
                "webhook %s for invoice %s: Heleket does not know the invoice; nothing applied",
                webhook.status,
                webhook.order_id,
            )
            return Settled(Outcome.UNCONFIRMED)
        log.warning("webhook %s for invoice %s could not be confirmed: %s", webhook.status, webhook.order_id, exc)
        return Settled(Outcome.UNAVAILABLE)
    payload: dict[str, Any] = msgspec.to_builtins(info)
    settled = await settlement.settle(info, source="webhook", payload=payload, invoice=invoice)
    if settled.outcome != Outcome.CREDITED and (info.uuid, info.status, info.is_final) != said:
        log.warning(
            "webhook for invoice %s said %s (final: %s) but Heleket says %s (final: %s); "
            "not applied as the webhook said",
            webhook.order_id,
            webhook.status,
            webhook.is_final,
            info.status,
            info.is_final,
        )
        return Settled(Outcome.UNCONFIRMED, settled.credited, settled.bonus)
    return settled
