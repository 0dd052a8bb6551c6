"""The Fragment service through fragment-api-lib's v3 client, which keeps the seed on this machine.

The library is synchronous (requests, and sleeps inside its retry loops), so every call runs in a
worker thread with a finite deadline. Its errors are sorted by what they mean for an order:
- definite: nothing was or will be paid (a refund is safe);
- transient: try again later, nothing was paid;
- ambiguous: a payment may have left the wallet (verify; never refund or re-sign blindly).
On a 401 the client authenticates once more and repeats the call (the library does not). This is the
payer's client (the order worker, the wallet watch, the admin's checks): one call at a time, and a thread
whose caller stopped waiting before its turn makes no call at all. Recipient lookups have clients of their
own (recipients.py), so a crowd of buyers typing usernames never queues in front of a payment.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

import anyio
from fragment_api_lib.exceptions import FragmentAPIError
from fragment_api_lib.v3 import FragmentAPIv3
from fragment_api_lib.v3.client import USERNAME as LIBRARY_USERNAME

from shopbot.config.schema import FragmentConfig
from shopbot.config.secret import Secret
from shopbot.errors import ShopbotError

log = logging.getLogger(__name__)
T = TypeVar("T")
Kind = Literal["definite", "transient", "ambiguous"]
NANO = Decimal(10) ** 9
# The library's own rule for usernames (its echo check refuses anything else).
USERNAME = re.compile(r"(?:^https?://t\.me/|^@|^)([a-zA-Z0-9_]{5,32})/?$")

# Refusals that leave nothing paid: the service said no to the order itself, or the library refused to sign.
DEFINITE = {
    "UNTRUSTED_PAYMENT",
    "INSUFFICIENT_BALANCE",
    "ORDER_EXPIRED",
    "USER_NOT_FOUND",
    "RECIPIENT_NOT_FOUND",
    "INVALID_USERNAME",
    "PREMIUM_ACTIVE",
}
# A lookup answered with one of these (an HTTP error, not `found: false`) found nobody: the user's mistake.
NO_SUCH_RECIPIENT = {"USER_NOT_FOUND", "RECIPIENT_NOT_FOUND", "INVALID_USERNAME"}
AMBIGUOUS_AT_SUBMIT = {
    "SUBMIT_OUTCOME_UNKNOWN",
    "TRANSFER_AMBIGUOUS",
    "INVALID_SIGNED_MESSAGE",
    "TRANSFER_FAILED",
    "TRANSFER_NOT_SENT",
    "TON_SERVICE_UNAVAILABLE",
    "NETWORK_ERROR",
}
# A library sleeping through its six submit retries needs about 42 s plus the requests themselves.
SUBMIT_RETRY_SECONDS = 42.0


def step_seconds(config: FragmentConfig) -> float:
    """The longest one order step can take: three ordinary calls and one submit, each to its deadline, and
    a little for the database. An order's lease is this long; a batch's is twice this, and the batch stops
    creating Fragment orders once it has spent one step's time on them (the rest wait for the next batch)."""
    return config.request_timeout * (3 * 3 + 8) + SUBMIT_RETRY_SECONDS + 30.0


