"""The Heleket emulator's invoices: request validation, prices, and the status transitions of ref §5."""

from __future__ import annotations

import re
import secrets
import uuid as uuid_module
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from shopbot.payments.heleket_wire import (
    CreateInvoice,
    CurrencyOption,
    HeleketWebhook,
    Invoice,
    Service,
    ServiceCommission,
    ServiceLimit,
    WebhookTestRequest,
)

Q8 = Decimal("0.00000001")  # crypto amounts
Q2 = Decimal("0.01")  # fiat amounts and payment_amount_usd
MSK = timezone(timedelta(hours=3))  # Heleket writes created_at/updated_at in +03:00 (ref §2.2)
FIAT = frozenset({"USD", "EUR", "RUB", "UAH", "KZT", "UZS", "BYN", "GBP"})
# Value of one unit in USD: the emulator's whole exchange-rate table. TON at 3 USD is the rate the Fragment
# emulator's prices assume (0.0044 TON a star), so the sandbox's default prices sell above cost.
USD_PRICES = {
    "USD": Decimal(1),
    "EUR": Decimal("1.08"),
    "RUB": Decimal("0.011"),
    "UAH": Decimal("0.024"),
    "KZT": Decimal("0.002"),
    "UZS": Decimal("0.00008"),
    "BYN": Decimal("0.31"),
    "GBP": Decimal("1.27"),
    "USDT": Decimal(1),
    "USDC": Decimal(1),
    "TON": Decimal(3),
    "TRX": Decimal("0.12"),
    "BTC": Decimal(60000),
    "ETH": Decimal(3000),
    "BNB": Decimal(560),
}


def _service(currency: str, network: str, min_amount: str, max_amount: str = "1000000") -> Service:
    return Service(
        network=network,
        currency=currency,
        is_available=True,
        limit=ServiceLimit(min_amount=Decimal(min_amount).quantize(Q8), max_amount=Decimal(max_amount).quantize(Q8)),
        commission=ServiceCommission(fee_amount=Decimal(0).quantize(Q8), percent=Decimal("2.00")),
    )


# Networks in upper case as in Heleket's services sample (ref §3.6); invoices and webhooks use lower case.
DEFAULT_SERVICES = (
    _service("USDT", "TRON", "0.5"),
    _service("USDT", "TON", "0.5"),
    _service("USDT", "BSC", "0.5"),
    _service("TON", "TON", "0.1"),
    _service("TRX", "TRON", "5"),
    _service("BTC", "BTC", "0.00005", "100"),
)
TEST_WEBHOOK_STATUSES = frozenset(
    {
        "process",
        "check",
        "paid",
        "paid_over",
        "fail",
        "wrong_amount",
        "cancel",
        "system_fail",
        "refund_process",
        "refund_fail",
        "refund_paid",
    }
)
FINAL_STATUSES = frozenset(
    {"paid", "paid_over", "wrong_amount", "fail", "cancel", "system_fail", "refund_paid", "refund_fail"}
)
_ALPHA_DASH = re.compile(r"[\w-]+", re.ASCII)
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")


class ApiFailure(Exception):
    """An answer in Heleket's error shape (ref §2.3)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body

    @classmethod
    def message(cls, status: int, text: str) -> ApiFailure:
        return cls(status, {"state": 1, "message": text})


@dataclass
class InvoiceState:
    """One invoice plus what Heleket keeps about it but does not show."""

    invoice: Invoice
    url_callback: str | None
    lifetime: int
    is_payment_multiple: bool
    accuracy_percent: Decimal
    currencies: list[CurrencyOption] | None
    paid: Decimal = Decimal(0)  # in payer_currency, across top-ups
    history: list[str] = field(default_factory=list)  # statuses in order


def now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, MSK).isoformat(timespec="seconds")


def address_for(network: str) -> str:
    """A plausible deposit or payer address for the network."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    if network == "tron":
        return "T" + "".join(secrets.choice(alphabet) for _ in range(33))
    if network == "ton":
        return "UQ" + "".join(secrets.choice(alphabet + "-_") for _ in range(46))
    return "0x" + secrets.token_hex(20)


def rate(from_currency: str, to_currency: str) -> Decimal:
    return (USD_PRICES[from_currency.upper()] / USD_PRICES[to_currency.upper()]).quantize(Q8)


