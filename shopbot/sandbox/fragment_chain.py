"""The emulated chain under the Fragment emulator: wallets, what a wallet accepts, and the service relaying
a signed payment onto it (POST /v3/orders/submit), including the outcomes tests plan for it.

With a landing delay (`Chain.landing_delay` seconds; 0 applies a payment at once) an accepted external is
in flight: its orders read `processing` at once, while the wallet's seqno and balance stay as they were until
it lands. Only then does the money leave, the seqno advance and the orders read `success`. Until it lands the
same external again waits for the same landing, and any other external for the wallet is refused: the chain
would apply at most one message for that seqno."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from fragment_api_lib.v3.address import Address

from shopbot.sandbox.fragment_auth import Session
from shopbot.sandbox.fragment_orders import Leg, OrderState, Settlement, ensure_payable
from shopbot.sandbox.fragment_ton import (
    MAX_MESSAGES,
    InvalidExternal,
    OutMessage,
    SignedExternal,
    WalletOrder,
    comment_of,
    expected_wallet_id,
    read_external,
    read_wallet_order,
    signature_valid,
)
from shopbot.sandbox.fragment_wire import CREATED, FAILED, PROCESSING, SUCCESS, ApiFailure

SEND_MODE = 3  # pay fees separately + ignore errors: what every wallet app signs, and the library too
# A planned outcome: the payment leaves the wallet at once, but its orders read `created` until it lands.
LANDS_LATE = "LANDS_LATE"


@dataclass
class WalletState:
    """One wallet contract: balance in nanotons, seqno, and whether its code is deployed yet."""

    address: Address
    balance: int = 0
    seqno: int = 0
    deployed: bool = False

    @property
    def state(self) -> str:
        return "active" if self.deployed else "uninit"


class PaidLeg(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    address: str
    amount_nano: int
    comment: str | None


class FragmentPayment(msgspec.Struct, frozen=True, kw_only=True):
    """A payment the emulated chain applied: money left the wallet (and came back if `refunded`)."""

    wallet: str  # friendly, non-bounceable
    order_ids: tuple[str, ...]
    amount_nano: int
    seqno: int  # the seqno it was signed for
    message_hash: str  # hex hash of the submitted external BoC's root cell
    normalized_hash: str  # equals prepare()["normalized_hash"]
    transaction_hash: str
    deployed_wallet: bool  # it carried the state_init that deployed the wallet
    legs: tuple[PaidLeg, ...]
    outcome: str  # "success" | "processing" (ambiguous, not settled yet) | "refunded"
    time: float


def invalid(reason: str) -> ApiFailure:
    """INVALID_SIGNED_MESSAGE: nothing was sent and the orders stay payable."""
    return ApiFailure(
        "INVALID_SIGNED_MESSAGE", f"The signed message can not be accepted: {reason}", reason=reason, released=0
    )


def check_transfer(
    external: SignedExternal, session: Session, wallet: WalletState, states: list[OrderState], now: float
) -> WalletOrder:
    """What the wallet contract and the service check before relaying: the wallet, its deployment, the
    signature, wallet id and seqno, the expiry, and that the messages are exactly the orders' legs."""
    if external.destination != wallet.address:
        raise invalid("the message is for another wallet than the one signed in")
    if external.state_init is not None and external.state_init.hash() != wallet.address.hash:
        raise invalid("the state_init is not this wallet's")
    if not wallet.deployed and external.state_init is None:
        raise invalid("the wallet is not deployed yet: its first message must carry the state_init")
    try:
        order = read_wallet_order(session.wallet_type, external.body)
    except InvalidExternal as error:
        raise invalid(str(error)) from None
    if not signature_valid(session.public_key, order.signed_hash, order.signature):
        raise invalid("the signature does not verify with the wallet's public key")
    if order.wallet_id != expected_wallet_id(session.wallet_type):
        raise invalid(f"wallet id {order.wallet_id} is not this {session.wallet_type} wallet's")
    if order.seqno != wallet.seqno:
        raise invalid(f"signed for seqno {order.seqno} but the wallet is at {wallet.seqno}")
    if order.valid_until <= now:
        # The wallet would refuse it, so it can never land: a re-signature with the same seqno is safe.
        raise ApiFailure(
            "TRANSFER_NOT_SENT",
            f"the signed message expired at {order.valid_until}",
            resign=True,
            reason="expired",
            released=len(states),
        )
    if len(order.messages) > MAX_MESSAGES[session.wallet_type]:
        raise invalid(f"{len(order.messages)} messages are more than a {session.wallet_type} wallet sends")
    legs = [leg for state in states for leg in state.legs]
    if len(order.messages) != len(legs) or not all(map(_same, order.messages, legs)):
        raise invalid("the messages are not the orders' payment")
    return order