class FragmentFailure(ShopbotError):
    """A Fragment call failed; `kind` says what that means for the money."""

    def __init__(
        self,
        kind: Kind,
        code: str | None,
        message: str,
        status: int | None = None,
        prepared: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.code = code
        self.status = status
        self.prepared = prepared  # SUBMIT_OUTCOME_UNKNOWN: the newest signed payment, to resubmit later
        super().__init__(f"Fragment service: {message}" + (f" ({code})" if code else ""))


class BadRecipient(ShopbotError):
    """A username the library would refuse; the message is for the user."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """A Telegram account Fragment found (recipient lookups live in recipients.py, apart from the payer)."""

    username: str
    name: str


def normalize_username(text: str) -> str:
    """`name`, `@name` or `https://t.me/name` (5-32 letters, digits, _) to `name`, else BadRecipient."""
    match = USERNAME.match(text.strip())
    if not match:
        raise BadRecipient("a Telegram username has 5 to 32 letters, digits or underscores, like @durov")
    return match.group(1)


def classify(exc: FragmentAPIError, *, submitting: bool) -> FragmentFailure:
    """Sort a library error by what it means for the money."""
    code = getattr(exc, "error_code", None)
    status = getattr(exc, "status", None)
    message = str(exc).splitlines()[0][:200]
    may_have_paid = code in AMBIGUOUS_AT_SUBMIT or code is None or (status or 0) >= 500
    if submitting and may_have_paid and code not in DEFINITE:
        details = getattr(exc, "details", None)
        prepared = details.get("prepared") if isinstance(details, dict) else None
        return FragmentFailure("ambiguous", code, message, status, prepared if isinstance(prepared, dict) else None)
    if code in DEFINITE:
        return FragmentFailure("definite", code, message, status)
    if code == "NOTHING_TO_PAY":
        return FragmentFailure("ambiguous", code, message, status)
    return FragmentFailure("transient", code, message, status)


class FragmentClient:
    """One FragmentAPIv3 per wallet; rebuilt when the cookies change."""

    def __init__(self, config: FragmentConfig, cookies: Secret | None = None) -> None:
        if not config.seed_phrase:
            raise ShopbotError("fragment.seed_phrase: required to sell (or fragment.seed_phrase_file)")
        if config.max_ton_per_order <= 0:
            raise ShopbotError("fragment.max_ton_per_order: required to sell; nothing is signed without a cap")
        self.config = config
        self._lock = threading.Lock()  # one thread at a time touches the library's session
        try:
            self._api = self._build(cookies if cookies else (config.cookies or None))
        except ValueError as exc:  # never echo the seed: the library's message does not, and nor do we
            raise ShopbotError(
                f"fragment: cannot use the configured wallet ({exc.__class__.__name__}: "
                "check seed_phrase and wallet_type)"
            ) from None

    def _build(self, cookies: Secret | None) -> FragmentAPIv3:
        trust = {"max_ton_per_order": self.config.max_ton_per_order, "max_fee_percent": self.config.max_fee_percent}
        return _Signer(
            self.config.seed_phrase.reveal(),
            wallet_type=self.config.wallet_type,
            fragment_cookies=cookies.reveal() if cookies else None,
            base_url=self.config.base_url.rstrip("/"),
            trust=trust,
            timeout=self.config.request_timeout,
            external_ttl_seconds=self.config.payment_ttl_seconds,
        )

    @property
    def address(self) -> str:
        return str(self._api.address)

    def use_cookies(self, cookies: Secret) -> None:
        """Fresh cookies from the refresher: the next call authenticates with them."""
        self._api = self._build(cookies)

    async def _call(self, fn: Callable[[], T], *, submitting: bool = False) -> T:
        deadline = self.config.request_timeout * (8 if submitting else 3) + (SUBMIT_RETRY_SECONDS if submitting else 0)

        gave_up = threading.Event()

        def locked() -> T:
            with self._lock:
                if gave_up.is_set():  # the caller stopped waiting before this thread's turn: ask nothing
                    raise FragmentAPIError("the caller gave up before the call was made")
                try:
                    return fn()
                except FragmentAPIError as exc:
                    if getattr(exc, "status", None) != 401:
                        raise
                    self._api.auth()  # the key expired; the library does not re-authenticate itself
                    return fn()

        try:
            with anyio.fail_after(deadline):
                return await anyio.to_thread.run_sync(locked, abandon_on_cancel=True)
        except FragmentAPIError as exc:
            raise classify(exc, submitting=submitting) from None
        except TimeoutError:
            kind: Kind = "ambiguous" if submitting else "transient"
            raise FragmentFailure(kind, "TIMEOUT", f"no answer within {deadline:.0f} s") from None
        except ValueError as exc:  # the library's own refusals (bad mnemonic, base URL, ...)
            raise FragmentFailure("transient", None, str(exc)) from None
        finally:
            gave_up.set()  # a thread still waiting for the lock makes no stale call later

    async def create_order(self, product: str, username: str, amount: int, key: str) -> dict[str, Any]:
        kyc = self.config.kyc
        return await self._call(lambda: self._api.create_order(product, username, amount, kyc=kyc, idempotency_key=key))

    async def check_order(self, created: dict[str, Any]) -> None:
        """The checks the library makes before it signs, for one created order, signing nothing: an order it
        would refuse is found on its own, before it could hold up the payment of a whole batch."""
        await self._call(lambda: self._api.check_order(created))

    async def prepare(self, created: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Check and sign ONE external paying every one of these created orders (not submitted). The library
        applies max_ton_per_order to each order's own legs, not to their sum."""
        batch = list(created)
        return await self._call(lambda: self._api.prepare(batch))

    async def submit(
        self,
        prepared: dict[str, Any],
        created: Sequence[dict[str, Any]] | None,
        on_resigned: Callable[[dict[str, Any]], Coroutine[Any, Any, None]] | None = None,
    ) -> dict[str, Any]:
        """Submit a signed payment (it names every order it pays). With `created` (those orders, as prepared)
        the library may sign it again (same seqno) when the service says it cannot land; each new signature
        goes to `on_resigned` first, and is submitted only if that returns (it runs on the event loop; whatever
        it raises comes out of here, nothing more submitted)."""
        api = self._api
        orders = list(created) if created is not None else None  # the library re-prepares a LIST of orders

        def resigned(new: dict[str, Any]) -> None:
            if on_resigned is not None:
                anyio.from_thread.run(on_resigned, new)

        def call() -> dict[str, Any]:
            api.on_signed = resigned
            try:
                result: dict[str, Any] = api.submit(prepared, orders)
                return result
            finally:
                api.on_signed = None

        return await self._call(call, submitting=True)

    async def get_order(self, order_id: str) -> dict[str, Any]:
        return await self._call(lambda: self._api.get_order(order_id))

    async def wallet_info(self) -> dict[str, Any]:
        return await self._call(self._api.wallet_info)


class _Signer(FragmentAPIv3):  # type: ignore[misc]  # fragment-api-lib ships no types: its client is Any
    """The library's client, telling its owner about each payment it signs inside submit() before that
    payment can be submitted (the library re-signs on TRANSFER_NOT_SENT with `resign`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_signed: Callable[[dict[str, Any]], None] | None = None

    def prepare(self, created: Any, resign: Any = None) -> Any:
        prepared = super().prepare(created, resign=resign)
        if self.on_signed is not None:
            self.on_signed(prepared)
        return prepared


def is_our_order(created: dict[str, Any], *, product: str, quantity: int, recipient: str, key: str) -> bool:
    """Whether the order the service answered with is the one we asked for: product, amount, recipient (as
    the library normalizes usernames, case-insensitive) and, when the service echoes one, our key. A service
    answering a key it already knows gives back that old order, which must never be taken for ours."""
    order = created.get("order") or {}

    def name(value: object) -> str:
        match = LIBRARY_USERNAME.search(str(value or "").strip())
        return match.group(1).lower() if match else ""

    echoed_key = order.get("idempotency_key")
    return (
        order.get("product") == product
        and order.get("amount") == quantity
        and name(order.get("username")) != ""
        and name(order.get("username")) == name(recipient)
        and (echoed_key is None or echoed_key == key)
    )


def payment_cost_ton(created: dict[str, Any]) -> Decimal | None:
    """The TON a created order's payment legs add up to."""
    payment = created.get("payment") or {}
    messages = payment.get("messages") or []
    if not messages:
        return None
    return sum((Decimal(str(m["amount"])) for m in messages), Decimal(0)) / NANO
