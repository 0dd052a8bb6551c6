"""Apply a Heleket payment status to our invoice: the one path for webhooks and the reconciler.

What is applied is always Heleket's own answer (payment/info), never a webhook body: see confirm.py.
In one transaction, with the invoice row locked: record the (uuid, status, is_final) event once, decide
what to credit under the configured policies, credit through the ledger with the invoice's own
idempotency key, and store the new status. The event is recorded only in the transaction that acts on
it, and `is_final` is part of its key: a non-final `paid` seen first cannot make the final one a
duplicate. A duplicate event changes nothing; a status that disagrees with what we stored (another
amount, currency or uuid) changes nothing and is flagged. The inviter's referral bonus on a credit is
posted in the credit's transaction (referrals.py), so it is paid exactly when the top-up is credited.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Protocol

import asyncpg
import msgspec
from aiogram.exceptions import TelegramAPIError

from shopbot.config.schema import HeleketConfig
from shopbot.db.queries import queries
from shopbot.ledger import Ledger, MovementType, SystemAccount
from shopbot.payments.referrals import Bonus, Referrals

log = logging.getLogger(__name__)
CREDITED_ON = {"paid", "paid_over"}
CENT = Decimal("0.01")
_json = msgspec.json.Encoder()


class PaymentState(Protocol):
    """What both a webhook and a payment/info answer tell about an invoice (read-only, as both are frozen)."""

    @property
    def uuid(self) -> str: ...

    @property
    def order_id(self) -> str: ...

    @property
    def amount(self) -> Decimal: ...

    @property
    def currency(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def is_final(self) -> bool: ...

    @property
    def payer_currency(self) -> str | None: ...

    @property
    def payer_amount(self) -> Decimal | None: ...

    @property
    def payment_amount(self) -> Decimal | None: ...

    @property
    def payment_amount_usd(self) -> Decimal | None: ...


class Outcome(enum.StrEnum):
    CREDITED = "credited"
    RECORDED = "recorded"  # a new status, nothing to credit
    DUPLICATE = "duplicate"
    UNKNOWN_INVOICE = "unknown_invoice"
    MISMATCH = "mismatch"
    UNCONFIRMED = "unconfirmed"  # a webhook Heleket's payment/info did not bear out: nothing applied from it
    UNAVAILABLE = "unavailable"  # Heleket could not be asked to confirm a webhook: nothing applied, retry


@dataclass(frozen=True, slots=True)
class Credited:
    user_id: int
    invoice_id: int
    amount: Decimal
    currency: str
    available: Decimal | None


Notify = Callable[[Credited], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Settled:
    """What applying one status came to, and the notices it still owes (sent by `Settlement.tell`)."""

    outcome: Outcome
    credited: Credited | None = None
    bonus: Bonus | None = None


def paid_in_shop_currency(state: PaymentState) -> Decimal | None:
    """What the payer actually paid, in the invoice currency, rounded down to the cent."""
    if state.currency == "USD" and state.payment_amount_usd and state.payment_amount_usd > 0:
        return state.payment_amount_usd.quantize(CENT, ROUND_DOWN)
    if state.payment_amount and state.payer_amount and state.payer_amount > 0:
        return (state.amount * state.payment_amount / state.payer_amount).quantize(CENT, ROUND_DOWN)
    return None


def decide_credit(state: PaymentState, config: HeleketConfig) -> tuple[Decimal | None, str | None]:
    """How much this status earns the user, and anything the operator must look at."""
    if state.status in CREDITED_ON and state.is_final:
        if state.status == "paid_over" and config.overpayment == "credit_paid_amount":
            paid = paid_in_shop_currency(state)
            return (max(paid, state.amount) if paid else state.amount), None
        return state.amount, None
    if state.status == "wrong_amount" and state.is_final:
        paid = paid_in_shop_currency(state)
        note = f"underpaid: {state.payment_amount} {state.payer_currency} of {state.payer_amount} paid"
        if config.underpayment == "credit_paid_amount" and paid and paid > 0:
            return min(paid, state.amount), note + f"; credited {paid}"
        return None, note + "; nothing credited (heleket.underpayment = hold_for_operator)"
    if state.status.startswith("refund"):
        return None, f"Heleket reports {state.status}; a credited balance is not taken back automatically"
    return None, None


class Settlement:
    """Applies payment states to invoices and tells the user about a credit."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ledger: Ledger,
        config: HeleketConfig,
        notify: Notify | None = None,
        referrals: Referrals | None = None,
    ) -> None:
        self.pool = pool
        self.ledger = ledger
        self.config = config
        self.notify = notify
        self.referrals = referrals

    async def our_invoice(self, state: PaymentState, known: asyncpg.Record | None = None) -> asyncpg.Record | Outcome:
        """The invoice `state` is about, as we stored it (`known`: already read by the caller); UNKNOWN_INVOICE or
        MISMATCH (logged) when it is not one of ours or disagrees with what we stored (another uuid, amount or
        currency)."""
        if known is not None and known["order_id"] == state.order_id:
            invoice: asyncpg.Record | None = known
        else:
            invoice = await queries.invoices.invoice_by_order_id(self.pool, state.order_id)
        if invoice is None:
            log.warning("payment status %s for unknown order_id %r", state.status, state.order_id)
            return Outcome.UNKNOWN_INVOICE
        problem = mismatch(invoice, state)
        if problem:
            log.error("invoice %s: %s; nothing applied", invoice["order_id"], problem)
            return Outcome.MISMATCH
        return invoice

    async def apply(
        self, state: PaymentState, *, source: str, payload: dict[str, Any], invoice: asyncpg.Record | None = None
    ) -> Outcome:
        """Apply one status and tell the user about a credit; safe to call any number of times with the same
        state. `invoice`: our row for `state.order_id` when the caller has read it already."""
        settled = await self.settle(state, source=source, payload=payload, invoice=invoice)
        await self.tell(settled)
        return settled.outcome

    async def settle(
        self, state: PaymentState, *, source: str, payload: dict[str, Any], invoice: asyncpg.Record | None = None
    ) -> Settled:
        """Apply one status, telling nobody yet (the caller passes the result to `tell` once every lock it holds
        is released); safe to call any number of times with the same state. `invoice`: our row for
        `state.order_id` when the caller has read it already (the decisions are made on the row locked below)."""
        invoice = await self.our_invoice(state, invoice)
        if isinstance(invoice, Outcome):
            return Settled(invoice)
        credited: Credited | None = None
        bonus: Bonus | None = None
        await self.ledger.open_accounts(invoice["user_id"], SystemAccount.HELEKET_CLEARING)
        raw = _json.encode(payload).decode()
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await queries.invoices.invoice_for_update(conn, invoice["id"])
            event = await queries.invoices.record_invoice_event(
                conn, locked["id"], state.uuid, state.status, state.is_final, source, raw
            )
            if event is None:
                return Settled(Outcome.DUPLICATE)
            amount, attention = decide_credit(state, self.config)
            if amount is not None and locked["credited_amount"] is None:
                posted = await self.ledger.credit(
                    user_id=locked["user_id"],
                    amount=amount,
                    key=f"invoice:{locked['id']}:credit",
                    type=MovementType.RECHARGE,
                    reference=f"invoice:{locked['id']}",
                    source=SystemAccount.HELEKET_CLEARING,
                    memo=f"Heleket {state.status} {state.uuid}",
                    conn=conn,
                )
                if posted.applied:
                    credited = Credited(locked["user_id"], locked["id"], amount, locked["currency"], posted.available)
            # The inviter's bonus rides on the credit's transaction: paid exactly when the top-up is credited,
            # and only on a clean one (a flagged underpayment pays none).
            if self.referrals is not None and credited is not None and attention is None:
                bonus = await self.referrals.pay(
                    conn,
                    invoice_id=credited.invoice_id,
                    invitee_id=credited.user_id,
                    amount=credited.amount,
                    currency=credited.currency,
                )
            elif self.referrals is not None and state.status.startswith("refund"):
                await self.referrals.flag_refund(conn, locked["id"], state.status)
            await queries.invoices.apply_invoice_status(
                conn,
                locked["id"],
                state.uuid,
                state.status,
                state.is_final,
                state.payer_currency,
                state.payer_amount,
                state.payment_amount,
                credited.amount if credited else None,
                attention,
                raw,
            )
        if attention:
            log.warning("invoice %s needs attention: %s", invoice["order_id"], attention)
        if credited is None:
            return Settled(Outcome.RECORDED)
        log.info(
            "invoice %s credited %s %s to user %s",
            invoice["order_id"],
            credited.amount,
            credited.currency,
            credited.user_id,
        )
        return Settled(Outcome.CREDITED, credited, bonus)

    async def tell(self, settled: Settled) -> None:
        """The notices of a settled status (the user's credit, the inviter's bonus), if any: sent after the commit,
        never raising (the money is in whatever Telegram says)."""
        if settled.credited is not None and self.notify is not None:
            credited = settled.credited
            try:
                await self.notify(credited)
            except TelegramAPIError as exc:  # blocked the bot, deleted the chat: the money is in anyway
                log.warning("could not tell user %s about their top-up: %s", credited.user_id, exc.message)
            except Exception:
                log.exception("could not tell user %s about their top-up", credited.user_id)
        if settled.bonus is not None and self.referrals is not None:
            await self.referrals.tell(settled.bonus)


def mismatch(invoice: asyncpg.Record, state: PaymentState) -> str:
    """What makes `state` not about our invoice (another uuid, amount or currency); '' if nothing."""
    if invoice["uuid"] is not None and invoice["uuid"] != state.uuid:
        return f"uuid {state.uuid} is not the invoice's {invoice['uuid']}"
    if state.amount != invoice["amount"] or state.currency != invoice["currency"]:
        return f"{state.amount} {state.currency} does not match the invoice's {invoice['amount']} {invoice['currency']}"
    return ""
