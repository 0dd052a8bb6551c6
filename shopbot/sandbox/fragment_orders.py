"""Orders of the Fragment emulator: recipients, prices, payment legs, idempotency keys, expiry, settlement."""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import msgspec
from fragment_api_lib.v3.address import Address
from fragment_api_lib.v3.cell import Cell

from shopbot.sandbox.fragment_ton import comment_cell
from shopbot.sandbox.fragment_wire import (
    CREATED,
    EXPIRED,
    FAILED,
    NANO,
    NETWORK,
    PROCESSING,
    ApiFailure,
    CreateOrder,
    Order,
    PaymentMessage,
    PaymentRequest,
    ton_text,
)

MIN_STARS, MAX_STARS = 50, 1_000_000
PREMIUM_MONTHS = (3, 6, 12)
# The server accepts collectible 4-letter usernames too; the library's own echo check is stricter (5..32).
USERNAME = re.compile(r"(?:^https?://t\.me/|^@|^)([a-zA-Z0-9_]{4,32})/?$")
_BASE62 = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Recipient:
    """A Telegram account Fragment can find."""

    username: str
    name: str
    photo: str | None
    recipient_id: str
    premium: bool = False


@dataclass(frozen=True)
class Leg:
    """One payment message of an order, with its body cell kept for exact matching."""

    role: str
    address: Address  # carries the non-bounceable flag the library signs with
    amount: int
    payload: Cell


@dataclass
class Settlement:
    """How a `processing` order ends: by itself at `due` (a time.time()), or when a test says so (None)."""

    outcome: str  # SUCCESS | FAILED
    due: float | None


@dataclass
class OrderState:
    """An order, the wallet that owns it, and what paying it takes."""

    order: Order
    wallet: Address
    legs: tuple[Leg, ...]
    payment_hash: str | None = None  # normalized hash of the external that paid it
    settlement: Settlement | None = None

    @property
    def status(self) -> str:
        return self.order.status

    def payment(self) -> PaymentRequest | None:
        """The payment request while the order can be paid; None after that (the library: NOTHING_TO_PAY)."""
        if self.order.status != CREATED:
            return None
        return PaymentRequest(
            valid_until=self.order.valid_until,
            network=NETWORK,
            from_=self.wallet.to_raw(),
            messages=[
                PaymentMessage(
                    role=leg.role,
                    address=leg.address.to_friendly(bounceable=False),
                    amount=str(leg.amount),
                    payload=leg.payload.to_b64(),
                )
                for leg in self.legs
            ],
        )

    def set_status(self, status: str, now: float, *, txid: str | None = None) -> None:
        self.order = msgspec.structs.replace(
            self.order, status=status, updated_at=int(now), txid=txid if txid is not None else self.order.txid
        )


@dataclass
class Pricing:
    """What Fragment charges in TON, and the service's fee on top (a percentage of Fragment's price)."""

    ton_per_star: Decimal
    premium_ton: Mapping[int, Decimal]
    fee_percent: Decimal

    def fragment_nano(self, product: str, amount: int) -> int:
        ton = self.ton_per_star * amount if product == "stars" else self.premium_ton[amount]
        return int((ton * NANO).to_integral_value(ROUND_HALF_UP))

    def fee_nano(self, price_nano: int) -> int:
        # Rounded down, so the fee never exceeds the percentage the library checks against.
        return int((Decimal(price_nano) * self.fee_percent / 100).to_integral_value(ROUND_DOWN))


def normalize_username(value: str) -> str:
    """`durov`, `@durov` or `https://t.me/durov` -> "durov"; anything else is refused."""
    match = USERNAME.search(value.strip())
    if match is None:
        raise ApiFailure("INVALID_USERNAME", f"not a Telegram username: {value!r}")
    return match.group(1).lower()


def validate_product(request: CreateOrder) -> None:
    """Stars 50..1,000,000 or Premium for 3, 6 or 12 months, paid in TON."""
    if request.product == "stars":
        if not MIN_STARS <= request.amount <= MAX_STARS:
            raise ApiFailure("INVALID_AMOUNT", f"stars must be {MIN_STARS}..{MAX_STARS}, not {request.amount}")
    elif request.product == "premium":
        if request.amount not in PREMIUM_MONTHS:
            raise ApiFailure("INVALID_AMOUNT", f"premium lasts 3, 6 or 12 months, not {request.amount}")
    else:
        raise ApiFailure("INVALID_PRODUCT", f"the emulator sells stars and premium, not {request.product!r}")
    if request.payment_method != "ton":
        if request.payment_method == "usdt_ton" and not request.kyc:
            raise ApiFailure("NO_KYC_USDT_UNAVAILABLE")
        raise ApiFailure(
            "PAYMENT_METHOD_NOT_SUPPORTED", f"the emulator takes payment_method 'ton', not {request.payment_method!r}"
        )


