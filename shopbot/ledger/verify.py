"""`shopbot ledger verify`: prove the books, or name exactly what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from shopbot.db.queries import queries


@dataclass
class LedgerReport:
    movements: int
    postings: int
    accounts: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_ledger(db: asyncpg.Pool | asyncpg.Connection) -> LedgerReport:
    """Every movement sums to zero in one currency; every cached balance equals its postings."""
    totals = await queries.ledger.ledger_totals(db)
    report = LedgerReport(totals["movements"], totals["postings"], totals["accounts"])
    for row in await queries.ledger.unbalanced_movements(db):
        report.problems.append(
            f"movement {row['id']} ({row['idempotency_key']}) sums to {row['total']} "
            f"over {row['currencies']} currencies"
        )
    for row in await queries.ledger.drifted_balances(db):
        owner = f"user {row['user_id']} " if row["user_id"] is not None else ""
        report.problems.append(
            f"account {row['id']} ({owner}{row['kind']}, {row['currency']}) caches {row['cached']} "
            f"but its postings sum to {row['summed']}"
        )
    return report
