"""What every scenario shares: names, PostgreSQL and fresh databases, and the shape of a result."""

from __future__ import annotations

import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg

from shopbot.db.migrate import apply_migrations
from shopbot.db.server import with_database
from shopbot.ledger.verify import verify_ledger

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench"  # configs, logs and the embedded servers of bench runs
PYTHON = sys.executable
TOKEN = "7000000001:AAH-bench-token-for-the-emulator"
MERCHANT = "c26b80a8-9549-4a0c-9a4b-4b6a8a2b7c11"
HELEKET_KEY = "BENCH_PAYMENT_KEY_for_the_emulator_0001"
HUGE = 10_000_000  # rate limits the bench sets out of the way: it measures the shop, not the limiter


class BenchFailure(Exception):
    """A scenario could not run, or its answer was wrong: either way, not a result."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise BenchFailure(message)


# --- results --------------------------------------------------------------------------------------------

RatioKind = Literal["share", "multiple"]


@dataclass
class Measure:
    """One number, with the ceiling (or floor) it is compared to in this run.

    kind "share": more is better and the ratio is value / ceiling (1.0 = as good as the ceiling).
    kind "multiple": less is better (latency, memory) and the ratio is value / floor (1.0 = as good)."""

    name: str
    value: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    kind: RatioKind = "share"
    target: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.value / self.reference

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if self.ratio is None else round(self.ratio, 4)}


@dataclass
class ScenarioResult:
    name: str
    ok: bool = False
    seconds: float = 0.0
    measures: list[Measure] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # correctness checks that passed
    notes: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "measures": [m.as_dict() for m in self.measures],
            "checks": self.checks,
            "notes": self.notes,
        }


async def check_books(conn: asyncpg.Connection) -> None:
    """`shopbot ledger verify`: every movement balances and every cached balance equals its postings."""
    report = await verify_ledger(conn)
    if not report.ok:
        raise BenchFailure("ledger verify failed:\n" + "\n".join(report.problems[:20]))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


# --- PostgreSQL -----------------------------------------------------------------------------------------


class Postgres:
    """The server the scenarios use: a configured one (maintenance DSN) or an embedded one of our own."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._embedded: Any = None
        self.admin_dsn = ""

    def start(self) -> str:
        if self.url:
            self.admin_dsn = self.url
        else:
            from shopbot.db.embedded import EmbeddedPostgres

            # Durable like production (fsync on): the bench measures what an operator would run.
            self._embedded = EmbeddedPostgres(WORK / "postgres")
            self.admin_dsn = self._embedded.start()
        return self.admin_dsn

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    @property
    def description(self) -> str:
        return "configured server" if self.url else f"embedded under {WORK.relative_to(ROOT) / 'postgres'}"

    async def version(self) -> str:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    async def fresh_database(self, label: str, *, migrate: bool = True) -> str:
        """DSN of a new database (migrated, unless told otherwise)."""
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        dsn = with_database(self.admin_dsn, name)
        if migrate:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                await apply_migrations(pool)
            finally:
                await pool.close()
        return dsn

    async def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1].split("?", 1)[0]
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
