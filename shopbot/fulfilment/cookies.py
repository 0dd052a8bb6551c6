"""Fragment session cookies for KYC purchases: parsing what an operator pastes, and the store.

The cookies are a secret. Errors about them name cookies, never values; and only the names
Fragment uses are named, since a pasted value could look like a cookie name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg
import msgspec

from shopbot.config.secret import Secret
from shopbot.db.queries import queries
from shopbot.errors import ShopbotError

REQUIRED = ("stel_ssid", "stel_token")
# The cookies of a Fragment session: what expires with it. stel_dt is only the browser's timezone.
SESSION_COOKIES = ("stel_ssid", "stel_token", "stel_ton_token")
KNOWN = ("stel_ssid", "stel_dt", "stel_token", "stel_ton_token")
SOURCES = ("config", "import", "login", "refresh")
KEEP_ROWS = 20
FRAGMENT_DOMAIN = "fragment.com"
HOW_TO_EXPORT = 'export the "Header String" of fragment.com with Cookie-Editor while logged in'

_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VALUE = re.compile(r"^[\x21-\x7e]*$")  # visible ASCII: anything else cannot travel in a Cookie header
_export = msgspec.json.Decoder(list[dict[str, object]] | dict[str, object]).decode


class CookieFormatError(ShopbotError):
    """The pasted cookies cannot be used; the message never contains a value."""


class CookieSet:
    """Cookie values (secret) with the earliest session-cookie expiry, when the source said it."""

    __slots__ = ("_values", "expires_at")

    def __init__(self, values: dict[str, str], expires_at: datetime | None = None) -> None:
        # Fragment's own cookies first, in the order its site sets them; any others after, as given.
        order = {name: index for index, name in enumerate(KNOWN)}
        self._values = {name: values[name] for name in sorted(values, key=lambda name: order.get(name, len(order)))}
        self.expires_at = expires_at

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._values)

    def header(self) -> Secret:
        """The Cookie header Fragment expects: `name=value; name=value`."""
        return Secret("; ".join(f"{name}={value}" for name, value in self._values.items()))

    def describe(self) -> str:
        """Which cookies and until when, without a single value."""
        return f"{describe_names(self.names)}; {describe_expiry(self.expires_at)}"

    def __repr__(self) -> str:
        return f"CookieSet(names={self.names!r}, expires_at={self.expires_at!r})"


def describe_names(names: Iterable[str]) -> str:
    names = list(names)
    known = [name for name in names if name in KNOWN]
    others = len(names) - len(known)
    text = ", ".join(known) if known else "no Fragment cookies"
    return text + (f" and {others} other cookie{'s' if others > 1 else ''}" if others else "")


def describe_expiry(expires_at: datetime | None) -> str:
    if expires_at is None:
        return "expiry unknown"
    return f"expires {expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def parse_cookie_header(text: str) -> dict[str, str]:
    """Cookie values from a Cookie header ("Header String" export); refuses one without a Fragment login."""
    text = text.strip().strip("\"'").strip()
    if text[:7].lower() == "cookie:":
        text = text[7:]
    values: dict[str, str] = {}
    parts = [part.strip() for part in re.split(r"[;\r\n]+", text)]
    for number, part in enumerate(parts, start=1):
        if not part:
            continue
        name, equals, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.match(name) or not _VALUE.match(value):
            raise CookieFormatError(f"part {number} of the pasted cookies is not name=value; {HOW_TO_EXPORT}")
        values[name] = value
    check_required(values)
    return values


def parse_cookies(text: str, *, domain: str = FRAGMENT_DOMAIN) -> CookieSet:
    """What an operator pastes: a Header String, or Cookie-Editor's JSON or Netscape export (these carry expiries)."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        return _parse_json_export(stripped, domain)
    if "\t" in stripped:
        return _parse_netscape_export(stripped, domain)
    return CookieSet(parse_cookie_header(stripped))


def check_required(values: dict[str, str]) -> None:
    missing = [name for name in REQUIRED if not values.get(name)]
    if not missing:
        return
    found = describe_names(values) if values else "no cookies at all"
    raise CookieFormatError(
        f"the pasted cookies have no {' and no '.join(missing)} (found {found}): "
        f"that is not a logged-in Fragment session; {HOW_TO_EXPORT}"
    )


def session_expiry(expiries: dict[str, float]) -> datetime | None:
    """The earliest expiry (Unix seconds; <= 0 means a browser-session cookie) of the session cookies."""
    known = [expiries[name] for name in SESSION_COOKIES if expiries.get(name, 0) > 0]
    return datetime.fromtimestamp(min(known), UTC) if known else None


