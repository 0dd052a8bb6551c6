"""Circuit breakers in the running shop: Heleket, the Fragment service and the Bot API failing for real.

Each test makes an emulator fail until the circuit opens, checks what an operator sees in
`/health/detailed` and `/metrics` and what a user sees, then lets the service recover:
open -> half_open after `timeout` -> closed after `success_threshold` successes.
"""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest
import redis.asyncio as redis
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError

from shopbot.config.schema import CircuitBreakerConfig, RedisConfig
from shopbot.config.secret import Secret
from shopbot.errors import Refused
from shopbot.guard.circuit import CircuitBreaker
from shopbot.guard.redis_link import RedisLink
from shopbot.sandbox.fragment import FragmentEmulator
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.ledger.helpers import make_user
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
UNAVAILABLE = "The payment service is not answering right now. Please try again in a few minutes."
HELEKET_RETRIES = 4  # the client's first attempt and its three retries


async def circuits(shop: ShopUnderTest) -> dict[str, str]:
    response = await shop.http.get("/health/detailed")
    body = response.json()
    # An open circuit never makes the shop unready by itself: it still serves and says what is down.
    assert response.status_code == 200 and body["ready"] is True, body
    return body["circuits"]  # type: ignore[no-any-return]


async def wait_for_circuit(shop: ShopUnderTest, service: str, state: str, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while (await circuits(shop))[service] != state:
            await anyio.sleep(0.05)


async def say(shop: ShopUnderTest, user_id: int, text: str) -> str:
    """A user types `text`; the text of the bot's next message to them."""
    shop.telegram.send_text(user_id, text)
    call = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == user_id)
    assert call.ok, call.description
    return str(call.params["text"])


def metric(text: str, name: str, service: str) -> float:
    prefix = f'{name}{{service="{service}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).removeprefix(prefix))


def requests_to(shop: ShopUnderTest, path: str) -> int:
    assert shop.heleket is not None
    return sum(1 for call in shop.heleket.calls if call.path == path)


def heleket_goes_down(shop: ShopUnderTest, calls: int) -> None:
    """The next `calls` invoice creations fail with a 503, every retry included."""
    assert shop.heleket is not None
    for _ in range(calls * HELEKET_RETRIES):
        shop.heleket.fail_next("/v1/payment", status=503)


def fast_retries(shop: ShopUnderTest) -> None:
    # The client's real retries, just not half a second apart.
    client = shop.shop.topups.client
    assert client is not None
    client.backoff = 0.01


async def test_a_failing_heleket_opens_its_circuit_and_top_ups_fail_fast_with_a_clear_answer(database_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, timeout=1.5, success_threshold=2)
    async with running_shop(database_url, heleket=True, circuit_breaker=config) as shop:
        fast_retries(shop)
        user = 301
        shop.telegram.add_user(user, first_name="Ann")
        assert (await circuits(shop)) == {"fragment": "closed", "heleket": "closed", "telegram": "closed"}
        assert "Top-up #" in await say(shop, user, "/recharge 5")  # Heleket answers; its limits are now known

        heleket_goes_down(shop, 2)
        assert await say(shop, user, "/recharge 5") == UNAVAILABLE
        assert (await circuits(shop))["heleket"] == "closed"  # one failed call (four attempts) is one failure
        assert await say(shop, user, "/recharge 5") == UNAVAILABLE
        assert (await circuits(shop))["heleket"] == "open"

        # Open: the user gets the same clear answer at once, and Heleket is not asked at all.
        asked = requests_to(shop, "/v1/payment")
        assert await say(shop, user, "/recharge 7") == UNAVAILABLE
        assert requests_to(shop, "/v1/payment") == asked
        # Never sent, so nothing waits for the reconciler: the 7 USD invoice is closed as failed at once.
        assert await shop.shop.pool.fetchval("SELECT status FROM invoices WHERE amount = 7") == "create_failed"
        metrics = await shop.scrape()
        assert metric(metrics, "shopbot_circuit_state", "heleket") == 2
        assert metric(metrics, "shopbot_circuit_open", "heleket") == 1
        assert metric(metrics, "shopbot_circuit_state", "telegram") == 0

        await wait_for_circuit(shop, "heleket", "half_open")
        assert "Top-up #" in await say(shop, user, "/recharge 8")
        assert (await circuits(shop))["heleket"] == "half_open"  # one success of the two it takes
        assert "Top-up #" in await say(shop, user, "/recharge 9")
        assert (await circuits(shop))["heleket"] == "closed"
        assert requests_to(shop, "/v1/payment") == asked + 2


async def test_a_failure_while_half_open_opens_heleket_again(database_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, timeout=1.0, success_threshold=1)
    async with running_shop(database_url, heleket=True, circuit_breaker=config) as shop:
        fast_retries(shop)
        user = await make_user(shop.shop.pool, 302)
        await shop.shop.topups.create(user, D("5"))
        heleket_goes_down(shop, 2)
        with pytest.raises(Refused, match="unavailable"):
            await shop.shop.topups.create(user, D("5"))
        await wait_for_circuit(shop, "heleket", "half_open")
        with pytest.raises(Refused, match="unavailable"):
            await shop.shop.topups.create(user, D("5"))
        assert (await circuits(shop))["heleket"] == "open"
        with pytest.raises(Refused, match="unavailable") as refused:
            await shop.shop.topups.create(user, D("5"))
        assert "circuit open; retry in 1 s" in str(refused.value.__cause__)


