"""Fragment cookies for KYC mode: pasting them in, the store, and the refresher in a real headless Chromium."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from shopbot.config.schema import FragmentConfig
from shopbot.config.secret import Secret
from shopbot.fulfilment.browser import (
    BrowserProfileBusyError,
    ChromiumMissingError,
    open_browser,
    prepare_profile,
    profile_processes,
)
from shopbot.fulfilment.cookies import KEEP_ROWS, CookieFormatError, CookieStore, parse_cookie_header, parse_cookies
from shopbot.fulfilment.refresher import FAILURES_BEFORE_ALERT, CookieRefresher, LoginError, import_cookies, login
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.fragment_login import FakeFragmentSite, serve_fake_fragment

CHROMIUM = Path("/usr/bin/chromium")


def chromium_missing() -> str:
    """Why the browser tests cannot run here, or "" when they can (the one skip reason of this file)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return ""
    return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"


needs_chromium = pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "-")

TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0deadbeefcafe"
HEADER = f"stel_ssid=0123456789abcdef0123456789abcdef; stel_dt=-180; stel_token={TOKEN}; stel_ton_token=tontok3n"


async def count_rows(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM fragment_cookies")


# --- pasting cookies in ---------------------------------------------------------------------------------------


async def test_a_pasted_header_is_imported_and_summarised_without_values(pool: asyncpg.Pool) -> None:
    store = CookieStore(pool)
    summary = await import_cookies(store, f"  Cookie: {HEADER}\n")
    assert summary == "imported stel_ssid, stel_dt, stel_token, stel_ton_token; expiry unknown"
    assert TOKEN not in summary
    assert (await store.current()) == Secret(HEADER)
    latest = await store.latest()
    assert latest is not None and latest.source == "import" and latest.expires_at is None
    assert TOKEN not in repr(latest)


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        (
            f"stel_ssid=abc; stel_dt=-180; stel_ton_token={TOKEN}",
            "the pasted cookies have no stel_token (found stel_ssid, stel_dt, stel_ton_token): that is not a logged-in "
            'Fragment session; export the "Header String" of fragment.com with Cookie-Editor while logged in',
        ),
        (TOKEN, "part 1 of the pasted cookies is not name=value"),
        (TOKEN + "==", "the pasted cookies have no stel_ssid and no stel_token (found no Fragment cookies and 1 other"),
        (f"stel_ssid=abc; {TOKEN}; stel_token", "part 2 of the pasted cookies is not name=value"),
        (f"stel_ssid=abc; stel_token=a b{TOKEN}", "part 2 of the pasted cookies is not name=value"),
        (f'[{{"name": "stel_token", "value": "{TOKEN}"', "the pasted text looks like JSON but is not a cookie export"),
    ],
)
async def test_cookies_without_a_login_are_refused_without_echoing_them(
    pool: asyncpg.Pool, pasted: str, expected: str
) -> None:
    with pytest.raises(CookieFormatError) as caught:
        await import_cookies(CookieStore(pool), pasted)
    assert str(caught.value).startswith(expected)
    assert TOKEN not in str(caught.value)
    assert await count_rows(pool) == 0


def test_exports_that_carry_expiries_give_the_earliest_session_expiry() -> None:
    soon, later = 1_900_000_000, 1_900_086_400
    json_export = (
        f'[{{"domain": ".fragment.com", "name": "stel_ssid", "value": "s1", "expirationDate": {later}}},'
        f' {{"domain": "fragment.com", "name": "stel_token", "value": "t1", "expirationDate": {soon}}},'
        ' {"domain": "fragment.com", "name": "stel_dt", "value": "-180", "expirationDate": 1},'
        ' {"domain": "oauth.telegram.org", "name": "stel_token", "value": "other-site"}]'
    )
    cookies = parse_cookies(json_export)
    assert cookies.header() == Secret("stel_ssid=s1; stel_dt=-180; stel_token=t1")
    assert cookies.expires_at == datetime.fromtimestamp(soon, UTC)  # stel_dt is a timezone, not the session
    netscape = (
        f"# Netscape HTTP Cookie File\n.fragment.com\tTRUE\t/\tTRUE\t{later}\tstel_ssid\ts1\n"
        f"#HttpOnly_fragment.com\tFALSE\t/\tTRUE\t{soon}\tstel_token\tt1\n"
    )
    assert parse_cookies(netscape).expires_at == datetime.fromtimestamp(soon, UTC)
    assert "t1" not in repr(cookies)
    assert parse_cookie_header('"stel_ssid=s; stel_token=t"') == {"stel_ssid": "s", "stel_token": "t"}


