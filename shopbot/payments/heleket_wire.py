"""Heleket's wire format: request bodies, the invoice, services, rates and the payment webhook."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

from shopbot.payments.signing import WebhookRejected

T = TypeVar("T")


class Request(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A request body: options left at None are not sent, so Heleket applies its own defaults."""


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """An object Heleket returns; fields it adds later are ignored, nulls and absent fields become None."""


# --- requests ----------------------------------------------------------------------------------------------


class CurrencyOption(Request, frozen=True, kw_only=True):
    """One way to pay, for `currencies` / `except_currencies`."""

    currency: str
    network: str | None = None


class CreateInvoice(Request, frozen=True, kw_only=True):
    """POST /v1/payment (ref §2.1); amounts are decimal strings with a dot, never floats."""

    amount: str
    currency: str
    order_id: str
    network: str | None = None
    url_return: str | None = None
    url_success: str | None = None
    url_callback: str | None = None
    is_payment_multiple: bool | None = None
    lifetime: int | None = None
    to_currency: str | None = None
    subtract: int | None = None
    accuracy_payment_percent: str | None = None
    additional_data: str | None = None
    currencies: list[CurrencyOption] | None = None
    except_currencies: list[CurrencyOption] | None = None
    course_source: str | None = None
    discount_percent: int | None = None
    is_refresh: bool | None = None


class PaymentInfoQuery(Request, frozen=True, kw_only=True):
    """POST /v1/payment/info (ref §3.1): by uuid or order_id."""

    uuid: str | None = None
    order_id: str | None = None


class WebhookTestRequest(Request, frozen=True, kw_only=True):
    """POST /v1/test-webhook/payment (ref §3.5)."""

    url_callback: str
    currency: str
    network: str
    status: str = "paid"
    uuid: str | None = None
    order_id: str | None = None


# --- responses ---------------------------------------------------------------------------------------------


class Envelope(Response, frozen=True, kw_only=True):
    """Every answer: state 0 with `result`, or state 1 with `message` or field `errors` (ref §2.3)."""

    state: int | None = None
    result: msgspec.Raw = msgspec.Raw(b"null")
    message: Any = None
    errors: Any = None


class Convert(Response, frozen=True, kw_only=True):
    """Auto-conversion details of an invoice or webhook."""

    to_currency: str | None = None
    commission: Decimal | None = None
    rate: Decimal | None = None
    amount: Decimal | None = None


class Invoice(Response, frozen=True, kw_only=True):
    """The invoice object of /v1/payment and /v1/payment/info (ref §2.2), fields in Heleket's order."""

    uuid: str
    order_id: str
    amount: Decimal  # in `currency`
    payment_amount: Decimal | None = None  # actually paid, in payer_currency
    payment_amount_usd: Decimal | None = None
    payer_amount: Decimal | None = None  # to be paid, in payer_currency
    payer_amount_exchange_rate: Decimal | None = None
    discount_percent: int | None = None
    discount: Decimal | None = None
    payer_currency: str | None = None
    currency: str
    comments: str | None = None
    merchant_amount: Decimal | None = None
    commission: Decimal | None = None
    network: str | None = None
    address: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    txid: str | None = None
    payment_status: str | None = None
    status: str
    url: str | None = None
    expired_at: int | None = None  # unix seconds
    is_final: bool = False
    additional_data: str | None = None
    created_at: str | None = None  # ISO 8601 with +03:00
    updated_at: str | None = None
    convert: Convert | None = None


class ServiceLimit(Response, frozen=True, kw_only=True):
    min_amount: Decimal
    max_amount: Decimal


class ServiceCommission(Response, frozen=True, kw_only=True):
    fee_amount: Decimal
    percent: Decimal


class Service(Response, frozen=True, kw_only=True):
    """One currency on one network with its limits and Heleket's commission (ref §3.6)."""

    network: str
    currency: str
    is_available: bool
    limit: ServiceLimit
    commission: ServiceCommission


class Rate(Response, frozen=True, kw_only=True):
    """An exchange rate (ref §3.7); Heleket calls the price `course`."""

    from_: str = msgspec.field(name="from")
    to: str
    course: Decimal


class Paginate(Response, frozen=True, kw_only=True):
    count: int = 0
    hasPages: bool = False
    nextCursor: str | None = None
    previousCursor: str | None = None
    perPage: int = 15


class InvoicePage(Response, frozen=True, kw_only=True):
    """A page of /v1/payment/list (ref §3.2)."""

    items: list[Invoice]
    paginate: Paginate


class Ok(Response, Generic[T], frozen=True, kw_only=True):
    """A success envelope as the emulator writes it."""

    state: int
    result: T


# --- the webhook -------------------------------------------------------------------------------------------


class HeleketWebhook(Response, frozen=True, kw_only=True):
    """A payment webhook body (ref §4.1), fields in the order Heleket emits and signs them, `sign` last."""

    type: str  # "payment" | "wallet"
    uuid: str
    order_id: str
    amount: Decimal  # in `currency`
    payment_amount: Decimal | None = None  # in payer_currency
    payment_amount_usd: Decimal | None = None  # "0.00" before the invoice is final
    merchant_amount: Decimal | None = None  # net of commission, in payer_currency
    commission: Decimal | None = None
    is_final: bool
    status: str
    from_: str | None = msgspec.field(default=None, name="from")
    wallet_address_uuid: str | None = None
    network: str | None = None
    currency: str
    payer_currency: str | None = None
    payer_amount: Decimal | None = None
    payer_amount_exchange_rate: Decimal | None = None
    additional_data: str | None = None
    transfer_id: str | None = None
    convert: Convert | None = None
    txid: str | None = None
    sign: str | None = None


def decode_webhook(payload: dict[str, Any]) -> HeleketWebhook:
    """The typed webhook from a verified payload; WebhookRejected("bad_fields") names what is wrong."""
    missing = [name for name in _WEBHOOK_REQUIRED if name not in payload]
    if missing:  # msgspec stops at the first one; an operator wants them all
        raise WebhookRejected("bad_fields", f"missing required fields: {', '.join(missing)}")
    try:
        return msgspec.convert(payload, HeleketWebhook)
    except msgspec.ValidationError as error:
        raise WebhookRejected("bad_fields", str(error)) from None


_WEBHOOK_REQUIRED = tuple(field.encode_name for field in msgspec.structs.fields(HeleketWebhook) if field.required)
