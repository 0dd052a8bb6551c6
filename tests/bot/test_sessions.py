"""The bot's sessions (where a user is in a flow): in Redis or in-process, expiring, and still answering
when Redis disappears mid-conversation and comes back."""

from __future__ import annotations

import logging

import anyio
import pytest
import redis.asyncio as redis
from aiogram.fsm.storage.base import StorageKey

from shopbot.bot.storage import FailoverStorage
from shopbot.config.schema import RedisConfig
from shopbot.config.secret import Secret
from shopbot.guard.redis_link import RedisLink
from shopbot.locales import Texts
from tests.bot.test_bot_account import Customer
from tests.redis_outage import redis_outage
from tests.shop_harness import running_shop

TEXTS = Texts()
ANN = StorageKey(bot_id=7000000001, chat_id=1, user_id=1)
BOB = StorageKey(bot_id=7000000001, chat_id=2, user_id=2)


async def test_a_session_keeps_its_state_and_data_until_cleared(link: RedisLink) -> None:
    storage = FailoverStorage(link, ttl=1800)
    assert (await storage.get_state(ANN), await storage.get_data(ANN)) == (None, {})
    await storage.set_state(ANN, "PurchaseFlow:stars_count")
    await storage.update_data(ANN, {"draft": {"product": "stars", "quantity": 50}})
    assert await storage.update_data(ANN, {"pending": None}) == {
        "draft": {"product": "stars", "quantity": 50},
        "pending": None,
    }
    assert await storage.get_state(ANN) == "PurchaseFlow:stars_count"
    assert await storage.get_value(ANN, "draft") == {"product": "stars", "quantity": 50}
    assert (await storage.get_state(BOB), await storage.get_data(BOB)) == (None, {})  # one user's only
    await storage.set_state(ANN, None)
    await storage.set_data(ANN, {})
    assert (await storage.get_state(ANN), await storage.get_data(ANN)) == (None, {})


async def test_an_abandoned_session_expires_after_session_ttl(link: RedisLink) -> None:
    storage = FailoverStorage(link, ttl=1)
    await storage.set_state(ANN, "TopUpEntry:amount")
    await storage.set_data(ANN, {"amount": "10"})
    await anyio.sleep(1.2)
    assert (await storage.get_state(ANN), await storage.get_data(ANN)) == (None, {})


async def test_in_process_sessions_are_bounded() -> None:
    storage = FailoverStorage(RedisLink(None), ttl=1800, max_entries=4)
    for user in range(1, 11):
        await storage.set_state(StorageKey(bot_id=1, chat_id=user, user_id=user), "TopUpEntry:amount")
    assert len(storage.local) == 4
    assert await storage.get_state(StorageKey(bot_id=1, chat_id=10, user_id=10)) == "TopUpEntry:amount"
    assert await storage.get_state(StorageKey(bot_id=1, chat_id=1, user_id=1)) is None


async def test_a_confirmation_is_claimed_once_across_instances(redis_url: str) -> None:
    async with redis.Redis.from_url(redis_url) as one, redis.Redis.from_url(redis_url) as two:
        first, second = FailoverStorage(RedisLink(one), ttl=60), FailoverStorage(RedisLink(two), ttl=60)
        assert [await first.claim("claim:t1", 60), await second.claim("claim:t1", 60)] == [True, False]
    alone = FailoverStorage(RedisLink(None), ttl=60)
    assert [await alone.claim("claim:t1", 60), await alone.claim("claim:t1", 60)] == [True, False]


async def test_sessions_changed_during_an_outage_carry_over_when_redis_returns(redis_url: str) -> None:
    async with (
        redis_outage(redis_url) as outage,
        redis.Redis.from_url(outage.url) as through_proxy,
        redis.Redis.from_url(redis_url) as direct,
    ):
        storage = FailoverStorage(RedisLink(through_proxy, retry_seconds=0.2), ttl=1800)
        other_instance = FailoverStorage(RedisLink(direct), ttl=1800)
        await storage.set_state(ANN, "PurchaseFlow:stars_count")  # Ann was typing a number of Stars
        await storage.set_state(BOB, "TopUpEntry:amount")

        outage.cut()
        assert await storage.get_state(ANN) is None  # Redis is away: as if no flow had begun
        await storage.set_state(ANN, None)  # Ann went back to the menu meanwhile
        await storage.set_data(ANN, {})
        await storage.set_state(BOB, "PurchaseFlow:stars_recipient")  # Bob started another flow
        await storage.set_data(BOB, {"draft": {"product": "stars", "quantity": 100}})
        assert await storage.get_state(BOB) == "PurchaseFlow:stars_recipient"

        outage.restore()
        await anyio.sleep(0.3)
        for instance in (storage, other_instance):
            assert await instance.get_state(ANN) is None  # the flow she left does not come back
            assert await instance.get_state(BOB) == "PurchaseFlow:stars_recipient"  # his goes on
            assert await instance.get_data(BOB) == {"draft": {"product": "stars", "quantity": 100}}
        assert await direct.ttl("fsm:2:2:state") > 1700


async def test_the_bot_keeps_answering_while_redis_is_away_and_resumes_it(
    database_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shopbot.guard.redis_link")
    async with redis_outage(redis_url) as outage:
        redis_config = RedisConfig(url=Secret(outage.url), retry_seconds=0.3)
        async with running_shop(database_url, redis=redis_config) as shop:
            metrics = shop.shop.metrics.registry
            ann, bob = Customer(shop, 1001), Customer(shop, 1002, first_name="Bob")
            asked = await ann.send("/buy_stars 5")  # Ann is asked for a number of Stars: a flow in Redis
            assert asked.text.startswith("Stars are sold from 50")
            assert metrics.get_sample_value("shopbot_redis_fallback") == 0

            outage.cut()
            # Ann, in the middle of her flow, still gets an answer (her flow is in the Redis that is away).
            assert (await ann.send("100")).text == TEXTS.get("en", "unknown-text")
            # Bob starts afresh and his flow works in-process.
            assert (await bob.send("/start")).text.startswith("Welcome to the shop, Bob")
            assert (await bob.send("/buy_stars 5")).text.startswith("Stars are sold from 50")
            assert metrics.get_sample_value("shopbot_redis_fallback") == 1
            assert (await shop.scrape()).count("shopbot_redis_fallback 1.0") == 1

            outage.restore()
            await anyio.sleep(0.4)
            # Bob's flow, begun during the outage, goes on with Redis back; Ann's, untouched, resumes too.
            assert "250" in (await bob.send("250")).text
            assert "100" in (await ann.send("100")).text
            assert metrics.get_sample_value("shopbot_redis_fallback") == 0
            assert metrics.get_sample_value("shopbot_redis_outages_total") == 1
    went = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "Redis is reachable again" in r.getMessage()]
    assert (len(went), len(back)) == (1, 1)