def validate_create(body: dict[str, Any]) -> CreateInvoice:
    """The create request, or a 422 listing every field that breaks a rule, as Laravel reports them."""
    errors: dict[str, list[str]] = {}

    def check(name: str, *rules: str) -> None:
        value = body.get(name)
        if value is None:
            if "required" in rules:
                errors[name] = ["validation.required"]
            return
        for rule in rules:
            problem = None if rule == "required" else _rule(rule, value)
            if problem:
                errors.setdefault(name, []).append(problem)
                return

    check("amount", "required", "string", "decimal", "positive")
    check("currency", "required", "string")
    check("order_id", "required", "string", "alpha_dash", "max:128")
    for name in ("network", "to_currency", "course_source"):
        check(name, "string")
    for name in ("url_return", "url_success", "url_callback"):
        check(name, "string", "min:6", "max:255", "url")
    check("is_payment_multiple", "boolean")
    check("is_refresh", "boolean")
    check("lifetime", "integer", "between:300:43200")
    check("subtract", "integer", "between:0:100")
    check("discount_percent", "integer", "between:-99:100")
    check("accuracy_payment_percent", "decimal", "between:0:5")
    check("additional_data", "string", "max:255")
    for name in ("currencies", "except_currencies"):
        options = body.get(name)
        if options is None:
            continue
        if not isinstance(options, list):
            errors[name] = ["validation.array"]
            continue
        for index, option in enumerate(options):
            if not isinstance(option, dict) or not isinstance(option.get("currency"), str):
                errors[f"{name}.{index}.currency"] = ["validation.required"]
    if errors:
        raise ApiFailure(422, {"state": 1, "errors": errors})
    for name in ("amount", "accuracy_payment_percent"):
        if isinstance(body.get(name), (int, float)):  # converted only after validation said it is numeric
            body = {**body, name: str(body[name])}
    return msgspec.convert(body, CreateInvoice, strict=False)