def _same(message: OutMessage, leg: Leg) -> bool:
    return (
        message.destination == leg.address
        and message.bounce == leg.address.bounceable
        and message.amount == leg.amount
        and message.body.hash() == leg.payload.hash()
        and message.mode == SEND_MODE
    )


def transaction_hash(external: SignedExternal, seqno: int) -> str:
    """A stand-in for the on-chain transaction hash: unique per applied external."""
    return hashlib.sha256(f"emulated-tx:{external.normalized_hash}:{seqno}".encode()).hexdigest()


def record_payment(
    wallet: WalletState,
    external: SignedExternal,
    order: WalletOrder,
    states: list[OrderState],
    txid: str,
    outcome: str,
    now: float,
) -> FragmentPayment:
    legs = tuple(
        PaidLeg(
            role=leg.role,
            address=leg.address.to_friendly(bounceable=False),
            amount_nano=leg.amount,
            comment=comment_of(leg.payload),
        )
        for state in states
        for leg in state.legs
    )
    return FragmentPayment(
        wallet=wallet.address.to_friendly(bounceable=False),
        order_ids=tuple(s.order.id for s in states),
        amount_nano=sum(m.amount for m in order.messages),
        seqno=order.seqno,
        message_hash=external.message_hash,
        normalized_hash=external.normalized_hash,
        transaction_hash=txid,
        deployed_wallet=not wallet.deployed,
        legs=legs,
        outcome=outcome,
        time=now,
    )


@dataclass(frozen=True)
class Outcome:
    """A planned end for the next payment that passes every check."""

    code: str  # "TRANSFER_FAILED" | "TRANSFER_AMBIGUOUS" | LANDS_LATE
    settle: str = SUCCESS  # TRANSFER_AMBIGUOUS, LANDS_LATE: how its orders end
    after: float | None = None  # seconds until they end by themselves; None: settle()


class SignedPayment(msgspec.Struct, frozen=True, kw_only=True):
    """A signed payment the service was handed (accepted or not), once per distinct external."""

    order_ids: tuple[str, ...]
    normalized_hash: str
    seqno: int | None  # None: the body could not be read
    valid_until: int | None
    time: float


@dataclass
class InFlight:
    """An external the chain accepted that has not landed yet (`result` is set when it has)."""

    wallet: WalletState
    external: SignedExternal
    signed: WalletOrder
    states: list[OrderState]
    total: int
    outcome: Outcome | None
    accepted_at: float
    lands_at: float
    result: dict[str, Any] | ApiFailure | None = None

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(state.order.id for state in self.states)


class Landing(msgspec.Struct, frozen=True, kw_only=True):
    """A payment in flight, as a test sees it."""

    order_ids: tuple[str, ...]
    seqno: int
    normalized_hash: str
    accepted_at: float
    lands_at: float


@dataclass(frozen=True)
class _Applied:
    """An external the chain already took: its orders and its transaction."""

    order_ids: tuple[str, ...]
    transaction_hash: str


