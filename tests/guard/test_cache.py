"""The cache as the shop relies on it: shared through Redis, in-process without it, bounded, expiring,
forgotten on write, and still answering (without serving what was invalidated) when Redis comes and goes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import anyio
import msgspec
import redis.asyncio as redis
from aiogram.types import Update as AiogramUpdate

from shopbot.bot.dispatcher import BotServices, build_dispatcher
from shopbot.bot.storage import FailoverStorage
from shopbot.cache import Cache
from shopbot.config.schema import CacheConfig, RedisConfig
from shopbot.config.secret import Secret
from shopbot.guard.redis_link import RedisLink
from shopbot.locales import Texts
from shopbot.metrics import Metrics
from tests.bot.test_bot_account import Customer
from tests.redis_outage import redis_outage
from tests.shop_harness import ShopUnderTest, running_shop

TEXTS = Texts()


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    language: str
    seen: datetime
    limit: Decimal


class Other(msgspec.Struct, frozen=True, kw_only=True):
    name: str


ANN = Profile(id=1, language="en", seen=datetime(2026, 11, 30, 3, 0, tzinfo=UTC), limit=Decimal("12.34"))


def counted(metrics: Metrics, name: str, kind: str) -> float:
    return metrics.registry.get_sample_value(f"shopbot_cache_{name}_total", {"kind": kind}) or 0.0


async def test_values_come_back_typed_until_forgotten_and_each_read_is_counted(link: RedisLink) -> None:
    metrics = Metrics()
    cache = Cache(link, CacheConfig(), metrics)
    assert await cache.get("user", 1, Profile) is None
    await cache.put("user", 1, ANN)
    assert await cache.get("user", 1, Profile) == ANN  # datetime and Decimal exact, not strings
    assert await cache.get("payment", 1, Profile) is None  # kinds do not share keys
    assert await cache.get("user", 1, Other) is None  # written as another shape: a miss, not an error
    await cache.forget("user", 1)
    assert await cache.get("user", 1, Profile) is None
    assert (counted(metrics, "hits", "user"), counted(metrics, "misses", "user")) == (1, 3)
    assert counted(metrics, "misses", "payment") == 1


async def test_entries_expire_after_their_kinds_ttl(link: RedisLink) -> None:
    cache = Cache(link, CacheConfig(user_ttl=1, payment_ttl=30))
    await cache.put("user", 1, ANN)
    await cache.put("payment", "topup-1", ANN)
    assert await cache.get("user", 1, Profile) == ANN
    await anyio.sleep(1.2)
    assert await cache.get("user", 1, Profile) is None
    assert await cache.get("payment", "topup-1", Profile) == ANN


async def test_the_in_process_cache_keeps_the_most_recently_used_entries_within_its_bound() -> None:
    cache = Cache(RedisLink(None), CacheConfig(), max_entries=3)
    for user in (1, 2, 3):
        await cache.put("user", user, msgspec.structs.replace(ANN, id=user))
    assert await cache.get("user", 1, Profile) is not None  # 1 is now the most recently used
    await cache.put("user", 4, msgspec.structs.replace(ANN, id=4))
    assert len(cache.local) == 3
    assert await cache.get("user", 2, Profile) is None  # the least recently used made room
    assert [await cache.get("user", user, Profile) is not None for user in (1, 3, 4)] == [True, True, True]


async def test_instances_sharing_redis_see_each_others_writes_and_invalidations(redis_url: str) -> None:
    async with redis.Redis.from_url(redis_url) as one, redis.Redis.from_url(redis_url) as two:
        first, second = Cache(RedisLink(one), CacheConfig()), Cache(RedisLink(two), CacheConfig())
        await first.put("user", 1, ANN)
        assert await second.get("user", 1, Profile) == ANN
        assert await two.ttl("shopbot:cache:user:1") > 1700  # `[cache] user_ttl`, kept by Redis
        await second.forget("user", 1)
        assert await first.get("user", 1, Profile) is None


async def test_an_invalidation_during_a_redis_outage_is_not_undone_when_redis_returns(redis_url: str) -> None:
    metrics = Metrics()
    async with (
        redis_outage(redis_url) as outage,
        redis.Redis.from_url(outage.url) as through_proxy,
        redis.Redis.from_url(redis_url) as direct,
    ):
        now = [1000.0]
        cache = Cache(
            RedisLink(through_proxy, metrics, retry_seconds=0.2), CacheConfig(), metrics, clock=lambda: now[0]
        )
        other_instance = Cache(RedisLink(direct), CacheConfig())
        await cache.put("user", 1, ANN)
        await cache.put("user", 2, msgspec.structs.replace(ANN, id=2))

        outage.cut()
        assert await cache.get("user", 1, Profile) is None  # Redis is away: a miss, not an error
        await cache.forget("user", 1)  # user 1 changed their language meanwhile
        await cache.put("user", 3, msgspec.structs.replace(ANN, id=3))
        assert await cache.get("user", 3, Profile) is not None  # served in-process during the outage
        await cache.put("user", 4, msgspec.structs.replace(ANN, id=4))
        now[0] += 61  # no instance can tell this one about an invalidation now: in-process entries live 60 s
        assert await cache.get("user", 4, Profile) is None
        assert metrics.registry.get_sample_value("shopbot_redis_fallback") == 1

        outage.restore()
        await anyio.sleep(0.3)
        # Back on Redis: the entry user 1 had before the outage is gone, for this instance and every other.
        assert await cache.get("user", 1, Profile) is None
        assert await other_instance.get("user", 1, Profile) is None
        assert await other_instance.get("user", 3, Profile) is None  # only ever written in-process
        assert await cache.get("user", 2, Profile) is not None  # untouched entries stay shared
        assert metrics.registry.get_sample_value("shopbot_redis_fallback") == 0
        assert len(cache.local) == 0


# --- through the bot ---------------------------------------------------------------------------------------


def start_update(shop: ShopUnderTest, user_id: int, number: int) -> AiogramUpdate:
    """/start from the user, delivered to another instance around the emulator (its answer still goes
    through the emulator)."""
    user = msgspec.to_builtins(shop.telegram.users[user_id])
    return AiogramUpdate.model_validate(
        {
            "update_id": 800_000 + number,
            "message": {
                "message_id": 800_000 + number,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": user,
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        },
        context={"bot": shop.shop.bot},
    )


async def test_a_language_change_on_one_instance_is_seen_at_once_by_another(database_url: str, redis_url: str) -> None:
    async with (
        running_shop(database_url, redis=RedisConfig(url=Secret(redis_url))) as shop,
        redis.Redis.from_url(redis_url) as own_client,
    ):
        running = shop.shop
        other_metrics = Metrics()
        link = RedisLink(own_client, other_metrics)
        services = BotServices(
            running.config,
            running.pool,
            other_metrics,
            TEXTS,
            running.ledger,
            running.topups,
            running.fulfilment.shopfront,
            running.fulfilment.orders,
            cache=Cache(link, running.config.cache, other_metrics),
        )
        other = build_dispatcher(services, FailoverStorage(link, running.config.cache.session_ttl))
        ann = Customer(shop, 901)  # Telegram says English

        menu = await ann.send("/start")
        assert menu.text.startswith("Welcome to the shop")
        await other.feed_update(running.bot, start_update(shop, ann.id, 1))
        assert (await ann.next_message()).text.startswith("Welcome to the shop")
        # The other instance knew Ann from the shared cache, without asking PostgreSQL.
        assert other_metrics.registry.get_sample_value("shopbot_cache_hits_total", {"kind": "user"}) == 1

        await ann.press(menu, "Language")
        await ann.press(ann.message(menu.message_id), "Русский")
        await other.feed_update(running.bot, start_update(shop, ann.id, 2))
        assert (await ann.next_message()).text.startswith("Добро пожаловать")