def _on_domain(cookie_domain: str, domain: str) -> bool:
    host = cookie_domain.lstrip(".").lower()
    return not host or host == domain or host.endswith("." + domain)


def _parse_json_export(text: str, domain: str) -> CookieSet:
    try:
        data = _export(text)
    except msgspec.DecodeError:
        message = f"the pasted text looks like JSON but is not a cookie export; {HOW_TO_EXPORT}"
        raise CookieFormatError(message) from None
    values: dict[str, str] = {}
    expiries: dict[str, float] = {}
    for cookie in data if isinstance(data, list) else [data]:
        name, value = cookie.get("name"), cookie.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise CookieFormatError(f"the JSON export has a cookie without a name or value; {HOW_TO_EXPORT}")
        if not _on_domain(str(cookie.get("domain") or ""), domain) or not _NAME.match(name) or not _VALUE.match(value):
            continue
        values[name] = value
        expiry = cookie.get("expirationDate", cookie.get("expires"))
        expiries[name] = float(expiry) if isinstance(expiry, int | float) and not cookie.get("session") else 0.0
    check_required(values)
    return CookieSet(values, session_expiry(expiries))


def _parse_netscape_export(text: str, domain: str) -> CookieSet:
    values: dict[str, str] = {}
    expiries: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or (line.startswith("#") and not line.startswith("#HttpOnly_")):
            continue
        fields = line.removeprefix("#HttpOnly_").split("\t")
        if len(fields) != 7 or not fields[4].strip().lstrip("-").isdigit():
            raise CookieFormatError(f"line {number} of the Netscape cookie export has not 7 tab-separated fields")
        cookie_domain, _, _, _, expiry, name, value = (field.strip() for field in fields)
        if _on_domain(cookie_domain, domain) and _NAME.match(name) and _VALUE.match(value):
            values[name] = value
            expiries[name] = float(expiry)
    check_required(values)
    return CookieSet(values, session_expiry(expiries))


class StoredCookies(msgspec.Struct, frozen=True, kw_only=True):
    """The newest stored cookies and what is known about them (the header stays a Secret)."""

    id: int
    header: Secret
    source: str
    obtained_at: datetime
    expires_at: datetime | None
    checked_at: datetime | None
    alerted_at: datetime | None

    @property
    def values(self) -> dict[str, str]:
        return parse_cookie_header(self.header.reveal())


class CookieStore:
    """The `fragment_cookies` table: newest row = the cookies KYC purchases use."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def current(self) -> Secret | None:
        """The newest stored header, else None. Expiry is not checked here: the refresher watches it."""
        latest = await self.latest()
        return latest.header if latest else None

    async def latest(self) -> StoredCookies | None:
        row = await queries.cookies.current_cookies(self.pool)
        if row is None:
            return None
        return StoredCookies(**{**dict(row), "header": Secret(row["header"])})

    async def save(self, header: str | Secret, *, source: str, expires_at: datetime | None) -> None:
        """Store cookies as the current ones after checking them; older rows beyond the last few are pruned."""
        if source not in SOURCES:
            raise ValueError(f"unknown cookie source {source!r}")
        text = header.reveal() if isinstance(header, Secret) else header
        normalised = CookieSet(parse_cookie_header(text)).header().reveal()
        async with self.pool.acquire() as conn, conn.transaction():
            await queries.cookies.save_cookies(conn, normalised, source, expires_at)
            await queries.cookies.prune_cookies(conn, KEEP_ROWS)

    async def adopt_config(self, header: Secret) -> bool:
        """Store the config file's cookies unless these very cookies came from it before.

        Called at start-up: a restart must not put the config's (older) cookies back in front of
        ones the refresher or an import stored since; changed config cookies are adopted.
        """
        if not header:
            return False
        normalised = CookieSet(parse_cookie_header(header.reveal())).header()
        if await queries.cookies.latest_config_header(self.pool) == normalised.reveal():
            return False
        await self.save(normalised, source="config", expires_at=None)
        return True

    async def mark_checked(self, cookie_id: int) -> None:
        await queries.cookies.mark_cookies_checked(self.pool, cookie_id)

    async def claim_alert(self, cookie_id: int) -> bool:
        """True for the first caller only: the lost session of these cookies is reported once."""
        return await queries.cookies.claim_cookies_alert(self.pool, cookie_id) is not None
