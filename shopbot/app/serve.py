"""The shop as one process: resources opened in order, services started under supervision.

Order of start-up: database server → pool → migrations → Redis → bot client → Heleket client → web
server → metrics listener → settings watch → Telegram (poller or webhook) → webhook settler → payment reconciler → order
worker and wallet watch → cookie refresher → repricer → broadcasts (each service only when configured).
The shop is ready only when every service said it started. A stop reverses it:
readiness goes false, services drain on their own (hypercorn through its shutdown trigger, the
poller by fetching no more), anything still running at the grace deadline is cancelled, and the
resources close shielded so a cancelled shop still releases them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import anyio
import asyncpg
from aiogram import Bot
from anyio import CancelScope
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from starlette.middleware import Middleware

from shopbot.app.fulfilment import Fulfilment, assemble_fulfilment, open_cookie_refresher
from shopbot.app.gauges import shop_stats
from shopbot.app.memory import give_back_start_up_memory
from shopbot.app.supervisor import ServiceFn, Supervisor
from shopbot.bot.dispatcher import BotServices, BroadcastSender, admin_services, build_dispatcher
from shopbot.bot.limits import BotLimits
from shopbot.bot.notices import OrderNotices, admin_alert, topup_notifier
from shopbot.bot.poller import Poller
from shopbot.bot.routers.referral import bonus_notifier
from shopbot.bot.session import open_bot
from shopbot.bot.storage import FailoverStorage
from shopbot.bot.telegram_circuit import unguarded_check
from shopbot.bot.updates import UpdateHandler
from shopbot.bot.webhook import WebhookReceiver
from shopbot.cache import Cache
from shopbot.config.schema import Config
from shopbot.db.migrate import apply_migrations
from shopbot.db.pool import database_answers, open_pool
from shopbot.db.queries import queries
from shopbot.db.server import open_database_server
from shopbot.fulfilment.repricer import Repricer
from shopbot.fulfilment.settings import ShopSettings
from shopbot.guard.circuit import CircuitBreaker, open_circuits
from shopbot.guard.limiter import RateLimiter
from shopbot.guard.redis_link import RedisLink
from shopbot.ledger import Ledger
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts
from shopbot.metrics import Metrics
from shopbot.payments.heleket import HeleketClient
from shopbot.payments.lookup import PaymentLookup
from shopbot.payments.reconciler import Reconciler
from shopbot.payments.referrals import Referrals
from shopbot.payments.settle import Settlement
from shopbot.payments.settler import Settler
from shopbot.payments.topup import TopUps
from shopbot.redis_client import open_redis
from shopbot.web.api import api_routes
from shopbot.web.app import build_metrics_app, build_web_app
from shopbot.web.asgi import serve_asgi
from shopbot.web.client_ip import parse_networks
from shopbot.web.health import HealthChecks
from shopbot.web.heleket_webhook import heleket_webhook_route
from shopbot.web.webhook_guard import WebhookGuard

log = logging.getLogger(__name__)
TELEGRAM_CHECK_CACHE_SECONDS = 15.0


@dataclass
class RunningShop:
    """What a started shop tells its caller (the CLI, a test): where it listens and its parts."""

    config: Config
    lifecycle: Lifecycle
    metrics: Metrics
    pool: asyncpg.Pool
    bot: Bot
    supervisor: Supervisor
    web_port: int
    ledger: Ledger
    topups: TopUps
    reconciler: Reconciler | None
    fulfilment: Fulfilment
    link: RedisLink
    repricer: Repricer | None = None  # [pricing] mode = "auto" only
    metrics_port: int = 0  # Prometheus's private listener ([metrics] port; the bound one when that is 0)


@contextlib.asynccontextmanager
async def open_heleket(config: Config, breaker: CircuitBreaker | None = None) -> AsyncIterator[HeleketClient | None]:
    """The Heleket client when a merchant and key are configured, else None (top-ups are off); its calls
    go through `breaker`, Heleket's circuit, when one is given."""
    heleket = config.heleket
    if not (heleket.merchant_uuid and heleket.api_key):
        log.warning("Heleket is not configured ([heleket] merchant_uuid, api_key): top-ups are off")
        yield None
        return
    async with HeleketClient(
        base_url=heleket.base_url,
        merchant_uuid=heleket.merchant_uuid,
        api_key=heleket.api_key.reveal(),
        breaker=breaker,
    ) as client:
        yield client


def telegram_webhook_url(config: Config) -> str:
    """Where Telegram posts updates: `telegram.webhook_url`, else `<web.public_url>/webhook/telegram`."""
    return config.telegram.webhook_url or config.web.public_url.rstrip("/") + "/webhook/telegram"


def telegram_check(bot: Bot) -> Callable[[], Awaitable[object]]:
    """getMe, remembered for a few seconds so a busy health probe does not hammer Telegram."""
    last_ok = 0.0

    async def check() -> object:
        nonlocal last_ok
        if time.monotonic() - last_ok < TELEGRAM_CHECK_CACHE_SECONDS:
            return True
        await bot.get_me()
        last_ok = time.monotonic()
        return True

    return check


