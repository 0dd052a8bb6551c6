"""Rate limits as users, operators and a second instance see them.

The limiter is tested on both backends (Redis — real when TEST_REDIS_URL is set — and in-process),
with two instances sharing one Redis, and with Redis cut away mid-test. The bot's limits are tested
through the Telegram emulator: what a flooding user sees, that presses are still answered, who is
exempt or gets more, and that every refusal is counted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import msgspec
import pytest
import redis.asyncio as redis
from aiogram.types import User

from shopbot.bot.limits import BotLimits
from shopbot.config.schema import RateLimitConfig, RedisConfig
from shopbot.config.secret import Secret
from shopbot.guard.limiter import Limit, RateLimiter
from shopbot.guard.redis_link import RedisLink
from shopbot.locales import Texts
from shopbot.metrics import Metrics
from tests.redis_outage import redis_outage
from tests.shop_harness import running_shop

pytestmark = pytest.mark.anyio
TEXTS = Texts()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["in-process", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "in-process":
        yield RateLimiter(RedisLink(None))
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_server_url"))
    await client.flushdb()
    yield RateLimiter(RedisLink(client))
    await client.flushdb()
    await client.aclose()


async def test_a_bucket_allows_the_rate_plus_the_burst_then_says_how_long_to_wait(limiter: RateLimiter) -> None:
    limit = Limit("messages", per_minute=30, burst=5)
    verdicts = [await limiter.take("messages:1", limit) for _ in range(36)]
    assert [v.allowed for v in verdicts] == [True] * 35 + [False]
    assert 0 < verdicts[-1].retry_after <= 2.0  # 30 a minute: the next token within two seconds
    assert verdicts[-1].retry_seconds in (1, 2)
    other = await limiter.take("messages:2", limit)  # another user's bucket is untouched
    assert other.allowed


async def test_a_spent_bucket_refills_at_its_rate(limiter: RateLimiter) -> None:
    limit = Limit("operations", per_minute=30, burst=0)  # one every two seconds
    assert all([(await limiter.take("operations:7", limit)).allowed for _ in range(30)])
    refused = await limiter.take("operations:7", limit)
    assert not refused.allowed and 0 < refused.retry_after <= 2.0
    await anyio.sleep(refused.retry_after + 0.05)
    assert (await limiter.take("operations:7", limit)).allowed  # exactly when it said
    assert not (await limiter.take("operations:7", limit)).allowed


async def test_the_limited_user_is_told_once_per_wait_not_at_every_drop(limiter: RateLimiter) -> None:
    assert await limiter.first_notice("messages:1", 0.3)
    assert not await limiter.first_notice("messages:1", 0.3)
    assert await limiter.first_notice("messages:2", 0.3)
    await anyio.sleep(0.35)
    assert await limiter.first_notice("messages:1", 0.3)


async def test_in_process_buckets_are_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(RedisLink(None), clock=clock, max_local=3)
    one = Limit("messages", per_minute=1, burst=0)
    for user in range(5):
        assert (await limiter.take(f"messages:{user}", one)).allowed
    assert len(limiter._buckets) == 3  # a flood of new ids does not grow memory without end
    assert not (await limiter.take("messages:4", one)).allowed  # the newest are the ones kept
    clock.now += 60
    assert (await limiter.take("messages:4", one)).allowed


async def test_two_instances_sharing_one_redis_share_one_limit(redis_url: str) -> None:
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    try:
        instances = [RateLimiter(RedisLink(first)), RateLimiter(RedisLink(second))]
        limit = Limit("payments", per_minute=5, burst=5)
        allowed = 0

        async def press(instance: RateLimiter) -> None:
            nonlocal allowed
            if (await instance.take("payments:42", limit)).allowed:
                allowed += 1

        async with anyio.create_task_group() as group:
            for n in range(60):  # thirty presses through each instance, all at once
                group.start_soon(press, instances[n % 2])
        assert allowed == 10
        assert not (await instances[0].take("payments:42", limit)).allowed
        assert not (await instances[1].take("payments:42", limit)).allowed
        # The notice is shared too: a user told by one instance is not told again by the other.
        assert await instances[0].first_notice("payments:43", 5)
        assert not await instances[1].first_notice("payments:43", 5)
    finally:
        await first.aclose()
        await second.aclose()


async def test_limits_keep_working_when_redis_disappears_and_are_shared_again_when_it_returns(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with redis_outage(redis_url) as outage:
        client = redis.Redis.from_url(outage.url, socket_timeout=1, socket_connect_timeout=1)
        witness = redis.Redis.from_url(redis_url)
        clock, metrics = Clock(), Metrics()
        link = RedisLink(client, metrics, clock=clock, retry_seconds=5)
        limiter = RateLimiter(link)
        limit = Limit("messages", per_minute=3, burst=0)
        try:
            assert (await limiter.take("messages:9", limit)).allowed
            assert await witness.exists("shopbot:limit:messages:9")

            outage.cut()
            verdicts = [await limiter.take("messages:9", limit) for _ in range(4)]
            assert [v.allowed for v in verdicts] == [True, True, True, False]  # in-process, still limiting
            assert link.falling_back and metrics.redis_fallback._value.get() == 1
            assert [r.getMessage() for r in caplog.records].count(
                "Redis is unreachable (ConnectionError): using in-process limits, cache and sessions until it returns"
            ) == 1

            outage.restore()
            clock.now += 5
            # Back on Redis: its bucket has the one token taken before the outage.
            assert [(await limiter.take("messages:9", limit)).allowed for _ in range(3)] == [True, True, False]
            assert not link.falling_back and metrics.redis_fallback._value.get() == 0
        finally:
            await client.aclose()
            await witness.aclose()


# --- the bot -----------------------------------------------------------------------------------------------------


def limits(**keys: object) -> RateLimitConfig:
    return msgspec.structs.replace(
        RateLimitConfig(
            messages_per_minute=3,
            operations_per_minute=3,
            payments_per_minute=1,
            global_messages_per_minute=1000,
            burst=0,
            new_user_window=0,
            webhook_per_minute=1000,
        ),
        **keys,
    )


def replies(shop, user_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.text or "" for m in shop.telegram.chat_messages(user_id)]


async def settle(shop, count: int, user_id: int) -> None:  # type: ignore[no-untyped-def]
    """Wait until the bot has sent `count` messages to the user, then a little more (nothing else may come)."""
    with anyio.fail_after(10):
        while len(replies(shop, user_id)) < count:
            await anyio.sleep(0.02)
    await anyio.sleep(0.4)


def hits(shop, limit: str) -> float:  # type: ignore[no-untyped-def]
    return shop.shop.metrics.rate_limit_hits.labels(limit)._value.get()


async def test_a_flooding_user_gets_one_message_saying_when_to_retry(database_url: str) -> None:
    async with running_shop(database_url, rate_limit=limits()) as shop:
        shop.telegram.add_user(301, first_name="Flood", language_code="en")
        for _ in range(8):
            shop.telegram.send_text(301, "/balance")
        await settle(shop, 4, 301)
        texts = replies(shop, 301)
        # Updates are handled concurrently, so the notice may come before the answers.
        assert sum("Your balance" in text for text in texts) == 3, texts
        [notice] = [text for text in texts if "Your balance" not in text]
        assert re.fullmatch(r"You are going a little fast\. Please wait \d+ s and try again\.", notice)
        assert hits(shop, "messages") == 5


async def test_a_limited_press_is_still_answered_with_the_wait(database_url: str) -> None:
    async with running_shop(database_url, rate_limit=limits()) as shop:
        shop.telegram.add_user(302, first_name="Presser", language_code="ru")
        shop.telegram.send_text(302, "/start")
        await settle(shop, 1, 302)
        menu = shop.telegram.chat_messages(302)[-1]
        queries = [shop.telegram.press_button(302, menu.message_id, "menu:balance").callback_query.id for _ in range(5)]
        answers = [
            await shop.telegram.wait_for_call(
                "answerCallbackQuery", predicate=lambda c, q=q: c.params["callback_query_id"] == q
            )
            for q in queries
        ]
        toasts = [a.params.get("text") or "" for a in answers]
        limited = [t for t in toasts if t]
        assert len(limited) == 2, toasts  # presses draw from operations (three), not from messages
        assert all(re.fullmatch(r"Слишком быстро\. Подождите \d+ с и попробуйте снова\.", t) for t in limited)
        assert hits(shop, "operations") == 2


async def test_admins_are_never_limited(database_url: str) -> None:
    async with running_shop(database_url, rate_limit=limits(), telegram_keys={"admin_ids": (303,)}) as shop:
        shop.telegram.add_user(303, first_name="Admin", language_code="en")
        for _ in range(10):
            shop.telegram.send_text(303, "/balance")
        await settle(shop, 10, 303)
        assert all("Your balance" in text for text in replies(shop, 303))
        assert hits(shop, "messages") == 0


async def test_premium_users_get_more_and_new_users_less(database_url: str) -> None:
    async with running_shop(database_url, rate_limit=limits(messages_per_minute=4, new_user_window=3600)) as shop:
        shop.telegram.add_user(304, first_name="New", language_code="en")  # first seen now: half, two
        shop.telegram.add_user(305, first_name="Star", language_code="en", is_premium=True)  # new too: 4 x 2 x 0.5
        for _ in range(6):
            shop.telegram.send_text(304, "/balance")
            shop.telegram.send_text(305, "/balance")
        await settle(shop, 5, 305)
        assert sum("Your balance" in text for text in replies(shop, 304)) == 2
        assert sum("Your balance" in text for text in replies(shop, 305)) == 4


async def test_the_mission_defaults_cut_a_new_users_flood_at_twenty(database_url: str) -> None:
    async with running_shop(database_url, rate_limit=RateLimitConfig()) as shop:
        shop.telegram.add_user(306, first_name="Default", language_code="en")
        for _ in range(30):
            shop.telegram.send_text(306, "/balance")
        await settle(shop, 21, 306)
        texts = replies(shop, 306)
        assert sum("Your balance" in text for text in texts) == 20  # 30 a minute x 0.5 for new users, + burst 5
        assert sum("going a little fast" in text for text in texts) == 1


async def test_payment_actions_have_their_own_tighter_limit(database_url: str) -> None:
    async with running_shop(database_url, rate_limit=limits(messages_per_minute=10)) as shop:
        shop.telegram.add_user(307, first_name="Payer", language_code="en")
        shop.telegram.send_text(307, "/recharge 10")
        await settle(shop, 1, 307)
        shop.telegram.send_text(307, "/recharge 10")
        shop.telegram.send_text(307, "/balance")  # not a payment action: still answered
        await settle(shop, 3, 307)
        texts = replies(shop, 307)
        assert "Top-ups are not available" in texts[0]
        assert re.fullmatch(r"Too many payment actions in a row\. Please wait \d+ s and try again\.", texts[1])
        assert "Your balance" in texts[2]
        assert hits(shop, "payments") == 1


async def test_the_global_limit_holds_across_users(database_url: str) -> None:
    async with running_shop(
        database_url, rate_limit=limits(messages_per_minute=100, global_messages_per_minute=4)
    ) as shop:
        users = range(311, 317)
        for user in users:
            shop.telegram.add_user(user, first_name=f"U{user}", language_code="en")
            shop.telegram.send_text(user, "/balance")
        for user in users:
            await settle(shop, 1, user)
        answered = sum("Your balance" in t for user in users for t in replies(shop, user))
        busy = [t for user in users for t in replies(shop, user) if "very busy" in t]
        assert answered == 4 and len(busy) == 2  # six users, each under their own limit, four a minute in all
        assert re.fullmatch(r"The shop is very busy right now\. Please try again in \d+ s\.", busy[0])
        assert hits(shop, "global") == 2


async def test_webhooks_have_a_per_address_limit_and_every_answer_is_counted(database_url: str) -> None:
    async with running_shop(database_url, heleket=True, rate_limit=limits(webhook_per_minute=3)) as shop:
        statuses = [(await shop.http.post("/webhook/heleket", content=b"{}")).status_code for _ in range(3)]
        refused = await shop.http.post("/webhook/heleket", content=b"{}")
        assert statuses == [401, 401, 401]  # unsigned: refused on its merits
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_requests" and int(refused.headers["retry-after"]) >= 1
        metrics = await shop.scrape()
        assert 'shopbot_webhook_requests_total{endpoint="/webhook/heleket",status="401"} 3.0' in metrics
        assert 'shopbot_webhook_requests_total{endpoint="/webhook/heleket",status="429"} 1.0' in metrics
        assert 'telegram_bot_rate_limit_hits_total{limit="webhook"} 1.0' in metrics
        assert (await shop.http.get("/health")).status_code == 200  # only the webhooks are limited


async def test_a_shop_whose_redis_disappears_keeps_limiting_and_answering(database_url: str, redis_url: str) -> None:
    async with (
        redis_outage(redis_url) as outage,
        running_shop(
            database_url, rate_limit=limits(), redis=RedisConfig(url=Secret(outage.url), retry_seconds=0.2)
        ) as shop,
    ):
        shop.telegram.add_user(320, first_name="Steady", language_code="en")
        shop.telegram.send_text(320, "/balance")
        await settle(shop, 1, 320)
        outage.cut()
        for _ in range(4):
            shop.telegram.send_text(320, "/balance")
        await settle(shop, 5, 320)
        texts = replies(shop, 320)
        # Redis gone: a fresh in-process bucket of three answers, the fourth is refused and told.
        assert sum("Your balance" in t for t in texts) == 4
        assert sum("going a little fast" in t for t in texts) == 1
        scrape = await shop.scrape()
        assert "shopbot_redis_fallback 1.0" in scrape
        outage.restore()
        await anyio.sleep(0.3)
        shop.telegram.add_user(321, first_name="Later", language_code="en")
        shop.telegram.send_text(321, "/balance")
        await settle(shop, 1, 321)
        assert "shopbot_redis_fallback 0.0" in (await shop.scrape())


async def test_twenty_users_each_at_their_own_limits_leave_room_for_a_twenty_first() -> None:
    # The shipped defaults: twenty people typing and pressing as fast as their own limits let them,
    # for three minutes, must not use up the shop's global limit for everybody else.
    clock = Clock()
    bot = BotLimits(RateLimiter(RedisLink(None), clock=clock), RateLimitConfig(), (), Metrics())
    crowd = [User(id=600 + n, is_bot=False, first_name="Crowd") for n in range(20)]
    for _ in range(180):
        for user in crowd:
            for own in (bot.messages, bot.operations):
                while (refused := await bot.check(user, {}, own, bot.everyone)) is None:
                    pass
                assert refused[0] is own  # each was stopped by their own limit, never by everyone's
        clock.now += 1
    newcomer = User(id=700, is_bot=False, first_name="Newcomer")
    assert await bot.check(newcomer, {}, bot.messages, bot.everyone) is None