async def test_current_is_the_newest_and_old_secrets_are_pruned(pool: asyncpg.Pool) -> None:
    store = CookieStore(pool)
    assert await store.current() is None
    config_cookies = Secret("stel_ssid=c; stel_token=from-config")
    assert await store.adopt_config(config_cookies)
    expiry = datetime.now(UTC) + timedelta(days=1)
    for n in range(KEEP_ROWS + 5):
        await store.save(f"stel_ssid=s; stel_token=t{n}", source="refresh", expires_at=expiry)
    assert await store.current() == Secret(f"stel_ssid=s; stel_token=t{KEEP_ROWS + 4}")
    latest = await store.latest()
    assert latest is not None and latest.source == "refresh" and latest.expires_at == expiry
    assert await count_rows(pool) == KEEP_ROWS + 1  # the config row stays: it is the newest of its source
    # A restart with the same config keeps the refreshed cookies in front; changed config cookies win.
    assert not await store.adopt_config(config_cookies)
    assert await store.current() == Secret(f"stel_ssid=s; stel_token=t{KEEP_ROWS + 4}")
    assert await store.adopt_config(Secret("stel_ssid=c; stel_token=new-config"))
    assert await store.current() == Secret("stel_ssid=c; stel_token=new-config")


async def test_a_missing_chromium_is_one_clear_error(pool: asyncpg.Pool, tmp_path: Path) -> None:
    config = FragmentConfig(chromium_path=str(tmp_path / "chromium"), browser_profile_dir=str(tmp_path / "profile"))
    alerts: list[str] = []
    refresher = CookieRefresher(CookieStore(pool), config, Lifecycle(), alert=alerts.append, on_refreshed=print)
    with pytest.raises(ChromiumMissingError) as caught:
        await refresher.run()
    assert str(caught.value) == (
        f"Chromium is not installed at {tmp_path / 'chromium'}; install Debian's chromium "
        "package (apt-get install chromium) or set fragment.chromium_path"
    )
    # Asked to refresh anyway: each attempt fails with that line, and the admins hear of it once per streak.
    results = [await refresher.refresh_now() for _ in range(FAILURES_BEFORE_ALERT + 1)]
    assert {result.detail for result in results} == {str(caught.value)}
    assert [result.alerted for result in results] == [False] * (FAILURES_BEFORE_ALERT - 1) + [True, False]
    assert len(alerts) == 1 and str(caught.value) in alerts[0]


# --- the refresher against the fake fragment.com, in headless Chromium ------------------------------------------


@dataclass
class Site:
    fake: FakeFragmentSite
    url: str
    config: FragmentConfig
    alerts: list[str] = field(default_factory=list)
    refreshed: list[Secret] = field(default_factory=list)

    def refresher(self, pool: asyncpg.Pool, lifecycle: Lifecycle | None = None, **options: Any) -> CookieRefresher:
        return CookieRefresher(
            CookieStore(pool),
            self.config,
            lifecycle or Lifecycle(),
            alert=self.alerts.append,
            on_refreshed=self.refreshed.append,
            **options,
        )

    @property
    def profile(self) -> Path:
        return prepare_profile(self.config.browser_profile_dir)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    fake = FakeFragmentSite()
    async with anyio.create_task_group() as group:
        port = await group.start(serve_fake_fragment, fake)
        url = f"http://127.0.0.1:{port}/"
        yield Site(fake, url, FragmentConfig(login_url=url, browser_profile_dir=str(tmp_path / "profile")))
        group.cancel_scope.cancel()


