"""/metrics is private and cheap: its own listener, nothing on the public port, no money figures in the public
health report, and the aggregates over orders and the ledger read at most once a minute however often
Prometheus (or anyone reaching the listener) scrapes."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from shopbot.app.gauges import shop_stats
from shopbot.config import load_config
from shopbot.config.schema import MetricsConfig
from shopbot.db.queries import queries
from shopbot.sandbox.fragment import FragmentEmulator
from tests.fulfilment.helpers import fund_wallet, funded_buyer
from tests.shop_harness import running_shop

pytestmark = pytest.mark.anyio

# Every statement that counts or sums over users, orders, movements, postings or accounts.
AGGREGATES = (
    ("stats", "active_users"),
    ("orders", "orders_by_state"),
    ("ledger", "ledger_totals"),
    ("ledger", "owed_to_users"),
)


def count_aggregate_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Wrap each aggregate query so a test sees how often the database was asked; the real SQL still runs."""
    calls = {name: 0 for _, name in AGGREGATES}

    def counted(name: str, query: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any) -> Any:
            calls[name] += 1
            return await query(*args)

        return call

    for area, name in AGGREGATES:
        namespace = getattr(queries, area)
        monkeypatch.setattr(namespace, name, counted(name, getattr(namespace, name)))
    return calls


async def test_metrics_are_served_on_their_own_listener_and_the_public_port_answers_404(database_url: str) -> None:
    async with running_shop(database_url) as shop, httpx.AsyncClient() as client:
        assert shop.shop.metrics_port not in (0, shop.shop.web_port)
        private = await client.get(shop.metrics_url)
        public = await shop.http.get("/metrics")
        public_health = await shop.http.get("/health")
        only_metrics = await client.get(f"http://127.0.0.1:{shop.shop.metrics_port}/health/detailed")
    assert private.status_code == 200 and private.headers["content-type"].startswith("text/plain")
    assert "shopbot_ready 1.0" in private.text
    assert public.status_code == 404 and public.json() == {"error": "Not Found"}
    assert "shopbot_" not in public.text
    assert public_health.status_code == 200  # the public port still answers what it should
    assert only_metrics.status_code == 404  # and the private one serves nothing but /metrics


async def test_the_public_health_report_shows_no_money_figures(database_url: str) -> None:
    fragment = FragmentEmulator()
    async with running_shop(database_url, fragment=fragment) as shop:
        fund_wallet(shop, ton=777)
        await funded_buyer(shop, 4321, "12345.67")
        wallet = shop.shop.fulfilment.wallet
        assert wallet is not None
        await wallet.check()  # the wallet watch has read the balance: 777 TON
        scrape = await shop.scrape()
        detailed = await shop.http.get("/health/detailed")
    # Prometheus, privately, has the figures...
    assert "shopbot_wallet_balance_ton 777.0" in scrape
    assert 'shopbot_ledger_balance{account="user"} 12345.67' in scrape
    # ...the public report has readiness and circuits, and no balance, no debt, no ledger total.
    assert detailed.status_code == 200, detailed.text
    body = detailed.json()
    assert body["ready"] is True and body["checks"]["database"]["ok"] is True
    assert "wallet_ton" not in body["facts"]
    for figure in ("777", "12345", "ledger", "owed", "balance"):
        assert figure not in detailed.text, figure


async def test_two_scrapes_within_a_minute_read_the_aggregates_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_aggregate_reads(monkeypatch)
    async with running_shop(database_url) as shop:
        await funded_buyer(shop, 5150, "3")
        first = await shop.scrape()
        await funded_buyer(shop, 5151, "4")  # a movement between the scrapes
        second = await shop.scrape()
        async with anyio.create_task_group() as group:  # a burst of concurrent scrapes, too
            for _ in range(5):
                group.start_soon(shop.scrape)
    assert calls == {name: 1 for _, name in AGGREGATES}
    # Within the minute a scrape shows the last reading: the second movement is not counted yet.
    assert 'shopbot_ledger_balance{account="user"} 3.0' in first
    assert 'shopbot_ledger_balance{account="user"} 3.0' in second
    # The circuits are read on every scrape all the same (in memory or Redis, not the database).
    assert 'shopbot_circuit_state{service="telegram"} 0.0' in second


async def test_the_aggregates_are_read_again_once_their_interval_has_passed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_shop(database_url) as shop:
        calls = count_aggregate_reads(monkeypatch)
        # The shop's own refresher waits a minute; the same refresher with a short interval shows the re-read.
        refresh = shop_stats(shop.shop.pool, shop.shop.metrics, [], every=0.2)
        await refresh()
        await refresh()
        assert calls["ledger_totals"] == 1
        await funded_buyer(shop, 6160, "8")
        await anyio.sleep(0.3)
        await refresh()
        assert calls == {name: 2 for _, name in AGGREGATES}
        assert 'shopbot_ledger_balance{account="user"} 8.0' in shop.shop.metrics.render().decode()


async def test_a_taken_metrics_port_does_not_stop_the_shop(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with running_shop(database_url, metrics=MetricsConfig(host="127.0.0.1", port=port)) as shop:
            detailed = await shop.http.get("/health/detailed")
            assert shop.shop.metrics_port == 0
    # The shop is ready and sells; the operator reads why Prometheus sees nothing.
    assert detailed.status_code == 200, detailed.text
    metrics = detailed.json()["services"]["metrics"]
    assert metrics["state"] == "off" and str(port) in metrics["reason"], metrics


def test_the_metrics_listener_is_on_loopback_9464_unless_the_operator_says_otherwise(tmp_path: Path) -> None:
    (tmp_path / "shopbot.toml").write_text("")
    default = load_config(tmp_path / "shopbot.toml", {})
    assert (default.metrics.host, default.metrics.port) == ("127.0.0.1", 9464)
    moved = load_config(
        tmp_path / "shopbot.toml", {"SHOPBOT_METRICS__PORT": "9500", "SHOPBOT_METRICS__HOST": "0.0.0.0"}
    )
    assert (moved.metrics.host, moved.metrics.port) == ("0.0.0.0", 9500)
    # The documented defaults are the defaults.
    documented = load_config(Path(__file__).resolve().parents[2] / "shopbot.toml", {})
    assert (documented.metrics.host, documented.metrics.port) == ("127.0.0.1", 9464)
