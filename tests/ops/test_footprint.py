"""Start-up loads only what serving needs: matplotlib waits for the first chart, Playwright for the first browser.

Each check runs in a fresh interpreter, since this one has imported everything the other tests use. The time and
memory this saves are measured by the bench (`bench/run --only footprint`), never here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ops.serve_process import ROOT, clean_env

HEAVY = ("matplotlib", "playwright")
# httpx imports its command-line tool (rich, click, pygments) whenever click is installed; the shop's environment
# has none of them (import-linter, which brings them, has an environment of its own).
HTTPX_CLI = ("click", "rich")


def run_python(code: str, *args: str) -> dict[str, object]:
    """Run code in a new interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def loaded(modules: object, package: str) -> list[str]:
    assert isinstance(modules, list)
    return [name for name in modules if name == package or name.startswith(package + ".")]


IMPORTS_OF_SERVE = """
import gc, json, sys
from shopbot.cli.main import import_serve

import_serve()  # what `shopbot serve` imports before it starts the shop
print(json.dumps({"modules": sorted(sys.modules), "gc": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def test_shopbot_serve_imports_neither_matplotlib_nor_playwright() -> None:
    result = run_python(IMPORTS_OF_SERVE)
    # The collector is back on after the import, with what the import made set aside (frozen).
    assert result["gc"] is True
    assert isinstance(result["frozen"], int) and result["frozen"] > 0
    modules = result["modules"]
    for package in HEAVY + HTTPX_CLI:
        assert loaded(modules, package) == [], f"{package} is imported by `shopbot serve` before it starts"
    # Without KYC there is no cookie refresher, so neither it nor its browser module is loaded.
    assert loaded(modules, "shopbot.fulfilment.refresher") == []
    assert loaded(modules, "shopbot.fulfilment.browser") == []


READY_SHOP = """
import json, sys
from datetime import date, timedelta
from decimal import Decimal

import anyio

from shopbot.config.secret import Secret
from shopbot.sandbox.fragment import FragmentEmulator
from tests.shop_harness import running_shop

async def main(database_url, tmp):
    kyc = {
        "kyc": True,
        "cookies": Secret("stel_ssid=0123456789abcdef; stel_dt=-180; stel_token=9f8e7d6c5b4a3928"),
        "chromium_path": tmp + "/no-chromium",
        "browser_profile_dir": tmp + "/profile",
    }
    async with running_shop(database_url, fragment=FragmentEmulator(), fragment_keys=kyc,
                            telegram_keys={"admin_ids": (7001,)}) as shop:
        report = (await shop.http.get("/health/detailed")).json()
        with anyio.fail_after(20):  # the refresher's start, which checks for Chromium, has run
            while report["services"].get("cookies", {}).get("state") in (None, "starting", "restarting"):
                await anyio.sleep(0.05)
                report = (await shop.http.get("/health/detailed")).json()
        at_ready = sorted(sys.modules)
        from shopbot.bot.admin.chart import PNG_SIGNATURE, render_sales_chart

        first = date(2026, 1, 1)
        days = [(first + timedelta(days=n), Decimal(n), Decimal(n) / 4) for n in range(30)]
        png = await render_sales_chart(days, "USD", "Sales per day")
        print(json.dumps({
            "ready": report["ready"],
            "cookies": report["services"]["cookies"],
            "at_ready": at_ready,
            "png": png.startswith(PNG_SIGNATURE) and len(png) > 1000,
            "after_chart": sorted(sys.modules),
        }))

anyio.run(main, sys.argv[1], sys.argv[2])
"""


async def test_a_ready_shop_has_neither_until_a_chart_is_drawn(database_url: str, tmp_path: Path) -> None:
    # The whole wiring, KYC included: the refresher is built and its start-up check for Chromium has run.
    result = run_python(READY_SHOP, database_url, str(tmp_path))
    assert result["ready"] is True
    cookies = result["cookies"]
    assert isinstance(cookies, dict) and cookies["state"] == "off" and "apt-get install chromium" in cookies["reason"]
    for package in HEAVY:
        assert loaded(result["at_ready"], package) == [], f"{package} is loaded by a ready shop"
    assert loaded(result["at_ready"], "shopbot.fulfilment.refresher") != []
    # The first chart loads matplotlib, and it draws.
    assert result["png"] is True
    assert loaded(result["after_chart"], "matplotlib") != []
    assert loaded(result["after_chart"], "playwright") == []


BROWSER = """
import json, sys
import anyio
from shopbot.fulfilment.browser import is_playwright_error, load_playwright
from shopbot.fulfilment.refresher import _describe

async def main():
    before = "playwright" in sys.modules
    plain = _describe(RuntimeError("the database is away"))
    await load_playwright()
    from playwright.async_api import Error

    error = Error("Target page, context or browser has been closed\\nCall log: ...")
    print(json.dumps({
        "before": before,
        "plain": plain,
        "after": "playwright.async_api" in sys.modules,
        "recognised": is_playwright_error(error) and not is_playwright_error(RuntimeError("x")),
        "described": _describe(error),
    }))

anyio.run(main)
"""


def test_playwright_loads_when_a_browser_is_first_needed() -> None:
    result = run_python(BROWSER)
    assert result["before"] is False
    assert result["plain"] == "RuntimeError: the database is away"
    assert result["after"] is True
    assert result["recognised"] is True
    # Playwright's errors are still told by their first line, without the call log.
    assert result["described"] == "Error: Target page, context or browser has been closed"


def test_the_start_up_garbage_goes_back_to_the_system() -> None:
    # On glibc (every machine and image the shop ships for) the allocator's free pages are released once the
    # shop is ready; how much that saves is the bench's figure.
    result = run_python(
        "import json; from shopbot.app.memory import give_back_start_up_memory; "
        "print(json.dumps({'released': give_back_start_up_memory()}))"
    )
    assert result["released"] is True