def identifier(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """uuid and order_id of an info-style request, or the 422 Heleket gives when both are missing."""
    uuid, order_id = body.get("uuid"), body.get("order_id")
    if not isinstance(uuid, str) and not isinstance(order_id, str):
        raise ApiFailure(
            422,
            {
                "state": 1,
                "errors": {"uuid": ["validation.required_without"], "order_id": ["validation.required_without"]},
            },
        )
    return (uuid if isinstance(uuid, str) else None), (order_id if isinstance(order_id, str) else None)


def validate_test_webhook(params: dict[str, Any]) -> WebhookTestRequest:
    """A test-webhook request (ref §3.5: url_callback up to 150, order_id up to 32), or its 422."""
    errors: dict[str, list[str]] = {}
    url = params.get("url_callback")
    if not isinstance(url, str):
        errors["url_callback"] = ["validation.required"]
    elif not 6 <= len(url) <= 150:
        errors["url_callback"] = ["validation.between.string"]
    for name in ("currency", "network"):
        if not isinstance(params.get(name), str):
            errors[name] = ["validation.required"]
    if params.get("status", "paid") not in TEST_WEBHOOK_STATUSES:
        errors["status"] = ["validation.in"]
    order_id = params.get("order_id")
    if order_id is not None and (
        not isinstance(order_id, str) or not _ALPHA_DASH.fullmatch(order_id) or len(order_id) > 32
    ):
        errors["order_id"] = [
            "validation.alpha_dash" if isinstance(order_id, str) and len(order_id) <= 32 else "validation.max.string"
        ]
    uuid = params.get("uuid")
    if uuid is not None and not isinstance(uuid, str):
        errors["uuid"] = ["validation.uuid"]
    if errors:
        raise ApiFailure(422, {"state": 1, "errors": errors})
    return msgspec.convert(params, WebhookTestRequest)


def made_up_invoice(test: WebhookTestRequest) -> Invoice:
    """The made-up paid invoice a test webhook describes when it names none of the merchant's."""
    currency = test.currency.upper()
    amount = (Decimal(10) / USD_PRICES.get(currency, Decimal(1))).quantize(Q8)
    fee = (amount / 50).quantize(Q8)
    return Invoice(
        uuid=test.uuid or str(uuid_module.uuid4()),
        order_id=test.order_id or uuid_module.uuid4().hex,
        amount=amount,
        currency=currency,
        payer_currency=currency,
        network=test.network.lower(),
        payer_amount=amount,
        payment_amount=amount,
        payment_amount_usd=Decimal("10.00"),
        commission=fee,
        merchant_amount=amount - fee,
        status=test.status,
    )


def _rule(rule: str, value: Any) -> str | None:
    name, _, arg = rule.partition(":")
    if name == "string":
        return None if isinstance(value, str) else "validation.string"
    if name == "boolean":
        return None if isinstance(value, bool) or value in (0, 1, "0", "1") else "validation.boolean"
    if name == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
        return None if ok else "validation.integer"
    if name == "decimal":
        return None if _decimal(value) is not None else "validation.numeric"
    if name == "positive":
        number = _decimal(value)
        return None if number is not None and number > 0 else "validation.gt.numeric"
    if name == "alpha_dash":
        return None if _ALPHA_DASH.fullmatch(value) else "validation.alpha_dash"
    if name == "url":
        return None if _URL.fullmatch(value) else "validation.url"
    if name in ("min", "max"):
        size = len(value)
        return None if (size >= int(arg) if name == "min" else size <= int(arg)) else f"validation.{name}.string"
    if name == "between":
        low, high = map(Decimal, arg.split(":"))
        number = _decimal(value)
        return None if number is not None and low <= number <= high else "validation.between.numeric"
    raise AssertionError(f"unknown rule {rule}")


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def new_invoice(request: CreateInvoice, services: list[Service], now: float) -> InvoiceState:
    """A fresh invoice in status `check`; the coin is fixed only when the request pins one (ref §2.1, §9.1)."""
    currency = request.currency.upper()
    crypto = {service.currency for service in services}
    if currency not in FIAT and currency not in crypto:
        raise ApiFailure.message(400, "The currency was not found")
    network = request.network.lower() if request.network else None
    if network is not None and network not in {service.network.lower() for service in services}:
        raise ApiFailure.message(400, "The network was not found")
    payer_currency: str | None = None
    if request.to_currency is not None:
        payer_currency = request.to_currency.upper()
        if payer_currency not in crypto:
            raise ApiFailure.message(400, "Not found service to_currency")
    elif currency in crypto:
        payer_currency = currency
    if payer_currency is not None and network is None:
        networks = [s.network.lower() for s in services if s.currency == payer_currency]
        network = networks[0] if len(networks) == 1 else None  # a one-network coin needs no network (BTC)
    amount = Decimal(request.amount)
    lifetime = request.lifetime if request.lifetime is not None else 3600
    invoice_uuid = str(uuid_module.uuid4())
    invoice = Invoice(
        uuid=invoice_uuid,
        order_id=request.order_id,
        amount=amount.quantize(Q2 if currency in FIAT else Q8),
        discount=Decimal(0).quantize(Q8),
        currency=currency,
        payment_status="check",
        status="check",
        url=f"https://pay.heleket.com/pay/{invoice_uuid}",
        expired_at=int(now) + lifetime,
        is_final=False,
        additional_data=request.additional_data,
        created_at=now_iso(now),
        updated_at=now_iso(now),
    )
    state = InvoiceState(
        invoice=invoice,
        url_callback=request.url_callback,
        lifetime=lifetime,
        is_payment_multiple=request.is_payment_multiple is not False,
        accuracy_percent=Decimal(request.accuracy_payment_percent or 0),
        currencies=request.currencies,
        history=["check"],
    )
    if payer_currency is not None and network is not None:
        choose_coin(state, services, payer_currency, network)
    return state


def choose_coin(state: InvoiceState, services: list[Service], payer_currency: str, network: str) -> None:
    """Fix the coin the payer pays with: address, payer_amount and its rate; limits are checked here."""
    service = find_service(services, payer_currency, network)
    course = rate(state.invoice.currency, payer_currency)
    # From the exact ratio, not the rounded rate: 3.00 USD at 3 USD/TON is 1 TON, not 0.99999999.
    payer_amount = (state.invoice.amount * USD_PRICES[state.invoice.currency] / USD_PRICES[payer_currency]).quantize(Q8)
    minimum, maximum = service.limit.min_amount, service.limit.max_amount
    if payer_amount < minimum:
        raise ApiFailure.message(400, f"Minimum amount {minimum.normalize():f} {payer_currency}")
    if payer_amount > maximum:
        raise ApiFailure.message(400, f"Maximum amount {maximum.normalize():f} {payer_currency}")
    state.invoice = msgspec.structs.replace(
        state.invoice,
        payer_currency=payer_currency,
        network=network.lower(),
        address=address_for(network.lower()),
        payer_amount=payer_amount,
        payer_amount_exchange_rate=course,
        merchant_amount=_net(payer_amount, service),
    )


def find_service(services: list[Service], currency: str, network: str) -> Service:
    for service in services:
        if service.currency == currency.upper() and service.network.lower() == network.lower():
            return service
    raise ApiFailure.message(400, "The network was not found")


def _net(amount: Decimal, service: Service) -> Decimal:
    return (amount - commission(amount, service)).quantize(Q8)


def commission(amount: Decimal, service: Service) -> Decimal:
    return (amount * service.commission.percent / 100 + service.commission.fee_amount).quantize(Q8)


def apply_payment(state: InvoiceState, service: Service, amount: Decimal, now: float, *, final: bool = True) -> None:
    """The payer sent `amount` of payer_currency: paid, paid_over, or an underpayment (ref §5)."""
    invoice = state.invoice
    assert invoice.payer_amount is not None and invoice.payer_currency is not None
    state.paid += amount
    total = state.paid
    required = invoice.payer_amount
    if total > required:
        status = "paid_over"
    elif total >= required * (1 - state.accuracy_percent / 100):
        status = "paid"
    else:  # with top-ups allowed the invoice waits for the rest; otherwise the first payment ends it
        status = "wrong_amount_waiting" if state.is_payment_multiple else "wrong_amount"
    fee = commission(total, service)
    state.invoice = msgspec.structs.replace(
        invoice,
        payment_amount=total.quantize(Q8),
        payment_amount_usd=(total * USD_PRICES[invoice.payer_currency]).quantize(Q2),
        commission=fee,
        merchant_amount=(total - fee).quantize(Q8),
        from_=invoice.from_ or address_for(invoice.network or ""),
        txid=secrets.token_hex(32),
    )
    set_status(state, status, now, final=None if final else False)


def set_status(state: InvoiceState, status: str, now: float, *, final: bool | None = None) -> None:
    """Move the invoice to `status`; final as the status says unless `final` says otherwise."""
    is_final = status in FINAL_STATUSES if final is None else final
    state.invoice = msgspec.structs.replace(
        state.invoice, status=status, payment_status=status, is_final=is_final, updated_at=now_iso(now)
    )
    state.history.append(status)


def expire(state: InvoiceState, now: float) -> None:
    """Lifetime over: `cancel`, or `wrong_amount` when part was paid (ref §5, §6)."""
    set_status(state, "wrong_amount" if state.paid > 0 else "cancel", now)


def refresh(state: InvoiceState, now: float) -> None:
    """is_refresh on an expired invoice: new address and lifetime, back to `check`; nothing else changes."""
    invoice = state.invoice
    state.invoice = msgspec.structs.replace(
        invoice, address=address_for(invoice.network) if invoice.network else None, expired_at=int(now) + state.lifetime
    )
    set_status(state, "check", now)


def webhook_payload(invoice: Invoice, *, status: str | None = None) -> dict[str, Any]:
    """The webhook body for the invoice as it stands, without `sign`, keys in Heleket's order (ref §4.1)."""
    zero = Decimal(0).quantize(Q8)
    # The invoice's own status carries its own finality (a status held back from final says so too).
    is_final = invoice.is_final if status is None or status == invoice.status else status in FINAL_STATUSES
    status = status or invoice.status
    webhook = HeleketWebhook(
        type="payment",
        uuid=invoice.uuid,
        order_id=invoice.order_id,
        amount=invoice.amount.quantize(Q8),
        payment_amount=invoice.payment_amount or zero,
        # USD is only settled on final statuses; intermediate webhooks carry "0.00" (ref §4.1, §7 point 13).
        payment_amount_usd=(invoice.payment_amount_usd or Decimal(0)).quantize(Q2) if is_final else Decimal("0.00"),
        merchant_amount=invoice.merchant_amount if invoice.payment_amount else zero,
        commission=invoice.commission or zero,
        is_final=is_final,
        status=status,
        from_=invoice.from_,
        network=invoice.network,
        currency=invoice.currency,
        payer_currency=invoice.payer_currency,
        payer_amount=invoice.payer_amount,
        payer_amount_exchange_rate=invoice.payer_amount_exchange_rate,
        additional_data=invoice.additional_data,
        txid=invoice.txid,
    )
    payload: dict[str, Any] = msgspec.to_builtins(webhook)
    del payload["sign"]
    if payload["convert"] is None:  # present only when auto-convert is on
        del payload["convert"]
    return payload
