"""An optional part never stops the shop: without Chromium the cookie refresher is off, reported once, and the
shop still sells with the cookies it has; an optional service's crash loop turns it off instead of the shop."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import anyio
import httpx
from anyio.abc import TaskStatus

from shopbot.app.supervisor import Supervisor
from shopbot.config.schema import SupervisorConfig
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.ops.serve_process import ServeProcess
from tests.ops.test_serve import write_config
from tests.shop_harness import TOKEN, running_shop

ADMIN = 7001
COOKIES = "stel_ssid=0123456789abcdef0123456789abcdef; stel_dt=-180; stel_token=9f8e7d6c5b4a3928; stel_ton_token=t0n"
FAST = SupervisorConfig(max_restarts=2, restart_window=10, backoff_initial=0.01, backoff_max=0.05)


def service_up(text: str, name: str) -> float:
    match = re.search(rf'^shopbot_service_up\{{service="{name}"\}} (\S+)$', text, re.M)
    assert match, text
    return float(match.group(1))


async def test_without_chromium_the_shop_sells_and_reports_the_refresher_off(database_url: str, tmp_path: Path) -> None:
    emulator = FragmentEmulator()
    emulator.add_user("best_friend", "Best Friend")
    kyc = {
        "kyc": True,
        "cookies": Secret(COOKIES),
        "chromium_path": str(tmp_path / "no-chromium"),
        "browser_profile_dir": str(tmp_path / "profile"),
        "payment_ttl_seconds": 5,
        "landing_margin_seconds": 1.0,
    }
    async with running_shop(
        database_url, fragment=emulator, fragment_keys=kyc, telegram_keys={"admin_ids": (ADMIN,)}
    ) as shop:
        fund_wallet(shop)
        report = (await shop.http.get("/health/detailed")).json()
        assert report["ready"] is True
        cookies = report["services"]["cookies"]
        assert cookies["state"] == "off" and "apt-get install chromium" in cookies["reason"]
        assert report["services"]["orders"] == {"state": "running"}
        assert service_up(shop.shop.metrics.render().decode(), "cookies") == 0
        assert service_up(shop.shop.metrics.render().decode(), "orders") == 1
        alert = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == ADMIN)
        assert "cookies is off" in alert.params["text"] and "chromium_path" in alert.params["text"]

        buyer = await funded_buyer(shop, 8101, "10")
        quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "@best_friend")
        order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
        assert (await wait_final(shop, order.id)).state == "completed"
        off_alerts = [
            c
            for c in shop.telegram.calls
            if c.method == "sendMessage" and c.params["chat_id"] == ADMIN and "is off" in c.params["text"]
        ]
        assert len(off_alerts) == 1, "one alert, not one per check"


async def test_real_serve_boots_without_chromium_and_says_so(database_url: str, tmp_path: Path) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    fragment = FragmentEmulator()
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        fragment_port = await group.start(serve_fragment_emulator, fragment)
        config = write_config(tmp_path, port, database_url)
        config.write_text(
            config.read_text().replace("[telegram]\n", f"[telegram]\nadmin_ids = [{ADMIN}]\n")
            + (
                f'[fragment]\nbase_url = "http://127.0.0.1:{fragment_port}"\n'
                f'seed_phrase = "{" ".join(throwaway_mnemonic())}"\nmax_ton_per_order = 50\nkyc = true\n'
                f'cookies = "{COOKIES}"\nchromium_path = "{tmp_path / "no-chromium"}"\n'
                f'browser_profile_dir = "{tmp_path / "profile"}"\n'
            )
        )
        serve = ServeProcess(config)
        try:
            web_port = await serve.wait_ready()
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://127.0.0.1:{web_port}/health")).status_code == 200
                detailed = await http.get(f"http://127.0.0.1:{web_port}/health/detailed")
                assert detailed.status_code == 200, detailed.text
                cookies = json.loads(detailed.text)["services"]["cookies"]
                assert cookies["state"] == "off" and "apt-get install chromium" in cookies["reason"]
                metrics_line = next(
                    str(e["message"])
                    for e in serve.lines()
                    if str(e.get("message", "")).startswith("metrics on http://")
                )
                metrics = await http.get(metrics_line.removeprefix("metrics on "))
                assert service_up(metrics.text, "cookies") == 0
            alert = await telegram.wait_for_call(
                "sendMessage", predicate=lambda c: c.params["chat_id"] == ADMIN, timeout=15
            )
            assert "apt-get install chromium" in alert.params["text"]
            assert serve.process.poll() is None, "the shop must keep running"
        finally:
            serve.kill()
        group.cancel_scope.cancel()
    assert COOKIES not in serve.output and "Traceback" not in serve.output


async def crashing(runs: list[int], *, task_status: TaskStatus[None]) -> None:
    runs.append(1)
    task_status.started()
    await anyio.sleep(0.01)
    raise RuntimeError("boom")


async def steady(lifecycle: Lifecycle, *, task_status: TaskStatus[None]) -> None:
    task_status.started()
    await lifecycle.stopping.wait()


async def test_an_optional_crash_loop_turns_it_off_and_the_shop_runs_on() -> None:
    lifecycle, metrics, alerts, runs = Lifecycle(), Metrics(), [], []

    async def alert(text: str) -> None:
        alerts.append(text)

    async with anyio.create_task_group() as group:
        supervisor = Supervisor(FAST, lifecycle, metrics, group, alert=alert)
        await supervisor.start("orders", partial(steady, lifecycle))
        await supervisor.start("broadcast", partial(crashing, runs), optional=True)
        with anyio.fail_after(5):
            while supervisor.services.get("broadcast") != "off":
                await anyio.sleep(0.01)
        assert len(runs) == FAST.max_restarts + 1, "restarted like any service before giving up"
        assert not lifecycle.stopping.is_set(), "an optional crash loop must not stop the shop"
        assert supervisor.report()["orders"] == ("running", "")
        assert "boom" in supervisor.report()["broadcast"][1]
        assert len(alerts) == 1 and "broadcast is off" in alerts[0]
        lifecycle.request_stop("test over")
    assert lifecycle.exit_code == 0
