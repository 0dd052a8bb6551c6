"""The shop's settings that change at runtime (maintenance mode, prices), kept in `shop_settings`.

The shop holds them in memory: `watch` reads them again every `ttl` seconds, so every instance sees a change
at most `ttl` seconds late (a change on this instance applies at once) and nothing that reads them, such as
the maintenance gate on every update, waits for the database. A change and its audit entry
commit together.

Prices have two writers: an admin, and in `[pricing] mode = "auto"` the repricer (audited with the actor
`pricing` and no admin). Writers of prices take turns on one advisory lock and each compares with what is
stored inside it, so a write that changes nothing leaves no audit entry, whichever instance makes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio
import asyncpg
import msgspec
from anyio.abc import TaskStatus

from shopbot.config.schema import ShopConfig
from shopbot.db.audit import record_audit
from shopbot.db.pool import DatabaseBusyError
from shopbot.db.queries import queries
from shopbot.fulfilment.products import PriceList
from shopbot.lifecycle import Lifecycle

log = logging.getLogger(__name__)
MAINTENANCE = "maintenance"
PRICES = "prices"
_encoder = msgspec.json.Encoder(decimal_format="string")


@dataclass(frozen=True, slots=True)
class Maintenance:
    on: bool = False
    message: str = ""  # shown to users instead of the bot; empty: the standard text in their language


@dataclass(frozen=True, slots=True)
class Reprice:
    """One change the repricer made: when, the prices before and after, and what it priced from."""

    at: datetime
    before: PriceList
    after: PriceList
    reason: str = ""


def prices_to_json(prices: PriceList) -> dict[str, Any]:
    return {"star_price": str(prices.star_price), "premium": {k: str(v) for k, v in sorted(prices.premium.items())}}


def prices_from_json(value: Any, fallback: PriceList) -> PriceList:
    """The stored prices; anything missing or unreadable keeps the configured price."""
    if not isinstance(value, dict):
        return fallback
    try:
        star = Decimal(str(value.get("star_price", fallback.star_price)))
        premium = dict(fallback.premium)
        premium.update({str(k): Decimal(str(v)) for k, v in (value.get("premium") or {}).items() if str(k) in premium})
    except (InvalidOperation, AttributeError):
        return fallback
    return PriceList(star, premium)


class ShopSettings:
    """Maintenance mode and prices as the shop uses them now; `on_prices` hears every price change."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        shop: ShopConfig,
        *,
        ttl: float = 3.0,
        on_prices: Callable[[PriceList], None] | None = None,
    ) -> None:
        self.pool = pool
        self.shop = shop
        self.ttl = ttl
        self.on_prices = on_prices
        self.configured_prices = PriceList.from_config(shop)
        self.maintenance = Maintenance()
        self.prices = self.configured_prices

    async def watch(self, lifecycle: Lifecycle, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The service that keeps the settings at most `ttl` seconds old until the shop stops."""
        task_status.started()
        while not await lifecycle.sleep(self.ttl):
            try:
                await self.refresh()
            except (asyncpg.PostgresError, OSError, DatabaseBusyError) as exc:  # the last known settings stay
                log.warning("shop settings could not be read: %s", exc)

    async def refresh(self) -> None:
        """Read the settings again (at boot, after a change here, and every `ttl` seconds from `watch`)."""
        stored = {row["name"]: _decoded(row["value"]) for row in await queries.admin.all_settings(self.pool)}
        self._apply(stored)

    def _apply(self, stored: dict[str, Any]) -> None:
        raw = stored.get(MAINTENANCE)
        if isinstance(raw, dict):
            self.maintenance = Maintenance(bool(raw.get("on")), str(raw.get("message") or ""))
        else:
            self.maintenance = Maintenance()
        prices = prices_from_json(stored.get(PRICES), self.configured_prices)
        if prices != self.prices:
            self.prices = prices
            if self.on_prices is not None:
                self.on_prices(prices)

    async def set_maintenance(self, value: Maintenance, *, admin_id: int) -> Maintenance:
        """Switch maintenance mode (audited); the state before."""
        await self.refresh()
        before = self.maintenance
        after = {"on": value.on, "message": value.message}
        action = "maintenance.message" if value.on == before.on else f"maintenance.{'on' if value.on else 'off'}"
        await self._put(MAINTENANCE, after, admin_id, action, {"on": before.on, "message": before.message})
        return before

    async def set_prices(self, value: PriceList, *, admin_id: int) -> PriceList:
        """Change the prices (audited); the prices before."""
        await self.refresh()
        before = self.prices
        await self._put(PRICES, prices_to_json(value), admin_id, "prices.set", prices_to_json(before))
        return before

    async def reprice(self, change: Callable[[PriceList], PriceList], *, reason: str = "") -> Reprice | None:
        """The repricer's write: `change` applied to the stored prices, stored and audited with the actor
        `pricing` in one transaction; None, and no audit entry, when the prices stay as they are."""
        async with self.pool.acquire() as conn, conn.transaction():
            await queries.pricing.lock_prices(conn)
            before = prices_from_json(_decoded(await queries.admin.get_setting(conn, PRICES)), self.configured_prices)
            after = change(before)
            if after == before:
                return None
            await queries.admin.put_setting(conn, PRICES, _encoder.encode(prices_to_json(after)).decode(), None)
            at = await queries.pricing.record_reprice(
                conn,
                _encoder.encode(prices_to_json(before)).decode(),
                _encoder.encode(prices_to_json(after)).decode(),
                reason,
            )
        await self.refresh()
        return Reprice(at, before, after, reason)

    async def last_reprice(self) -> Reprice | None:
        """What the repricer changed last (for the admin's Prices screen); None when it never changed a price."""
        row = await queries.pricing.last_reprice(self.pool)
        if row is None:
            return None
        return Reprice(
            row["created_at"],
            prices_from_json(_decoded(row["before"]), self.configured_prices),
            prices_from_json(_decoded(row["after"]), self.configured_prices),
            row["reason"],
        )

    async def _put(self, name: str, value: dict[str, Any], admin_id: int, action: str, before: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if name == PRICES:  # in turn with the repricer
                await queries.pricing.lock_prices(conn)
            await queries.admin.put_setting(conn, name, _encoder.encode(value).decode(), admin_id)
            await record_audit(conn, admin_id=admin_id, action=action, target=name, before=before, after=value)
        await self.refresh()


def _decoded(value: Any) -> Any:
    """A JSONB value as asyncpg hands it over (text unless a codec is set) as Python data."""
    return msgspec.json.decode(value) if isinstance(value, str) else value
