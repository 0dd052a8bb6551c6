"""Wire formats of the Fragment API v3 emulator: the JSON the service sends, and its error answers.

Shapes the library reads are exact (fragment-api-lib 1.1.0, refs/fragment.md §1.3); the rest — `user_info`,
`config`, the extra order fields, the error statuses — are inferred and kept consistent across endpoints.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

encode = msgspec.json.Encoder(decimal_format="string").encode

NETWORK = "-239"  # TON mainnet's global id, as TON Connect names it
NANO = 10**9

# The HTTP status each error code is answered with. The library reads only `error_code`; these are for
# people reading logs and for callers that branch on the status class.
STATUS_OF: dict[str, int] = {
    "BAD_REQUEST": 400,
    "INVALID_PRODUCT": 400,
    "INVALID_AMOUNT": 400,
    "INVALID_USERNAME": 400,
    "INVALID_WALLET_TYPE": 400,
    "PAYMENT_METHOD_NOT_SUPPORTED": 400,
    "NO_KYC_USDT_UNAVAILABLE": 400,
    "INVALID_SIGNED_MESSAGE": 400,
    "UNAUTHORIZED": 401,
    "INVALID_PROOF": 401,
    "INSUFFICIENT_BALANCE": 402,
    "FRAGMENT_COOKIES_REQUIRED": 403,
    "WALLET_NOT_CONNECTED_TO_FRAGMENT": 403,
    "USER_NOT_FOUND": 404,
    "RECIPIENT_NOT_FOUND": 404,
    "ORDER_NOT_FOUND": 404,
    "NOT_FOUND": 404,
    "ORDER_NOT_PAYABLE": 409,
    "PREMIUM_ACTIVE": 409,
    "ORDER_EXPIRED": 410,
    "TRANSFER_FAILED": 422,
    "INTERNAL_ERROR": 500,
    "TRANSFER_NOT_SENT": 502,
    "NO_KYC_UNAVAILABLE": 503,
    "TON_SERVICE_UNAVAILABLE": 503,
    "TRANSFER_AMBIGUOUS": 504,
}

MESSAGES: dict[str, str] = {
    "UNAUTHORIZED": "Invalid or expired auth key",
    "INSUFFICIENT_BALANCE": "Not enough TON on the wallet to pay for the order",
    "ORDER_EXPIRED": "The order has expired, create it again",
    "TRANSFER_FAILED": "The network rejected the payment",
    "TRANSFER_AMBIGUOUS": "The payment was sent but its result is not known yet",
    "TRANSFER_NOT_SENT": "The payment was not sent",
    "TON_SERVICE_UNAVAILABLE": "The TON network is not reachable, try again",
    "INVALID_SIGNED_MESSAGE": "The signed message can not be accepted",
    "FRAGMENT_COOKIES_REQUIRED": "KYC orders need your Fragment cookies: sign in with fragment_cookies",
    "NO_KYC_UNAVAILABLE": "Purchases without KYC are paused, try later",
    "NO_KYC_USDT_UNAVAILABLE": "Purchases without KYC can not be paid in USDT",
    "WALLET_NOT_CONNECTED_TO_FRAGMENT": "The wallet is not connected to the Fragment account",
    "USER_NOT_FOUND": "No Telegram users found.",
    "RECIPIENT_NOT_FOUND": "No Telegram users found.",
    "PREMIUM_ACTIVE": "This account is already subscribed to Telegram Premium.",
    "INTERNAL_ERROR": "Internal server error",
}

# Statuses an order goes through: created -> processing -> success | failed, or created -> expired.
CREATED, PROCESSING, SUCCESS, FAILED, EXPIRED = "created", "processing", "success", "failed", "expired"


class ApiFailure(Exception):
    """An error answer: `{"success": false, "error_code", "message", ...extra}` with the code's status."""

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None, **extra: Any) -> None:
        self.code = code
        self.status = status if status is not None else STATUS_OF.get(code, 400)
        self.body: dict[str, Any] = {
            "success": False,
            "error_code": code,
            "message": message or MESSAGES.get(code, code),
            **extra,
        }
        super().__init__(f"{self.status} {code}: {self.body['message']}")


class PaymentMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One leg of a payment: `amount` nanotons to `address` with `payload` (a base64 BoC) as the body."""

    role: str  # "fragment" | "fee" | "middle"
    address: str  # friendly, non-bounceable: the library takes bounce from the address's flag
    amount: str
    payload: str


class PaymentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the wallet must send to pay one order, in TON Connect's sendTransaction shape."""

    valid_until: int
    network: str
    from_: str = msgspec.field(name="from")  # the payer, raw form, as Fragment writes it
    messages: list[PaymentMessage]


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the service reports it; `cost` and `fee` are TON decimal strings."""

    id: str
    ref_id: str
    status: str
    product: str
    amount: int
    username: str
    recipient_id: str
    kyc: bool
    payment_method: str
    show_sender: bool
    cost: str
    fee: str
    currency: str
    txid: str | None
    idempotency_key: str | None
    custom_order_info: Any
    valid_until: int
    created_at: int
    updated_at: int


class CreateOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The body of POST /v3/orders, as the library sends it (every key present, some null)."""

    product: str
    username: str
    amount: int
    kyc: bool = True
    payment_method: str = "ton"
    show_sender: bool = True
    idempotency_key: str | None = None
    custom_order_info: Any = None


class Proof(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: int
    domain: str
    payload: str
    signature: str


class SignIn(msgspec.Struct, frozen=True, kw_only=True):
    """The body of POST /v3/auth."""

    public_key: str
    wallet_type: str
    proof: Proof
    fragment_cookies: str | None = None


class Submit(msgspec.Struct, frozen=True, kw_only=True):
    """The body of POST /v3/orders/submit."""

    orders: list[str]
    boc: str


def ton_text(nano: int) -> str:
    """Nanotons as a plain TON decimal string: 224400000 -> "0.2244", 10**10 -> "10"."""
    return format((Decimal(nano) / NANO).normalize(), "f")


def error_body(status: int, code: str | None, message: str | None, extra: dict[str, Any]) -> bytes:
    """An error answer's bytes; with no code a 5xx looks like a proxy's HTML page, which the library reads as {}."""
    if code is None and status >= 500:
        return f"<html><body><h1>{status}</h1>upstream error</body></html>".encode()
    return encode(
        {
            "success": False,
            **({"error_code": code} if code else {}),
            "message": message or MESSAGES.get(code or "", f"HTTP {status}"),
            **extra,
        }
    )
