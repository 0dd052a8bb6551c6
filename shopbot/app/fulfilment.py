"""Putting fulfilment together from the configuration: the client, the worker, the wallet watch."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from aiogram import Bot

from shopbot.bot.notices import OrderNotices, admin_alert
from shopbot.config.schema import Config
from shopbot.config.secret import Secret
from shopbot.errors import ShopbotError
from shopbot.fulfilment.costs import TonRates
from shopbot.fulfilment.fragment import FragmentClient
from shopbot.fulfilment.orders import Orders
from shopbot.fulfilment.products import Shopfront
from shopbot.fulfilment.recipients import RecipientLookups
from shopbot.fulfilment.wallet import WalletWatch
from shopbot.fulfilment.worker import OrderWorker
from shopbot.guard.circuit import CircuitBreaker
from shopbot.ledger import Ledger
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts
from shopbot.logs import add_secrets
from shopbot.metrics import Metrics
from shopbot.payments.heleket import HeleketClient

if TYPE_CHECKING:  # the refresher and its browser load only in KYC mode (open_cookie_refresher)
    from shopbot.fulfilment.refresher import CookieRefresher

log = logging.getLogger(__name__)


@dataclass
class Fulfilment:
    """Everything that sells: present even when selling is off (then without client and worker)."""

    orders: Orders
    shopfront: Shopfront
    breaker: CircuitBreaker
    # TON's rate in the shop currency: the one the cost guard, the booked cost and the prices all use.
    rates: TonRates
    client: FragmentClient | None
    worker: OrderWorker | None
    wallet: WalletWatch | None
    lookups: RecipientLookups | None = None  # recipient lookups, with clients of their own

    def use_cookies(self, cookies: Secret) -> None:
        """Fresh Fragment cookies for every client: the payer's and each lookup client. They are secrets from
        now on: the header and each cookie's value are blanked in every log line."""
        header = cookies.reveal()
        add_secrets([header, *(part.partition("=")[2].strip() for part in header.split(";"))])
        if self.client is not None:
            self.client.use_cookies(cookies)
        if self.lookups is not None:
            self.lookups.use_cookies(cookies)


def assemble_fulfilment(
    config: Config,
    pool: asyncpg.Pool,
    ledger: Ledger,
    bot: Bot,
    texts: Texts,
    heleket: HeleketClient | None,
    lifecycle: Lifecycle,
    metrics: Metrics,
    breaker: CircuitBreaker | None = None,
) -> Fulfilment:
    """The selling side; `breaker` is the Fragment service's circuit (an in-process one if not given)."""
    orders = Orders(pool, ledger)
    breaker = breaker or CircuitBreaker("fragment", config.circuit_breaker)
    fragment = config.fragment
    client: FragmentClient | None = None
    lookups: RecipientLookups | None = None
    if fragment.seed_phrase and fragment.max_ton_per_order > 0:
        client = FragmentClient(fragment)
        lookups = RecipientLookups(fragment)
    else:
        log.warning("Fragment is not configured ([fragment] seed_phrase, max_ton_per_order): selling is off")
    shopfront = Shopfront(config.shop, lookups, orders, ledger)
    rates = TonRates(heleket, config.shop.currency, max_age=config.pricing.max_rate_age)
    if client is None:
        return Fulfilment(orders, shopfront, breaker, rates, None, None, None)
    worker = OrderWorker(
        pool,
        orders,
        client,
        breaker,
        lifecycle,
        metrics,
        OrderNotices(bot, texts, pool),
        rates=rates,
        pricing=config.pricing,
        alert=admin_alert(bot, config.telegram.admin_ids),
    )
    wallet = WalletWatch(
        client,
        lifecycle,
        metrics,
        admin_alert(bot, config.telegram.admin_ids),
        low=fragment.low_balance_ton,
        interval=fragment.wallet_check_seconds,
    )
    return Fulfilment(orders, shopfront, breaker, rates, client, worker, wallet, lookups)


async def open_cookie_refresher(
    config: Config, pool: asyncpg.Pool, fulfilment: Fulfilment, bot: Bot, lifecycle: Lifecycle, metrics: Metrics
) -> CookieRefresher | None:
    """KYC mode: the client uses the newest stored cookies, and the refresher keeps them alive."""
    if fulfilment.client is None or not config.fragment.kyc:
        return None
    from shopbot.fulfilment.cookies import CookieFormatError, CookieStore
    from shopbot.fulfilment.refresher import CookieRefresher

    store = CookieStore(pool)
    if config.fragment.cookies:
        try:
            await store.adopt_config(config.fragment.cookies)
        except CookieFormatError as exc:
            raise ShopbotError(f"fragment.cookies: {exc}") from None
    in_use = await store.current()
    if in_use is not None:
        fulfilment.use_cookies(in_use)
    else:
        log.warning("no Fragment cookies yet: run `shopbot fragment login` or `shopbot fragment import-cookies`")
    return CookieRefresher(
        store,
        config.fragment,
        lifecycle,
        alert=admin_alert(bot, config.telegram.admin_ids),
        on_refreshed=fulfilment.use_cookies,
        in_use=in_use,
        metrics=metrics,
    )
