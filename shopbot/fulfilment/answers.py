"""What the Fragment service's answers about an order mean to the shop: paid, failed, its transaction, and
the reason a buyer reads when the service refused it."""

from __future__ import annotations

from typing import Any

from shopbot.fulfilment.fragment import FragmentFailure

PAID, FAILED = {"success", "completed", "paid"}, {"failed", "expired", "cancelled", "canceled", "refunded"}


def status_of(answer: dict[str, Any]) -> str:
    """The order's status in a get_order answer, lower case ("" when the service gave none)."""
    return str((answer.get("order") or {}).get("status", "")).lower()


def txid_of(answer: dict[str, Any]) -> str | None:
    """The transaction that paid the order, when the answer names one."""
    for order in answer.get("orders") or [answer.get("order") or {}]:
        if order.get("txid"):
            return str(order["txid"])
    transaction_hash: str | None = answer.get("transaction_hash")
    return transaction_hash


def refund_reason(failure: FragmentFailure) -> str:
    """Why the order was refunded, as the key of a text the user reads in their language."""
    return {
        "INSUFFICIENT_BALANCE": "refund-reason-no-funds",
        "ORDER_EXPIRED": "refund-reason-expired",
        "UNTRUSTED_PAYMENT": "refund-reason-untrusted",
        "USER_NOT_FOUND": "refund-reason-no-recipient",
        "RECIPIENT_NOT_FOUND": "refund-reason-no-recipient",
        "INVALID_USERNAME": "refund-reason-no-recipient",
        "PREMIUM_ACTIVE": "refund-reason-has-premium",
    }.get(failure.code or "", "refund-reason-refused")
