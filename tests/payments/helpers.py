"""Build Heleket webhooks the way Heleket signs them, for tests that play Heleket's part."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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
