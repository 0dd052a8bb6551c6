"""Heleket's payment/info, with final answers remembered (`[cache] payment_ttl`).

A final answer (paid, cancelled, wrong_amount, ...) never changes, so asking again only costs a
request to Heleket. The cache never decides a credit: every answer, cached or not, still goes through
`Settlement.apply`, whose transaction in PostgreSQL records each (uuid, status) once and credits once.
Answers that are not final (waiting, confirming, ...) are never cached: a user who just paid and
presses "Check payment" must see it at once. In practice a final answer settles the invoice and
PostgreSQL stops the asking; the cache saves Heleket from the cases where it does not (a final status
that disagrees with our invoice, or a settlement that failed after Heleket answered), which the
reconciler would otherwise ask about on every pass.
"""

from __future__ import annotations

from shopbot.cache import Cache
from shopbot.payments.heleket import HeleketClient
from shopbot.payments.heleket_wire import Invoice


async def payment_info(client: HeleketClient, cache: Cache | None, order_id: str) -> Invoice:
    """What Heleket says about the invoice with `order_id`: remembered once final, asked otherwise."""
    if cache is not None:
        known = await cache.get("payment", order_id, Invoice)
        if known is not None and known.is_final and known.order_id == order_id:
            return known
    info = await client.payment_info(order_id=order_id)
    if cache is not None and info.is_final:
        await cache.put("payment", order_id, info)
    return info