def build_health(
    lifecycle: Lifecycle,
    pool: asyncpg.Pool,
    bot: Bot,
    redis: Redis | None,
    fulfilment: Fulfilment,
    circuits: dict[str, CircuitBreaker],
) -> HealthChecks:
    """What /health/detailed asks and reports. Telegram's getMe bypasses its circuit: the check says
    whether Telegram answers now, and an open circuit alone never makes the shop unready."""
    health = HealthChecks(lifecycle)
    health.checks["database"] = partial(queries.health.ping, pool)
    health.checks["telegram"] = unguarded_check(telegram_check(bot))
    if redis is not None:
        health.checks["redis"] = redis.ping
    for name, breaker in circuits.items():
        health.circuits[name] = breaker.state
    # No money figures here (the wallet's balance, what users are owed): /health/detailed is on the public
    # port, so they are only in /metrics, on its private listener.
    return health


async def run_shop(
    config: Config, lifecycle: Lifecycle, *, task_status: TaskStatus[RunningShop] = anyio.TASK_STATUS_IGNORED
) -> int:
    """Run the shop until `lifecycle` is stopped; return the process exit code."""
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(open_database_server(config.database))
        pool = await stack.enter_async_context(open_pool(dsn, config.database))
        await apply_migrations(pool)
        redis = await stack.enter_async_context(open_redis(config.redis))
        link = RedisLink(redis, metrics, retry_seconds=config.redis.retry_seconds)
        circuits = open_circuits(config.circuit_breaker, link)
        cache = Cache(link, config.cache, metrics)
        limiter = RateLimiter(link, ttl=config.cache.rate_limit_ttl)
        limits = BotLimits(limiter, config.rate_limit, config.telegram.admin_ids, metrics)
        bot = await stack.enter_async_context(open_bot(config.telegram, circuits["telegram"]))
        heleket = await stack.enter_async_context(open_heleket(config, circuits["heleket"]))
        ledger = Ledger(pool, config.shop.currency)
        texts = Texts()
        referrals = Referrals(ledger, config.referral, notify=bonus_notifier(bot, texts, pool, ledger))
        settlement = Settlement(
            pool, ledger, config.heleket, notify=topup_notifier(bot, texts, pool), referrals=referrals
        )
        # One lookup for the webhook, "Check payment" and the reconciler: they share what Heleket said.
        lookup = PaymentLookup(heleket, cache) if heleket is not None else None
        topups = TopUps(pool, heleket, config, settlement, cache, lookup=lookup)
        reconciler = None
        settler = None
        if heleket is not None:
            # Heleket's webhooks are stored by the endpoint and settled by the settler, after the answer.
            settler = Settler(pool, dsn, settlement, lookup, lifecycle, metrics)
            reconciler = Reconciler(
                pool,
                heleket,
                settlement,
                lifecycle,
                metrics,
                poll_seconds=config.heleket.poll_seconds,
                cache=cache,
                lookup=lookup,
            )

        fulfilment = assemble_fulfilment(
            config, pool, ledger, bot, texts, heleket, lifecycle, metrics, circuits["fragment"]
        )
        refresher = await open_cookie_refresher(config, pool, fulfilment, bot, lifecycle, metrics)

        storage = FailoverStorage(link, config.cache.session_ttl, max_entries=config.cache.max_entries)
        # Stored prices and maintenance mode apply from the start, whether or not the admin area is wired in.
        settings = ShopSettings(pool, config.shop, on_prices=fulfilment.shopfront.use_prices)
        await settings.refresh()
        admin = admin_services(
            config,
            pool,
            settings,
            fulfilment.rates,
            fulfilment.shopfront,
            OrderNotices(bot, texts, pool),
            circuits,
            client=fulfilment.client,
            wallet=fulfilment.wallet,
        )
        repricer = None
        if config.pricing.mode == "auto":  # stores its prices where an admin's go, so the shopfront hears them
            repricer = Repricer(
                pool, config.pricing, settings, fulfilment.rates, lifecycle, currency=config.shop.currency
            )
        dispatcher = build_dispatcher(
            BotServices(
                config,
                pool,
                metrics,
                texts,
                ledger,
                topups,
                fulfilment.shopfront,
                fulfilment.orders,
                limits,
                cache=cache,
                admin=admin,
            ),
            storage,
        )
        updates = UpdateHandler(bot, dispatcher, metrics)
        receiver: WebhookReceiver | None = None
        if config.telegram.mode == "webhook":
            receiver = WebhookReceiver(
                updates,
                lifecycle,
                texts,
                url=telegram_webhook_url(config),
                secret=config.telegram.webhook_secret,
                max_concurrent=config.telegram.max_concurrent_updates,
                circuit=circuits["telegram"],
            )
            telegram_service: ServiceFn = receiver.run
        else:
            telegram_service = Poller(
                updates,
                lifecycle,
                texts,
                poll_timeout=config.telegram.poll_timeout,
                max_concurrent=config.telegram.max_concurrent_updates,
            ).run

        metrics.refreshers.append(shop_stats(pool, metrics, list(circuits.values())))
        metrics.refreshers.append(admin.margins.gauge(metrics))
        answering = settler.answering if settler is not None else None  # webhooks first, then the settler
        routes = [heleket_webhook_route(config, pool, metrics, answering), *api_routes(config, pool, ledger)]
        if receiver is not None:
            routes.append(receiver.route())
        guard = Middleware(
            WebhookGuard,
            limiter=limiter,
            per_minute=config.rate_limit.webhook_per_minute,
            burst=config.rate_limit.burst,
            trusted_proxies=parse_networks(config.web.trusted_proxies),
            metrics=metrics,
        )
        health = build_health(lifecycle, pool, bot, redis, fulfilment, circuits)
        web = build_web_app(health, metrics, routes, [guard])

        async with anyio.create_task_group() as group:
            # Only the web server, Telegram, the settler, the reconciler and the order worker are needed to take money
            # and deliver; the rest is optional: if it cannot start or keeps crashing it is turned off and reported.
            supervisor = Supervisor(
                config.supervisor,
                lifecycle,
                metrics,
                group,
                alert=admin_alert(bot, config.telegram.admin_ids),
                database_up=partial(database_answers, pool),
            )
            health.services = supervisor.report
            web_port = await supervisor.start(
                "web",
                partial(
                    serve_asgi,
                    web,
                    host=config.web.host,
                    port=config.web.port,
                    shutdown_trigger=lifecycle.wait_stopping,
                    graceful_seconds=config.shutdown.grace_seconds,
                    tls_cert=config.web.tls_cert,
                    tls_key=config.web.tls_key,
                ),
            )
            metrics_port = (
                await supervisor.start(
                    "metrics",
                    partial(
                        serve_asgi,
                        build_metrics_app(metrics),
                        host=config.metrics.host,
                        port=config.metrics.port,
                        shutdown_trigger=lifecycle.wait_stopping,
                        graceful_seconds=config.shutdown.grace_seconds,
                    ),
                    optional=True,
                )
                or 0
            )  # a taken metrics port is reported; the shop still sells
            await supervisor.start("settings", partial(settings.watch, lifecycle))
            await supervisor.start("telegram", telegram_service)
            if settler is not None:
                await supervisor.start("settler", settler.run)
            if reconciler is not None:
                await supervisor.start("reconciler", reconciler.run)
            if fulfilment.worker is not None and fulfilment.wallet is not None:
                await supervisor.start("orders", fulfilment.worker.run)
                await supervisor.start("wallet", fulfilment.wallet.run, optional=True)
            if refresher is not None:
                await supervisor.start("cookies", refresher.run, optional=True)
            if repricer is not None:
                await supervisor.start("pricing", repricer.run, optional=True)
            await supervisor.start(
                "broadcast", BroadcastSender(pool, bot, texts, config.broadcast, lifecycle, metrics).run, optional=True
            )
            lifecycle.ready = True
            metrics.ready.set(1)
            give_back_start_up_memory()
            log.info("shop ready: web on http://%s:%d", config.web.host, web_port)
            log.info("metrics on http://%s:%d/metrics", config.metrics.host, metrics_port)
            task_status.started(
                RunningShop(
                    config,
                    lifecycle,
                    metrics,
                    pool,
                    bot,
                    supervisor,
                    web_port,
                    ledger,
                    topups,
                    reconciler,
                    fulfilment,
                    link,
                    repricer,
                    metrics_port,
                )
            )
            await lifecycle.stopping.wait()
            metrics.ready.set(0)
            # Services drain on their own; whatever still runs at the grace deadline is cancelled.
            group.cancel_scope.deadline = anyio.current_time() + config.shutdown.grace_seconds
        if group.cancel_scope.cancelled_caught:
            log.warning("grace period of %g s ran out; cancelled what was left", config.shutdown.grace_seconds)
    log.info("stopped (%s)", lifecycle.reason or "done")
    return lifecycle.exit_code


async def watch_signals(lifecycle: Lifecycle, scope: CancelScope) -> None:
    """First SIGTERM/SIGINT: graceful stop. Second: stop at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not lifecycle.stopping.is_set():
                lifecycle.request_stop(f"received {name}")
            else:
                log.warning("received %s again: stopping now", name)
                lifecycle.exit_code = 1
                scope.cancel()
                return


async def serve(config: Config) -> int:
    """`shopbot serve`: the shop with anyio owning the signals; returns the exit code."""
    lifecycle = Lifecycle()
    async with anyio.create_task_group() as outer:
        outer.start_soon(watch_signals, lifecycle, outer.cancel_scope, name="signals")
        await run_shop(config, lifecycle)
        outer.cancel_scope.cancel()
    return lifecycle.exit_code