def new_ref() -> str:
    """A Fragment-style reference, e.g. hoIyV33yw."""
    return "".join(secrets.choice(_BASE62) for _ in range(9))


def purchase_text(product: str, amount: int, ref: str) -> str:
    """The comment Fragment puts on its invoice (note the space before the blank line)."""
    item = f"{amount} Telegram Stars" if product == "stars" else f"Telegram Premium for {amount} months"
    return f"{item} \n\nRef#{ref}"


def build_legs(
    request: CreateOrder,
    ref: str,
    pricing: Pricing,
    fragment_wallet: Address,
    fee_wallet: Address,
    middle_wallet: Address,
) -> tuple[Leg, ...]:
    """KYC: Fragment's invoice plus the fee leg (left out when it rounds to 0); no-KYC: one middle leg."""
    price = pricing.fragment_nano(request.product, request.amount)
    fee = pricing.fee_nano(price)
    text = purchase_text(request.product, request.amount, ref)
    if not request.kyc:
        return (Leg("middle", middle_wallet, price + fee, comment_cell(text)),)
    legs = [Leg("fragment", fragment_wallet, price, comment_cell(text))]
    if fee:
        legs.append(Leg("fee", fee_wallet, fee, comment_cell(f"Fragment API fee \n\nRef#{ref}")))
    return tuple(legs)


@dataclass
class OrderBook:
    """Every order, by id; idempotency keys per wallet."""

    orders: dict[str, OrderState] = field(default_factory=dict)
    _keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def by_key(self, wallet: Address, key: str | None) -> OrderState | None:
        """The order an idempotency key names, unless it ended with no money kept (expired, or failed and
        refunded): then the key is free again ("create it again, the same idempotency_key is fine")."""
        if key is None or (found := self._keys.get((wallet.to_raw(), key))) is None:
            return None
        state = self.orders[found]
        return None if state.status in (EXPIRED, FAILED) else state

    def add(
        self,
        request: CreateOrder,
        wallet: Address,
        recipient: Recipient,
        legs: tuple[Leg, ...],
        ref: str,
        now: float,
        ttl: float,
    ) -> OrderState:
        fee = sum(leg.amount for leg in legs if leg.role == "fee")
        order = Order(
            id=str(uuid.uuid4()),
            ref_id=ref,
            status=CREATED,
            product=request.product,
            amount=request.amount,
            username=recipient.username,
            recipient_id=recipient.recipient_id,
            kyc=request.kyc,
            payment_method=request.payment_method,
            show_sender=request.show_sender,
            cost=ton_text(sum(leg.amount for leg in legs)),
            fee=ton_text(fee),
            currency="TON",
            txid=None,
            idempotency_key=request.idempotency_key,
            custom_order_info=request.custom_order_info,
            valid_until=int(now + ttl),
            created_at=int(now),
            updated_at=int(now),
        )
        state = OrderState(order=order, wallet=wallet, legs=legs)
        self.orders[order.id] = state
        if request.idempotency_key is not None:
            self._keys[(wallet.to_raw(), request.idempotency_key)] = order.id
        return state

    def owned(self, wallet: Address, order_id: str) -> OrderState:
        state = self.orders.get(order_id)
        if state is None or state.wallet != wallet:
            raise ApiFailure("ORDER_NOT_FOUND", f"no order {order_id}")
        return state

    def of_wallet(self, wallet: Address) -> list[OrderState]:
        """The wallet's orders, newest first."""
        return [state for state in reversed(self.orders.values()) if state.wallet == wallet]

    def expire_due(self, now: float) -> None:
        """Unpaid orders past valid_until are expired: Fragment's invoice is gone."""
        for state in self.orders.values():
            # One whose payment left in time and lands late (a settlement planned) does not expire.
            if state.status == CREATED and state.order.valid_until < now and state.settlement is None:
                state.set_status(EXPIRED, now)

    def settle_due(self, now: float) -> list[OrderState]:
        """Processing orders (and unpaid-looking ones whose payment lands late) whose settlement time came;
        returns them so money can follow the outcome."""
        return [
            state
            for state in self.orders.values()
            if state.status in (PROCESSING, CREATED)
            and state.settlement
            and state.settlement.due is not None
            and state.settlement.due <= now
        ]


def ensure_payable(states: list[OrderState], now: float) -> None:
    """Every order must still be `created` and inside its valid_until."""
    for state in states:
        if state.status == CREATED and state.order.valid_until < now and state.settlement is None:
            state.set_status(EXPIRED, now)
    expired = [state.order for state in states if state.status == EXPIRED]
    if expired:
        raise ApiFailure("ORDER_EXPIRED", released=0, orders=expired)
    unpayable = [state.order for state in states if state.status != CREATED]
    if unpayable:
        listed = ", ".join(f"{o.id} is {o.status}" for o in unpayable)
        raise ApiFailure("ORDER_NOT_PAYABLE", f"nothing to pay: {listed}", orders=unpayable)
