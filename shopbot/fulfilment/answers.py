"""What the Fragment service's answers about an order mean to the shop: paid, failed, its transaction (an
answer about a payment names each order it paid), and the reason a buyer reads when the service refused it."""

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


def paid_in(answer: dict[str, Any], fragment_order_id: str) -> tuple[bool, str | None]:
    """Whether a submit's answer shows this order paid (its own entry, by Fragment order id: one payment may
    pay several), and the transaction that paid it. An order the answer does not list is not shown paid."""
    for order in answer.get("orders") or []:
        if isinstance(order, dict) and str(order.get("id")) == fragment_order_id:
            if str(order.get("status", "")).lower() not in PAID:
                return False, None
            txid = order.get("txid") or answer.get("transaction_hash")
            return True, str(txid) if txid else None
    return False, None


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
