"""What an operator's Prometheus sees after a real user topped up and bought Stars through the bot."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shopbot.sandbox.fragment import FragmentEmulator
from tests.bot.test_bot_journey import journey
from tests.fulfilment.helpers import fund_wallet
from tests.shop_harness import running_shop

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in scrape, f"{name}{labels} is not exported"
    return scrape[key]


async def test_a_scrape_after_a_purchase_shows_every_metric_with_sensible_values(database_url: str) -> None:
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    async with running_shop(database_url, heleket=True, fragment=fragment) as shop:
        fund_wallet(shop)
        await journey(shop, "en")  # /start, top up 5 USD, buy 50 Stars for 1 USD, /history
        async with httpx.AsyncClient() as client:
            response = await client.get(shop.metrics_url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scrape = samples(response.text)

    # The bot: four typed messages, two presses; each update timed; nothing failed or was limited.
    assert value(scrape, "telegram_bot_messages_total") == 4
    updates = value(scrape, "telegram_bot_updates_total")
    assert updates == 6
    assert value(scrape, "telegram_bot_response_time_seconds_count") == updates
    assert 0 < value(scrape, "telegram_bot_response_time_seconds_sum") < updates * 5
    assert value(scrape, "telegram_bot_response_time_seconds_bucket", le="+Inf") == updates
    assert value(scrape, "telegram_bot_errors_total", kind="handler") == 0
    for limit in ("messages", "operations", "payments", "global", "webhook"):
        assert value(scrape, "telegram_bot_rate_limit_hits_total", limit=limit) == 0
    assert value(scrape, "telegram_bot_active_users") == 1

    # Money: one paid webhook credited once; the ledger owes the user what is left.
    assert value(scrape, "telegram_bot_payments_total", status="credited") == 1
    assert value(scrape, "telegram_bot_payments_total", status="mismatch") == 0
    assert value(scrape, "shopbot_webhook_requests_total", endpoint="/webhook/heleket", status="200") >= 1
    assert value(scrape, "shopbot_ledger_movements") >= 2
    assert value(scrape, "shopbot_ledger_balance", account="user") == 4.0
    assert value(scrape, "shopbot_ledger_balance", account="user_held") == 0.0

    # Orders, by state: the one order completed, nothing stuck.
    assert value(scrape, "shopbot_orders_in_state", state="completed") == 1
    for state in ("queued", "paying", "verifying", "refunded"):
        assert value(scrape, "shopbot_orders_in_state", state=state) == 0
    assert value(scrape, "shopbot_orders_total", state="completed") == 1

    # The machinery: every circuit closed, nothing restarted, the wallet known, ready, Redis not missed.
    for service in ("fragment", "heleket", "telegram"):
        assert value(scrape, "shopbot_circuit_state", service=service) == 0
        assert value(scrape, "shopbot_circuit_open", service=service) == 0
    for service in ("web", "telegram", "orders", "reconciler"):
        assert value(scrape, "shopbot_service_restarts_total", service=service) == 0
    assert value(scrape, "shopbot_wallet_balance_ton") > 0
    assert value(scrape, "shopbot_ready") == 1
    assert value(scrape, "shopbot_redis_fallback") == 0
    # Bounded labels: no user id anywhere in a label value.
    assert not [labels for (_, labels) in scrape if any("4242" in v for _, v in labels)]
