"""Keeping the Fragment login alive for KYC purchases, and saying when it is gone.

What can be automated (refs/fragment.md §4): visiting fragment.com with the browser profile that
holds the login touches the session, so its cookies are renewed and can be stored. What cannot:
logging in. Fragment's login is Telegram's, and a human must confirm it in a Telegram app (a QR
code or a confirmation message) every time. So the refresher keeps a live session alive and pages
the admins once when it is lost; `shopbot fragment login` (or an import) brings it back.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
from anyio.abc import TaskStatus

from shopbot.config.schema import FragmentConfig
from shopbot.config.secret import Secret
from shopbot.errors import ShopbotError
from shopbot.fulfilment.browser import (
    check_chromium,
    chromium_path,
    is_playwright_error,
    open_browser,
    prepare_profile,
    put_stored_cookies,
    read_session,
)
from shopbot.fulfilment.cookies import CookieStore, parse_cookies
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics

if TYPE_CHECKING:  # Playwright itself loads when the first browser is launched (browser.open_browser)
    from playwright.async_api import BrowserContext, Page

log = logging.getLogger(__name__)

NAVIGATION_SECONDS = 30.0
REFRESH_SECONDS = 90.0  # a whole refresh, launch to close
FAILURES_BEFORE_ALERT = 3
STORE_CHECK_SECONDS = 30.0  # how soon cookies stored by `shopbot fragment login|import-cookies` are used
LOGIN_SECONDS = 300.0
HOW_TO_RESTORE = (
    "run `shopbot fragment login` on the shop's server (someone must confirm the login in "
    "Telegram) or `shopbot fragment import-cookies`"
)

Alert = Callable[[str], Awaitable[None] | None]
OnRefreshed = Callable[[Secret], Awaitable[None] | None]


class LoginError(ShopbotError):
    """`shopbot fragment login` ended without a logged-in session; nothing was stored."""


class RefreshResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one refresh found; `detail` is for operators and never holds a cookie value."""

    status: Literal["refreshed", "session_lost", "failed"]
    detail: str
    expires_at: datetime | None = None
    changed: bool = False  # the cookies differ from those in use: on_refreshed was called
    alerted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "refreshed"