@needs_chromium
async def test_a_refresh_stores_fresher_cookies_and_rebuilds_the_client_once(
    pool: asyncpg.Pool, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store, refresher = CookieStore(pool), site.refresher(pool)
    first = await refresher.refresh_now()
    assert first.ok and first.changed, first
    assert first.expires_at is not None and abs(first.expires_at - site.fake.expires_at) < timedelta(seconds=1)
    header = await store.current()
    assert header is not None and site.refreshed == [header]
    assert parse_cookie_header(header.reveal()) == {
        "stel_ssid": site.fake.ssid,
        "stel_dt": "-180",
        "stel_token": site.fake.token,
        "stel_ton_token": site.fake.ton_token,
    }
    second = await refresher.refresh_now()
    assert second.ok and not second.changed
    assert second.expires_at is not None and second.expires_at > first.expires_at
    latest = await store.latest()
    assert latest is not None and (latest.source, latest.expires_at) == ("refresh", second.expires_at)
    assert len(site.refreshed) == 1, "the same cookies again must not rebuild the Fragment client"
    assert site.fake.visits == 2 and site.alerts == []
    assert profile_processes(site.profile) == []
    for secret in (site.fake.ssid, site.fake.token, site.fake.ton_token):
        assert secret not in caplog.text
    print(f"refresh cycles in headless Chromium: {first.seconds:.2f} s, {second.seconds:.2f} s")


@needs_chromium
async def test_a_lost_session_alerts_once_until_the_next_login(pool: asyncpg.Pool, site: Site) -> None:
    refresher = site.refresher(pool)
    assert (await refresher.refresh_now()).ok
    stored = await count_rows(pool)
    site.fake.logged_in = False
    results = [await refresher.refresh_now() for _ in range(3)]
    assert [(r.status, r.alerted) for r in results] == [("session_lost", True)] + [("session_lost", False)] * 2
    assert "logged-out state (Aj.state.unAuth is true)" in results[0].detail
    assert len(site.alerts) == 1
    assert site.alerts[0].startswith("Fragment session lost: ") and "shopbot fragment login" in site.alerts[0]
    assert await count_rows(pool) == stored, "a lost session must store nothing"
    # A restarted shop remembers that this loss was reported.
    assert not (await site.refresher(pool).refresh_now()).alerted
    site.fake.logged_in = True  # someone ran `shopbot fragment login`
    again = await refresher.refresh_now()
    assert again.ok and again.changed and len(site.refreshed) == 2
    assert site.refreshed[-1] == await CookieStore(pool).current()
    site.fake.logged_in = False
    assert (await refresher.refresh_now()).alerted
    assert len(site.alerts) == 2


@needs_chromium
async def test_cookies_stored_meanwhile_reach_the_running_shop(pool: asyncpg.Pool, site: Site) -> None:
    lifecycle = Lifecycle()
    refresher = site.refresher(pool, lifecycle, store_check_seconds=0.1)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            await group.start(refresher.run)
            while refresher.last is None:
                await anyio.sleep(0.05)
            assert refresher.last.ok and len(site.refreshed) == 1
            await import_cookies(CookieStore(pool), HEADER)  # `shopbot fragment import-cookies` in another process
            while len(site.refreshed) < 2:
                await anyio.sleep(0.05)
            assert site.refreshed[-1] == Secret(HEADER)
            await anyio.sleep(0.3)
            lifecycle.request_stop("test over")
    assert len(site.refreshed) == 2, "the same cookies must be handed over once"


@needs_chromium
async def test_stopping_mid_refresh_closes_chromium(
    pool: asyncpg.Pool, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.fake.delay = 60  # the page never finishes loading before the stop
    lifecycle = Lifecycle()
    refresher = site.refresher(pool, lifecycle)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            await group.start(refresher.run)
            while site.fake.visits == 0:
                await anyio.sleep(0.05)
            assert profile_processes(site.profile), "Chromium should be running mid-refresh"
            stop_requested = time.monotonic()
            lifecycle.request_stop("test over")
        stopped_in = time.monotonic() - stop_requested
    assert stopped_in < 5, stopped_in
    print(f"stopped mid-refresh in {stopped_in:.2f} s")
    assert profile_processes(site.profile) == []
    # Closed by Playwright, not killed afterwards ("outlived its job"), and nothing else complained.
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert refresher.last is None and site.alerts == [] and await count_rows(pool) == 0


@needs_chromium
async def test_the_profile_is_refused_while_another_chromium_has_it(site: Site) -> None:
    async with open_browser(site.config):
        with pytest.raises(BrowserProfileBusyError, match="is in use by Chromium"):
            async with open_browser(site.config):
                pass
    assert profile_processes(site.profile) == []


@needs_chromium
async def test_login_waits_for_the_human_then_stores_the_session(pool: asyncpg.Pool, site: Site) -> None:
    site.fake.logged_in = False
    lines: list[str] = []
    summary: list[str] = []

    async def log_in() -> None:
        summary.append(
            await login(CookieStore(pool), site.config, headless=True, echo=lines.append, poll_seconds=0.1, timeout=20)
        )

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(log_in)
            while not any(line.startswith("link: tg://login?token=") for line in lines):
                await anyio.sleep(0.05)
            assert site.fake.login_pages == 1 and await count_rows(pool) == 0
            async with httpx.AsyncClient() as client:  # the human confirms in Telegram
                assert (await client.post(site.url + "login")).status_code == 303
    assert summary == [
        f"logged in to Fragment; stored stel_ssid, stel_dt, stel_token, stel_ton_token; "
        f"expires {site.fake.expires_at:%Y-%m-%d %H:%M} UTC"
    ]
    assert 'clicked Fragment\'s "Log in"' in lines[0]
    print("\n".join(lines))
    assert (site.profile / "fragment-login.png").stat().st_size > 0
    latest = await CookieStore(pool).latest()
    assert latest is not None and latest.source == "login" and site.fake.token in latest.header.reveal()
    assert profile_processes(site.profile) == []


@needs_chromium
async def test_login_without_a_confirmation_times_out_and_stores_nothing(pool: asyncpg.Pool, site: Site) -> None:
    site.fake.logged_in = False
    with pytest.raises(LoginError, match="nobody completed the Telegram login within 1 s"):
        await login(CookieStore(pool), site.config, headless=True, echo=lambda line: None, timeout=1, poll_seconds=0.1)
    assert await count_rows(pool) == 0
    assert profile_processes(site.profile) == []
