"""`shopbot fragment check`: the operator's pre-flight before selling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from shopbot.config.schema import Config
from shopbot.errors import ShopbotError
from shopbot.fulfilment.fragment import NANO, FragmentClient, FragmentFailure

CookieCheck = Callable[[], Awaitable[str | None]]


@dataclass
class Preflight:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.lines.append(f"ok    {text}")

    def fail(self, text: str) -> None:
        self.lines.append(f"FAIL  {text}")
        self.problems.append(text)


async def run_preflight(config: Config, cookie_check: CookieCheck | None = None) -> Preflight:
    """Configuration, wallet, cookies and the service, each reported on its own line."""
    report = Preflight()
    fragment = config.fragment
    if not fragment.seed_phrase:
        report.fail("fragment.seed_phrase is not set")
    if fragment.max_ton_per_order <= 0:
        report.fail("fragment.max_ton_per_order is not set: nothing would be signed")
    if report.problems:
        return report
    try:
        client = FragmentClient(fragment)
    except ShopbotError as exc:
        report.fail(str(exc))
        return report
    report.ok(f"wallet {client.address} ({fragment.wallet_type}); at most {fragment.max_ton_per_order} TON per order")
    if fragment.kyc:
        problem = await cookie_check() if cookie_check else (None if fragment.cookies else "no cookies configured")
        if problem:
            report.fail(f"Fragment cookies: {problem} (kyc = true needs them; see `shopbot fragment login`)")
        else:
            report.ok("Fragment cookies are present")
    else:
        report.ok("kyc = false: the service buys through its own account; no cookies needed")
    try:
        info = await client.wallet_info()
    except FragmentFailure as exc:
        report.fail(f"the Fragment service at {fragment.base_url} did not answer as expected: {exc}")
        return report
    balance = Decimal(str(info.get("balance_nano", "0"))) / NANO
    line = f"service reachable; wallet {info.get('state', '?')}, balance {balance:.4f} TON"
    if balance < fragment.low_balance_ton:
        report.fail(line + f" — below the alert level of {fragment.low_balance_ton} TON")
    else:
        report.ok(line)
    return report