def _describe(exc: Exception) -> str:
    """One line: Playwright's messages go on with a call log, which an alert does not need."""
    if isinstance(exc, ShopbotError):
        return str(exc)
    if type(exc) is TimeoutError:
        return f"the refresh took longer than {REFRESH_SECONDS:g} s"
    lines = (exc.message if is_playwright_error(exc) else str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


async def _call(callback: Callable[[Any], Awaitable[None] | None], argument: Any, what: str) -> bool:
    try:
        result = callback(argument)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("the cookie refresher's %s callback failed", what)
        return False
    return True


async def _main_page(context: BrowserContext) -> Page:
    return context.pages[0] if context.pages else await context.new_page()


class CookieRefresher:
    """A supervisor service: refreshes at start and every `cookie_refresh_interval` seconds.

    `on_refreshed(header)` is called whenever the cookies to use differ from those in use (`in_use`:
    what the Fragment client was built with): after a refresh, or within `store_check_seconds` of
    another process storing cookies (`shopbot fragment login`, `import-cookies`). `alert(text)` is
    called once per lost session, and once per streak of failed refreshes. Both may be plain or async.
    """

    def __init__(
        self,
        store: CookieStore,
        config: FragmentConfig,
        lifecycle: Lifecycle,
        *,
        alert: Alert,
        on_refreshed: OnRefreshed,
        in_use: Secret | None = None,
        metrics: Metrics | None = None,
        store_check_seconds: float = STORE_CHECK_SECONDS,
    ) -> None:
        self.store = store
        self.config = config
        self.lifecycle = lifecycle
        self.alert = alert
        self.on_refreshed = on_refreshed
        self.in_use = in_use
        self.metrics = metrics
        self.store_check_seconds = store_check_seconds
        self.last: RefreshResult | None = None
        self._lock = anyio.Lock()
        self._failures = 0
        self._alerted_without_cookies = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        check_chromium(chromium_path(self.config))  # a shop that cannot refresh should not boot as if it could
        task_status.started()
        async with anyio.create_task_group() as group:
            group.start_soon(self._refresh_periodically, name="fragment cookie refresh")
            group.start_soon(self._watch_store, name="fragment cookie store watch")
            await self.lifecycle.stopping.wait()
            # Mid-refresh too: open_browser closes Chromium shielded on the way out.
            group.cancel_scope.cancel()

    async def _refresh_periodically(self) -> None:
        while True:
            await self.refresh_now()
            await anyio.sleep(self.config.cookie_refresh_interval)

    async def _watch_store(self) -> None:
        while True:
            await anyio.sleep(self.store_check_seconds)
            try:
                async with self._lock:
                    if (header := await self.store.current()) is not None:
                        await self._hand_over(header)
            except Exception as exc:
                log.warning("cannot check the stored Fragment cookies: %s", _describe(exc))

    async def _hand_over(self, header: Secret) -> bool:
        """Give the Fragment client these cookies unless it has them already; True when it got them."""
        if header == self.in_use:
            return False
        if await _call(self.on_refreshed, header, "on_refreshed"):
            self.in_use = header
        return True

    async def refresh_now(self) -> RefreshResult:
        """Visit Fragment with the profile now (after any refresh in progress) and act on what it shows."""
        async with self._lock:
            started = time.monotonic()
            try:
                result = await self._refresh()
            except Exception as exc:
                result = await self._failed(_describe(exc))
            self.last = msgspec.structs.replace(result, seconds=round(time.monotonic() - started, 3))
            return self.last

    async def _refresh(self) -> RefreshResult:
        stored = await self.store.latest()
        url = self.config.login_url
        with anyio.fail_after(REFRESH_SECONDS):
            async with open_browser(self.config, headless=True) as context:
                await put_stored_cookies(context, url, stored)
                page = await _main_page(context)
                await page.goto(url, wait_until="load", timeout=NAVIGATION_SECONDS * 1000)
                session = await read_session(context, page, url)
        self._failures = 0
        if problem := session.problem(url):
            return await self._lost(problem, stored.id if stored else None)
        cookies = session.cookies()
        header = cookies.header()
        await self.store.save(header, source="refresh", expires_at=cookies.expires_at)
        self._alerted_without_cookies = False
        changed = await self._hand_over(header)
        log.info("Fragment cookies refreshed: %s%s", cookies.describe(), " (new values)" if changed else "")
        return RefreshResult(
            status="refreshed", detail=cookies.describe(), expires_at=cookies.expires_at, changed=changed
        )

    async def _lost(self, problem: str, cookie_id: int | None) -> RefreshResult:
        # One alert per lost session: the claim is stored on the cookies' row, so a restart or the next
        # interval finds it taken; new cookies are a new row and will be reported when they are lost.
        if cookie_id is not None:
            await self.store.mark_checked(cookie_id)
            claimed = await self.store.claim_alert(cookie_id)
        else:
            claimed, self._alerted_without_cookies = not self._alerted_without_cookies, True
        log.warning("Fragment session lost: %s%s", problem, "" if claimed else " (reported before)")
        if claimed:
            await _call(
                self.alert,
                f"Fragment session lost: {problem}. KYC purchases of Stars and Premium will "
                f"fail until someone logs in again: {HOW_TO_RESTORE}.",
                "alert",
            )
        return RefreshResult(status="session_lost", detail=problem, alerted=claimed)

    async def _failed(self, detail: str) -> RefreshResult:
        self._failures += 1
        if self.metrics is not None:
            self.metrics.errors.labels("cookie_refresh").inc()
        log.warning("Fragment cookie refresh failed (%d in a row): %s", self._failures, detail)
        alerted = self._failures == FAILURES_BEFORE_ALERT
        if alerted:
            await _call(
                self.alert,
                f"The Fragment cookie refresher failed {self._failures} times in a row "
                f"(last: {detail}); the Fragment session is not being kept alive.",
                "alert",
            )
        return RefreshResult(status="failed", detail=detail, alerted=alerted)


async def import_cookies(store: CookieStore, text: str) -> str:
    """Store pasted cookies (Header String, or Cookie-Editor's JSON/Netscape export); a one-line summary."""
    cookies = parse_cookies(text)
    await store.save(cookies.header(), source="import", expires_at=cookies.expires_at)
    summary = f"imported {cookies.describe()}"
    if "stel_ton_token" not in cookies.names:
        summary += "; no stel_ton_token: connect a TON wallet on fragment.com, then export again"
    return summary


async def login(
    store: CookieStore,
    config: FragmentConfig,
    *,
    timeout: float = LOGIN_SECONDS,
    headless: bool | None = None,
    echo: Callable[[str], None] = print,
    poll_seconds: float = 1.0,
) -> str:
    """Log the browser profile in to Fragment and store its cookies (source 'login'); a one-line summary.

    This cannot be automated: Fragment logs in through Telegram, and a human must confirm that login
    in a Telegram app. With a display (DISPLAY set) a Chromium window opens on `login_url`: click
    "Log in" and confirm in Telegram. Without one, Chromium runs headless; this clicks "Log in" and
    prints what Telegram's login window shows (its text and tg://login links) and keeps a screenshot
    of it (with the QR code) in the profile directory. Waits up to `timeout` seconds for `stel_token`,
    else raises LoginError and stores nothing. Refused while the refresher has the profile open.
    """
    headless = not os.environ.get("DISPLAY") if headless is None else headless
    url = config.login_url
    stored = await store.latest()
    async with open_browser(config, headless=headless) as context:
        from playwright.async_api import Error as PlaywrightError  # loaded by open_browser

        await put_stored_cookies(context, url, stored)
        page = await _main_page(context)
        await page.goto(url, wait_until="load", timeout=NAVIGATION_SECONDS * 1000)
        session = await read_session(context, page, url)
        if session.problem(url):
            if headless:
                await _open_login_window(page, echo)
            else:
                echo(
                    f'A Chromium window shows {url}: click "Log in" and confirm the login in Telegram. '
                    f"Waiting up to {timeout:g} s."
                )
            shown = _LoginWindows(prepare_profile(config.browser_profile_dir) / "fragment-login.png", echo)
            with anyio.move_on_after(timeout):
                while session.problem(url):
                    await anyio.sleep(poll_seconds)
                    if page.is_closed():
                        raise LoginError("the Fragment window was closed before the login finished; nothing was stored")
                    if headless:
                        await shown.update(context)
                    try:
                        session = await read_session(context, page, url)
                    except PlaywrightError:
                        continue  # the page is reloading after the login: look again next time
            if problem := session.problem(url):
                raise LoginError(
                    f"nobody completed the Telegram login within {timeout:g} s ({problem}); nothing was stored"
                )
    cookies = session.cookies()
    await store.save(cookies.header(), source="login", expires_at=cookies.expires_at)
    return f"logged in to Fragment; stored {cookies.describe()}"


async def _open_login_window(page: Page, echo: Callable[[str], None]) -> None:
    button = page.locator(".login-link, button:text-is('Log in'), a:text-is('Log in')").first
    if await button.count() and await button.is_visible():
        await button.click()
        echo(
            "No display: clicked Fragment's \"Log in\" in a headless Chromium. Telegram's login window follows; "
            "confirm the login in a Telegram app (or scan the QR code in the screenshot below)."
        )
    else:
        echo('No display, and Fragment shows no "Log in" button; what the page shows follows.')


class _LoginWindows:
    """Prints what the login windows show when it changes, and keeps a screenshot of the newest."""

    def __init__(self, screenshot: Path, echo: Callable[[str], None]) -> None:
        self.screenshot = screenshot
        self.echo = echo
        self.said: set[str] = set()

    async def update(self, context: BrowserContext) -> None:
        from playwright.async_api import Error as PlaywrightError  # loaded by open_browser

        pages = [page for page in context.pages if not page.is_closed()]
        if not pages:
            return
        try:
            newest = pages[-1]
            await newest.screenshot(path=self.screenshot, timeout=5000)
            text = " ".join((await newest.inner_text("body", timeout=5000)).split())[:600]
            links = await newest.eval_on_selector_all("a[href^='tg:']", "links => links.map(a => a.href)")
        except PlaywrightError:
            return  # navigating or closing: next time
        for line in (
            f"{newest.url}: {text}",
            *(f"link: {link}" for link in links),
            f"screenshot (QR code): {self.screenshot}",
        ):
            if line not in self.said:
                self.said.add(line)
                self.echo(line)