@dataclass
class Chain:
    """Wallets and the payments applied to them; `orders` is the order book's own dict, shared."""

    orders: Mapping[str, OrderState]
    wallets: dict[str, WalletState] = field(default_factory=dict)
    payments: list[FragmentPayment] = field(default_factory=list)
    outcomes: deque[Outcome] = field(default_factory=deque)
    received: list[SignedPayment] = field(default_factory=list)  # every distinct external submitted
    landing_delay: float = 0.0  # seconds from accepting an external to its landing; 0: at once
    in_flight: dict[str, InFlight] = field(default_factory=dict)  # accepted, not landed, by normalized hash
    _applied: dict[str, _Applied] = field(default_factory=dict, init=False)  # by normalized hash

    def wallet(self, address: Address) -> WalletState:
        raw = address.to_raw()
        return self.wallets.setdefault(raw, WalletState(Address.parse(raw)))

    def submit(self, session: Session, states: list[OrderState], boc: str, now: float) -> dict[str, Any] | InFlight:
        """Relay a signed payment for these orders: the success answer, an ApiFailure, or (with a landing delay)
        the external in flight, whose answer comes when it lands."""
        try:
            external = read_external(boc)
        except InvalidExternal as error:
            raise invalid(str(error)) from None
        self.receive(session, external, [state.order.id for state in states], now)
        applied = self._applied.get(external.normalized_hash)
        if applied is not None:
            return _replayed(applied, states)
        flying = self.in_flight.get(external.normalized_hash)
        if flying is not None:  # the same external again while it is on its way: the same landing
            if tuple(state.order.id for state in states) != flying.order_ids:
                raise invalid("this message is paying other orders")
            return flying
        wallet = self.wallet(session.wallet)
        if any(flight.wallet is wallet for flight in self.in_flight.values()):
            # Another external for this seqno is on its way: at most one of them can be applied, and once it
            # lands the seqno has moved past this one.
            raise invalid(f"another message for seqno {wallet.seqno} is being applied; this one can never land")
        ensure_payable(states, now)
        signed = check_transfer(external, session, wallet, states, now)
        total = sum(message.amount for message in signed.messages)
        if total > wallet.balance:
            raise ApiFailure(
                "INSUFFICIENT_BALANCE",
                reason=f"the wallet has {wallet.balance} nanotons, the payment needs {total}",
                released=len(states),
            )
        outcome = self.outcomes.popleft() if self.outcomes else None
        if self.landing_delay <= 0:
            return self._apply(wallet, external, signed, states, total, outcome, now)
        flight = InFlight(wallet, external, signed, states, total, outcome, now, now + self.landing_delay)
        self.in_flight[external.normalized_hash] = flight
        for state in states:
            state.set_status(PROCESSING, now)
        return flight

    def land_due(self, now: float) -> None:
        """Land every external in flight whose time has come (each at its own landing time)."""
        for key, flight in list(self.in_flight.items()):
            if flight.lands_at <= now:
                del self.in_flight[key]
                self._land(flight)

    def landings(self) -> list[Landing]:
        """The externals in flight, oldest first."""
        return [
            Landing(
                order_ids=flight.order_ids,
                seqno=flight.signed.seqno,
                normalized_hash=flight.external.normalized_hash,
                accepted_at=flight.accepted_at,
                lands_at=flight.lands_at,
            )
            for flight in self.in_flight.values()
        ]

    def _land(self, flight: InFlight) -> None:
        at = flight.lands_at
        if flight.signed.valid_until < at:
            # Not included before it expired: the wallet never applies it, and it can never land any more.
            for state in flight.states:
                state.set_status(CREATED, at)
            flight.result = ApiFailure(
                "TRANSFER_NOT_SENT",
                f"the signed message expired at {flight.signed.valid_until} before it could land",
                resign=True,
                reason="expired",
                released=len(flight.states),
            )
            return
        if flight.total > flight.wallet.balance:
            # The wallet was drained meanwhile: the external is applied (seqno) but its messages fail.
            flight.wallet.seqno, flight.wallet.deployed = flight.wallet.seqno + 1, True
            for state in flight.states:
                state.set_status(FAILED, at)
            flight.result = ApiFailure(
                "TRANSFER_FAILED", reason="not enough TON when it landed", released=0, orders=_orders(flight.states)
            )
            return
        try:
            flight.result = self._apply(
                flight.wallet, flight.external, flight.signed, flight.states, flight.total, flight.outcome, at
            )
        except ApiFailure as failure:
            flight.result = failure

    def _apply(
        self,
        wallet: WalletState,
        external: SignedExternal,
        signed: WalletOrder,
        states: list[OrderState],
        total: int,
        outcome: Outcome | None,
        now: float,
    ) -> dict[str, Any]:
        """The external lands: money, seqno and the orders' statuses move (or the planned outcome happens)."""
        txid = transaction_hash(external, signed.seqno)
        self._applied[external.normalized_hash] = _Applied(tuple(s.order.id for s in states), txid)
        if outcome is not None and outcome.code == "TRANSFER_FAILED":
            # The wallet took the external (seqno moves, a state_init deploys it); its messages bounced back.
            wallet.seqno, wallet.deployed = wallet.seqno + 1, True
            for state in states:
                state.set_status(FAILED, now)
            raise ApiFailure("TRANSFER_FAILED", reason="the messages bounced", released=0, orders=_orders(states))
        payment = record_payment(wallet, external, signed, states, txid, PROCESSING if outcome else SUCCESS, now)
        self.payments.append(payment)
        wallet.balance, wallet.seqno, wallet.deployed = wallet.balance - total, wallet.seqno + 1, True
        for state in states:
            state.payment_hash = external.normalized_hash
        if outcome is not None and outcome.code == LANDS_LATE:
            # The money left; the service sees its orders paid only when the payment lands.
            due = None if outcome.after is None else now + outcome.after
            for state in states:
                state.set_status(CREATED, now)
                state.settlement = Settlement(outcome.settle, due)
            raise ApiFailure("TRANSFER_AMBIGUOUS", orders=_orders(states))
        if outcome is not None:
            due = None if outcome.after is None else now + outcome.after
            for state in states:
                state.set_status(PROCESSING, now)
                state.settlement = Settlement(outcome.settle, due)
            raise ApiFailure("TRANSFER_AMBIGUOUS", orders=_orders(states))
        for state in states:
            state.set_status(SUCCESS, now, txid=txid)
        return paid_answer(txid, states)

    def receive(self, session: Session, external: SignedExternal, order_ids: list[str], now: float) -> None:
        """Note a signed payment the service was handed (once per distinct external), whatever comes of it."""
        if any(seen.normalized_hash == external.normalized_hash for seen in self.received):
            return
        try:
            order: WalletOrder | None = read_wallet_order(session.wallet_type, external.body)
        except InvalidExternal:
            order = None
        self.received.append(
            SignedPayment(
                order_ids=tuple(order_ids),
                normalized_hash=external.normalized_hash,
                seqno=order.seqno if order else None,
                valid_until=order.valid_until if order else None,
                time=now,
            )
        )

    def settle(self, state: OrderState, outcome: str, now: float) -> None:
        """End every order of this order's payment; "failed" sends the money back to the wallet."""
        index, payment = next((i, p) for i, p in enumerate(self.payments) if state.order.id in p.order_ids)
        for order_id in payment.order_ids:
            covered = self.orders[order_id]
            covered.settlement = None
            covered.set_status(outcome, now, txid=payment.transaction_hash if outcome == SUCCESS else None)
        if outcome != SUCCESS:
            self.wallet(Address.parse(payment.wallet)).balance += payment.amount_nano
        self.payments[index] = msgspec.structs.replace(payment, outcome=SUCCESS if outcome == SUCCESS else "refunded")


def _replayed(applied: _Applied, states: list[OrderState]) -> dict[str, Any]:
    """The same external again: the chain would drop it as a duplicate; answer with what it did."""
    if tuple(state.order.id for state in states) != applied.order_ids:
        raise invalid("this message already paid other orders")
    statuses = {state.status for state in states}
    if statuses == {CREATED}:  # applied, not landed yet: the wallet has moved past its seqno
        raise invalid("this message was applied already; the wallet has moved past its seqno")
    if statuses == {SUCCESS}:
        return {**paid_answer(applied.transaction_hash, states), "duplicate": True}
    orders = [state.order for state in states]
    if PROCESSING in statuses:
        raise ApiFailure("TRANSFER_AMBIGUOUS", orders=orders)
    raise ApiFailure("TRANSFER_FAILED", reason="the messages bounced", released=0, orders=orders)


def _orders(states: list[OrderState]) -> list[Any]:
    return [state.order for state in states]


def paid_answer(txid: str, states: list[OrderState]) -> dict[str, Any]:
    return {
        "success": True,
        "message": "Payment completed",
        "transaction_hash": txid,
        "orders": [state.order for state in states],
    }
