"""Debian's Chromium driven by Playwright, on the persistent profile that holds the Fragment login.

One browser per job, always closed: Chromium takes about 470 MB while it runs. A profile can be
open in one Chromium at a time, so a second job (say `shopbot fragment login` while the shop's
refresher runs) is refused with a clear error instead of a confusing launch failure.

Playwright is imported when a browser is first launched, in a worker thread (about 0.4 s and 10 MB that
a shop which never launches one does not pay); checking that Chromium is installed needs only its path.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import anyio

from shopbot.config.schema import FragmentConfig
from shopbot.errors import ShopbotError
from shopbot.fulfilment.cookies import REQUIRED, CookieSet, StoredCookies, session_expiry

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page
    from playwright.async_api import Error as PlaywrightError

log = logging.getLogger(__name__)

PLAYWRIGHT = "playwright.async_api"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# From refs/telegram.md: --no-sandbox because the shop may run as root; the rest keeps a server quiet.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
LAUNCH_SECONDS = 30.0
CLOSE_SECONDS = 10.0
LEFTOVER_GRACE_SECONDS = 2.0


class ChromiumMissingError(ShopbotError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"Chromium is not installed at {path}; install Debian's chromium package "
            "(apt-get install chromium) or set fragment.chromium_path"
        )


class BrowserProfileBusyError(ShopbotError):
    def __init__(self, profile: Path, pids: list[int]) -> None:
        self.pids = pids
        super().__init__(
            f"the browser profile {profile} is in use by Chromium (pid {', '.join(map(str, pids))}): "
            "another refresh or `shopbot fragment login` is running; try again when it ends"
        )


async def load_playwright() -> None:
    """Import Playwright (once; later calls find it loaded) in a worker thread, so the event loop keeps serving."""
    await anyio.to_thread.run_sync(importlib.import_module, PLAYWRIGHT)


def is_playwright_error(exc: BaseException) -> TypeGuard[PlaywrightError]:
    """Whether exc is Playwright's Error, without importing Playwright: until it is loaded, nothing raised it."""
    api = sys.modules.get(PLAYWRIGHT)
    return api is not None and isinstance(exc, api.Error)


def chromium_path(config: FragmentConfig) -> Path:
    return Path(config.chromium_path or DEFAULT_CHROMIUM)


def check_chromium(path: Path) -> Path:
    """The Chromium executable, or ChromiumMissingError."""
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ChromiumMissingError(path)
    return path


def prepare_profile(directory: str) -> Path:
    """The profile directory, created if needed and readable by its owner only (it holds the login)."""
    profile = Path(directory).expanduser().resolve()
    profile.mkdir(mode=0o700, parents=True, exist_ok=True)
    profile.chmod(0o700)
    return profile


def profile_processes(profile: Path) -> list[int]:
    """Pids of processes whose command line names this profile (Chromium passes --user-data-dir to its children)."""
    needle = f"--user-data-dir={profile}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if needle in arguments:
            pids.append(int(entry.name))
    return pids


@asynccontextmanager
async def open_browser(config: FragmentConfig, *, headless: bool = True) -> AsyncIterator[BrowserContext]:
    """Launch Chromium on the persistent profile; it is closed on the way out, also when cancelled."""
    executable = check_chromium(chromium_path(config))
    profile = prepare_profile(config.browser_profile_dir)
    if busy := profile_processes(profile):
        raise BrowserProfileBusyError(profile, busy)
    args = [*CHROMIUM_FLAGS, "--headless"] if headless else list(CHROMIUM_FLAGS)
    launched: set[int] = set()
    await load_playwright()
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        context = await playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=headless, args=args, timeout=LAUNCH_SECONDS * 1000
        )
        # Chromium's own profile lock makes these ours alone: a second Chromium on the profile would have exited.
        launched.update(profile_processes(profile))
        try:
            yield context
        finally:
            # Shielded: a stop that arrives mid-refresh must not leave a 470 MB browser behind.
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                try:
                    await context.close()
                except PlaywrightError as exc:
                    log.debug("closing Chromium: %s", exc.message)
    finally:
        with anyio.move_on_after(CLOSE_SECONDS, shield=True):
            try:
                await playwright.stop()
            except Exception as exc:
                log.debug("stopping Playwright: %s", exc)
            await _end_leftovers(profile, launched)