async def test_instances_sharing_redis_share_the_heleket_circuit(database_url: str, redis_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, timeout=60, success_threshold=1)
    shared = RedisConfig(url=Secret(redis_url))
    async with (
        running_shop(database_url, heleket=True, circuit_breaker=config, redis=shared) as one,
        running_shop(database_url, heleket=True, circuit_breaker=config, redis=shared) as other,
    ):
        fast_retries(one)
        user = await make_user(one.shop.pool, 303)
        heleket_goes_down(one, 2)
        for _ in range(2):
            with pytest.raises(Refused, match="unavailable"):
                await one.shop.topups.create(user, D("5"))
        # The other instance never saw a failure, yet its circuit is the same one.
        assert (await circuits(other))["heleket"] == "open"
        with pytest.raises(Refused, match="unavailable"):
            await other.shop.topups.create(user, D("5"))
        assert requests_to(other, "/v1/payment") == 0


async def test_a_failing_bot_api_opens_the_telegram_circuit_and_the_bot_resumes_after(database_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, timeout=1.5, success_threshold=1)
    async with running_shop(database_url, circuit_breaker=config) as shop:
        for user in (401, 403):
            shop.telegram.add_user(user, first_name=f"User{user}")
        for _ in range(2):
            shop.telegram.fail_next("sendMessage", error_code=502, description="Bad Gateway")
        shop.telegram.send_text(401, "/start")
        for _ in range(2):  # the welcome, then the apology for the failed update: both 502
            call = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 401)
            assert call.status == 502
        await wait_for_circuit(shop, "telegram", "open", timeout=2)  # /health/detailed stays 200 meanwhile

        # Open: a call fails at once as a network problem, without reaching Telegram.
        sent = sum(1 for call in shop.telegram.calls if call.method == "sendMessage")
        with pytest.raises(TelegramNetworkError, match="Telegram circuit open"):
            await shop.shop.bot.send_message(403, "hello")
        assert sum(1 for call in shop.telegram.calls if call.method == "sendMessage") == sent
        assert metric((await shop.scrape()), "shopbot_circuit_state", "telegram") == 2

        # A user writing meanwhile is answered once the circuit lets the poller through again.
        shop.telegram.send_text(403, "/start")
        reply = await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == 403, timeout=40
        )
        assert reply.ok
        assert (await circuits(shop))["telegram"] == "closed"


async def test_an_instance_starting_while_the_shared_telegram_circuit_is_open_still_comes_up(
    database_url: str, redis_url: str
) -> None:
    config = CircuitBreakerConfig(failure_threshold=1, timeout=60, success_threshold=1)
    client = redis.Redis.from_url(redis_url)
    try:
        await CircuitBreaker("telegram", config, RedisLink(client)).record_failure()  # another instance's failure
    finally:
        await client.aclose()
    async with running_shop(database_url, circuit_breaker=config, redis=RedisConfig(url=Secret(redis_url))) as shop:
        assert (await circuits(shop))["telegram"] == "open"
        assert any(call.method == "deleteWebhook" for call in shop.telegram.calls)


async def test_4xx_answers_and_flood_waits_do_not_open_the_telegram_circuit(database_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, timeout=60, success_threshold=1)
    async with running_shop(database_url, circuit_breaker=config) as shop:
        shop.telegram.add_user(404)
        shop.telegram.fail_next("sendMessage", error_code=429, description="Too Many Requests", retry_after=1)
        shop.telegram.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user")
        shop.telegram.fail_next("sendMessage", error_code=400, description="Bad Request: chat not found")
        for _ in range(3):
            with pytest.raises(TelegramAPIError) as refused:
                await shop.shop.bot.send_message(404, "hello")
            assert not isinstance(refused.value, TelegramNetworkError)
        assert (await circuits(shop))["telegram"] == "closed"
        await shop.shop.bot.send_message(404, "hello")


async def test_a_failing_fragment_service_opens_its_circuit_orders_wait_and_are_paid_once_after(
    database_url: str,
) -> None:
    emulator = FragmentEmulator()
    emulator.add_user("best_friend", "Best Friend")
    config = CircuitBreakerConfig(failure_threshold=2, timeout=1.0, success_threshold=1)
    async with running_shop(database_url, fragment=emulator, circuit_breaker=config) as shop:
        fund_wallet(shop)
        shopfront = shop.shop.fulfilment.shopfront
        quote = await shopfront.quote("stars", 100, "best_friend")
        emulator.fail_next("create_order", status=503, times=2)
        waiting = [await shopfront.place(await funded_buyer(shop, 700 + n, "10"), quote) for n in range(2)]
        await wait_for_circuit(shop, "fragment", "open", timeout=10)
        for order in waiting:
            current = await shop.shop.fulfilment.orders.get(order.id)
            assert current is not None and current.state == "queued"  # postponed, never refunded
            assert (await shop.shop.ledger.balance(order.user_id)).held == D("2.00")
        notice = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 700)
        assert "is delayed" in notice.params["text"]

        await wait_for_circuit(shop, "fragment", "half_open")
        later = await shopfront.place(await funded_buyer(shop, 702, "10"), quote)
        assert (await wait_final(shop, later.id)).state == "completed"
        assert (await circuits(shop))["fragment"] == "closed"
        for order in waiting:  # their retry comes due on its own, and each is paid exactly once
            done = await wait_final(shop, order.id, timeout=30)
            assert done.state == "completed"
            assert len(emulator.payments_for(str(done.fragment_order_id))) == 1
