"""Build Heleket webhooks the way Heleket signs them, for tests that play Heleket's part."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import asyncpg

from shopbot.payments.signing import php_json_encode, sign_body
from tests.shop_harness import HELEKET_KEY


def webhook_payload(
    order_id: str,
    uuid: str,
    amount: Decimal | str,
    status: str = "paid",
    *,
    currency: str = "USD",
    is_final: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A payment webhook body in Heleket's field order, without its signature."""
    payload: dict[str, Any] = {
        "type": "payment",
        "uuid": uuid,
        "order_id": order_id,
        "amount": f"{Decimal(amount):.8f}",
        "payment_amount": f"{Decimal(amount):.8f}",
        "payment_amount_usd": f"{Decimal(amount):.2f}",
        "merchant_amount": f"{Decimal(amount) * Decimal('0.98'):.8f}",
        "commission": "0.00000000",
        "is_final": is_final,
        "status": status,
        "from": None,
        "wallet_address_uuid": None,
        "network": "tron",
        "currency": currency,
        "payer_currency": "USDT",
        "payer_amount": f"{Decimal(amount):.8f}",
        "additional_data": None,
        "txid": "ab" * 32,
    }
    payload.update(extra)
    return payload


def signed(payload: dict[str, Any], key: str = HELEKET_KEY) -> bytes:
    """The wire body: the payload with `sign` computed over PHP's encoding of it."""
    body = dict(payload)
    body["sign"] = sign_body(php_json_encode(payload), key)
    return php_json_encode(body)


async def settled(
    pool: asyncpg.Pool, uuid: str, status: str = "paid", *, is_final: bool = True, state: str | None = None
) -> tuple[str, str]:
    """Wait for the settler to have tried the newest inbox event (uuid, status, is_final) the webhook stored (and,
    with `state`, for the event to be in that state); returns its (state, outcome): ('settled', 'credited'),
    ('refused', 'unconfirmed'), ('pending', 'unavailable')…"""
    with anyio.fail_after(15):
        while True:
            row = await pool.fetchrow(
                "SELECT state, outcome FROM heleket_inbox WHERE uuid = $1 AND status = $2 AND is_final = $3 "
                "ORDER BY id DESC LIMIT 1",
                uuid,
                status,
                is_final,
            )
            if row is not None and row["outcome"] is not None and state in (None, row["state"]):
                return row["state"], row["outcome"]
            await anyio.sleep(0.02)


async def inbox_drained(pool: asyncpg.Pool) -> None:
    """Wait until the settler has acted on every event in the inbox (none pending)."""
    with anyio.fail_after(15):
        while await pool.fetchval("SELECT count(*) FROM heleket_inbox WHERE state = 'pending'"):
            await anyio.sleep(0.02)