async def _end_leftovers(profile: Path, launched: set[int]) -> None:
    # Playwright ends its browsers itself, even after a launch cancelled halfway; a process launched
    # here that still runs after that (a hung Chromium) is killed, by pid, never by name.
    def alive() -> list[int]:
        return [pid for pid in profile_processes(profile) if pid in launched]

    with anyio.move_on_after(LEFTOVER_GRACE_SECONDS):
        while alive():  # noqa: ASYNC110 - the OS's process table has no event to wait on: it is polled
            await anyio.sleep(0.05)
    for pid in alive():
        log.warning("Chromium (pid %d) outlived its job; killing it", pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# What the page says about the login. fragment.com's own script keeps `Aj.state.unAuth` (true while
# logged out) and shows a `.login-link` "Log in" button; either is the logged-out state.
_LOGGED_OUT_JS = """() => {
  const state = window.Aj && window.Aj.state;
  if (state && typeof state.unAuth === 'boolean') return state.unAuth ? 'Aj.state.unAuth is true' : '';
  const shown = (el) => !!(el && (el.offsetWidth || el.offsetHeight || el.getClientRects().length));
  if (shown(document.querySelector('.login-link'))) return 'a login-link button is shown';
  for (const el of document.querySelectorAll('button, a')) {
    const text = (el.textContent || '').trim().toLowerCase();
    if ((text === 'log in' || text === 'connect telegram') && shown(el)) return 'a "' + text + '" button is shown';
  }
  return '';
}"""


class FragmentSession:
    """The stel_* cookies the browser holds for the login URL, and whether the page shows a login."""

    __slots__ = ("_values", "expiries", "logged_out")

    def __init__(self, values: dict[str, str], expiries: dict[str, float], logged_out: str) -> None:
        self._values = values
        self.expiries = expiries
        self.logged_out = logged_out

    def cookies(self) -> CookieSet:
        return CookieSet(self._values, session_expiry(self.expiries))

    def problem(self, url: str) -> str:
        """Why this is not a usable session, or "" when it is."""
        if self.logged_out:
            return f"{url} shows Fragment's logged-out state ({self.logged_out})"
        missing = [name for name in REQUIRED if not self._values.get(name)]
        if missing:
            return f"no {' and no '.join(missing)} cookie after loading {url}"
        return ""

    def __repr__(self) -> str:
        return f"FragmentSession(names={tuple(self._values)!r}, logged_out={self.logged_out!r})"


async def read_session(context: BrowserContext, page: Page, url: str) -> FragmentSession:
    """The Fragment cookies in the browser for url (names starting with stel_) and the page's login state."""
    cookies = [cookie for cookie in await context.cookies(url) if cookie.get("name", "").startswith("stel_")]
    logged_out = await page.evaluate(_LOGGED_OUT_JS)
    return FragmentSession(
        {cookie["name"]: cookie["value"] for cookie in cookies},
        {cookie["name"]: cookie.get("expires", -1) for cookie in cookies},
        str(logged_out or ""),
    )


async def put_stored_cookies(context: BrowserContext, url: str, stored: StoredCookies | None) -> list[str]:
    """Give the browser the stored cookies it lacks or holds different values for; return their names.

    After a refresh the two agree and nothing changes. They differ after an import (the operator's
    cookies win) or when Chromium was killed before it wrote its cookie database to the profile.
    """
    if stored is None:
        return []
    held = {cookie["name"]: cookie["value"] for cookie in await context.cookies(url)}
    values = stored.values
    # Without a known future expiry they go in as session cookies: the visit gives them Fragment's own.
    expiry = stored.expires_at.timestamp() if stored.expires_at and stored.expires_at > datetime.now(UTC) else -1
    changed = [name for name, value in values.items() if held.get(name) != value]
    if changed:
        await context.add_cookies(
            [
                {
                    "name": name,
                    "value": values[name],
                    "url": url,
                    "expires": expiry,
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
                for name in changed
            ]
        )
    return changed
