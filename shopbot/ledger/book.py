"""The Ledger: credit, debit, hold, capture and release, each one idempotent movement.

Each operation is one SQL statement (`post_movement`): the movement row, the cached user-side
balances and the postings change together or not at all. Safety under concurrency comes from
the database: the balance UPDATE takes the account's row lock, so concurrent debits of one user
queue, and the `accounts_balance_not_negative` CHECK refuses the one that would overdraw. The
idempotency key is a UNIQUE column: a repeated call (a retried webhook, a restarted worker) finds
the key taken and moves nothing. A repeated key with different legs is a caller bug and raises.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import asyncpg

from shopbot.db.queries import Database, queries
from shopbot.ledger.errors import IdempotencyConflict, InsufficientFunds, InvalidAmount, LedgerError
from shopbot.ledger.model import USER, USER_HELD, Balance, MovementType, Posted, SystemAccount, check_amount
from shopbot.ledger.postings import postings

log = logging.getLogger(__name__)
RETRIES = 3
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class Ledger:
    """The shop's books in one currency, over one pool. Pass `conn` to join a caller's transaction."""

    def __init__(self, pool: asyncpg.Pool, currency: str) -> None:
        self.pool = pool
        self.currency = currency
        self._account_ids: dict[tuple[str, int | None], int] = {}

    # --- operations ----------------------------------------------------------------------------------

    async def credit(
        self,
        *,
        user_id: int,
        amount: Decimal,
        key: str,
        type: MovementType,
        reference: str,
        source: SystemAccount,
        memo: str = "",
        conn: asyncpg.Connection | None = None,
    ) -> Posted:
        """Money into the user's balance from a system account (a top-up, a bonus, a refund)."""
        amount = check_amount(amount)
        db = conn or self.pool
        user = await self.account_id(USER, user_id, db)
        system = await self.account_id(source, None, db)
        return await self._post(db, user_id, key, type, reference, memo, {system: -amount, user: amount})

    async def debit(
        self,
        *,
        user_id: int,
        amount: Decimal,
        key: str,
        type: MovementType,
        reference: str,
        destination: SystemAccount,
        memo: str = "",
        conn: asyncpg.Connection | None = None,
    ) -> Posted:
        """Money out of the user's balance to a system account; refused if it would go negative."""
        amount = check_amount(amount)
        db = conn or self.pool
        user = await self.account_id(USER, user_id, db)
        system = await self.account_id(destination, None, db)
        return await self._post(db, user_id, key, type, reference, memo, {user: -amount, system: amount})

    async def hold(
        self,
        *,
        user_id: int,
        amount: Decimal,
        key: str,
        reference: str,
        memo: str = "",
        conn: asyncpg.Connection | None = None,
    ) -> Posted:
        """Reserve the price of an order: spendable balance to held, refused if not covered."""
        amount = check_amount(amount)
        db = conn or self.pool
        user = await self.account_id(USER, user_id, db)
        held = await self.account_id(USER_HELD, user_id, db)
        return await self._post(db, user_id, key, MovementType.PURCHASE, reference, memo, {user: -amount, held: amount})

    async def capture(
        self,
        *,
        user_id: int,
        amount: Decimal,
        key: str,
        reference: str,
        cost: Decimal = Decimal(0),
        memo: str = "",
        conn: asyncpg.Connection | None = None,
    ) -> Posted:
        """A delivered order: the held price becomes the Fragment cost and the shop's revenue."""
        amount = check_amount(amount)
        if cost < 0:
            raise InvalidAmount(f"cost {cost} is negative")
        db = conn or self.pool
        held = await self.account_id(USER_HELD, user_id, db)
        legs = {held: -amount}
        if cost:
            legs[await self.account_id(SystemAccount.FRAGMENT_COSTS, None, db)] = check_amount(cost)
        if amount != cost:
            legs[await self.account_id(SystemAccount.SHOP_REVENUE, None, db)] = amount - cost
        return await self._post(db, user_id, key, MovementType.PURCHASE, reference, memo, legs)

    async def release(
        self,
        *,
        user_id: int,
        amount: Decimal,
        key: str,
        reference: str,
        memo: str = "",
        conn: asyncpg.Connection | None = None,
    ) -> Posted:
        """An order that will not be delivered: its held price goes back to the spendable balance."""
        amount = check_amount(amount)
        db = conn or self.pool
        user = await self.account_id(USER, user_id, db)
        held = await self.account_id(USER_HELD, user_id, db)
        return await self._post(db, user_id, key, MovementType.REFUND, reference, memo, {held: -amount, user: amount})

    async def balance(self, user_id: int, conn: asyncpg.Connection | None = None) -> Balance:
        """The user's balance as the database has it now (never from a cache)."""
        db = conn or self.pool
        available, held = await self.account_id(USER, user_id, db), await self.account_id(USER_HELD, user_id, db)
        row = await queries.ledger.user_balance(db, available, held)  # one round trip once the ids are known
        return Balance(row["available"], row["held"])

    # --- mechanics -----------------------------------------------------------------------------------

    async def account_id(self, kind: str, user_id: int | None, db: Database | None = None) -> int:
        """The account's id, created on first use; ids never change, so committed ones are remembered.

        Inside a caller's transaction the account is created (if need be) in that transaction and
        not remembered, since the transaction may still roll back; the pool is not used there, as
        a second connection per caller can exhaust the pool. Call `open_accounts` beforehand to
        make the in-transaction path a cache hit.
        """
        cache_key = (str(kind), user_id)
        account = self._account_ids.get(cache_key)
        if account is not None:
            return account
        in_transaction = isinstance(db, asyncpg.Connection) and db.is_in_transaction()
        target = db if in_transaction and db is not None else self.pool
        for _ in range(3):
            # None when another session created it concurrently: the statement's snapshot predates
            # that commit, so the next statement (a fresh snapshot) sees it.
            created: int | None = await postings.ensure_account(target, str(kind), user_id, self.currency)
            account = created
            if account is not None:
                break
        if account is None:
            raise LedgerError(f"could not create the {kind} account of user {user_id}")
        if not in_transaction:
            self._account_ids[cache_key] = account
        return account

    async def open_accounts(self, user_id: int, *system: SystemAccount) -> None:
        """Create (and remember) a user's accounts and the named system accounts, outside any transaction."""
        for kind, owner in ((USER, user_id), (USER_HELD, user_id), *((s, None) for s in system)):
            await self.account_id(kind, owner)

    async def _post(
        self,
        db: Database,
        user_id: int,
        key: str,
        type: MovementType,
        reference: str,
        memo: str,
        legs: dict[int, Decimal],
    ) -> Posted:
        accounts = sorted(legs)  # one lock order for every movement keeps deadlocks rare
        amounts = [legs[account] for account in accounts]
        in_transaction = isinstance(db, asyncpg.Connection) and db.is_in_transaction()
        for attempt in range(1, RETRIES + 1):
            try:
                row = await postings.post_movement(db, key, str(type), reference, memo, accounts, amounts)
            except asyncpg.CheckViolationError as exc:
                if exc.constraint_name == "accounts_balance_not_negative":
                    raise InsufficientFunds(user_id, -min(amounts)) from None
                raise
            except _RETRYABLE:
                # Safe to repeat: the key makes a second application impossible. Inside a caller's
                # transaction the whole transaction is lost, so the caller decides.
                if in_transaction or attempt == RETRIES:
                    raise
                log.warning("movement %s hit a deadlock; retrying (%d)", key, attempt)
                continue
            if row is not None:
                balances = dict(zip(row["balance_accounts"], row["balances"], strict=True))
                return Posted(
                    row["id"],
                    True,
                    available=balances.get(self._account_ids.get((USER, user_id))),
                    held=balances.get(self._account_ids.get((USER_HELD, user_id))),
                )
            existing = await postings.movement_by_key(db, key)
            if existing is not None:
                same = (
                    existing["type"] == str(type)
                    and existing["reference"] == reference
                    and list(existing["accounts"]) == accounts
                    and list(existing["amounts"]) == amounts
                )
                if not same:
                    raise IdempotencyConflict(key)
                return Posted(existing["id"], False)
            # The key's first poster rolled back between our two statements: post again.
        raise IdempotencyConflict(key)
