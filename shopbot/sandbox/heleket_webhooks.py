"""Webhook delivery for the Heleket emulator: signed as Heleket signs, retried on non-2xx, with test switches."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import httpx
import msgspec

from shopbot.payments.signing import php_json_encode, sign_body
from shopbot.sandbox.pulse import Pulse

logger = logging.getLogger(__name__)


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One POST attempt of a webhook, or one the emulator dropped on purpose, and what came of it."""

    url: str
    body: bytes  # exactly as sent
    payload: dict[str, Any]  # the signed payload, `sign` last
    attempt: int  # 1 for the first try of this webhook
    status_code: int | None  # None: no HTTP answer (connection failed, timed out, or dropped by fail_webhooks)
    error: str | None
    duplicate: bool  # a deliberate second delivery of a webhook already acknowledged
    time: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def status(self) -> str:
        return str(self.payload.get("status"))


class WebhookNotDelivered(AssertionError):
    """wait_for_webhook found no matching delivery in time."""


class WebhookSender:
    """Signs, queues and POSTs webhooks; one invoice's webhooks go out in order, invoices in parallel."""

    def __init__(self, *, api_key: str, retry_seconds: float, max_attempts: int) -> None:
        self._api_key = api_key
        self.retry_seconds = retry_seconds  # before the second attempt; doubled for each next one
        self.max_attempts = max_attempts
        self.deliveries: list[WebhookDelivery] = []
        self.fail_count = 0  # attempts still to drop without sending
        self.duplicate = False
        self.unicode_escapes = False
        self.silenced = False
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque()
        self._handed_out: set[int] = set()
        self._locks: dict[str, anyio.Lock] = {}
        self._changed = Pulse()

    def send(self, url: str, payload: dict[str, Any]) -> None:
        """Queue the payload (without `sign`) for url; signed over its PHP encoding with raw UTF-8 (ref §4.2)."""
        if self.silenced:
            return
        signed = {**payload, "sign": sign_body(php_json_encode(payload), self._api_key)}
        self._outbox.append((url, signed))
        self._changed.fire()

    async def run(self, client: httpx.AsyncClient, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Deliver queued webhooks until cancelled."""
        async with anyio.create_task_group() as group:
            task_status.started()
            while True:
                while not self._outbox:
                    await self._changed.wait()
                url, payload = self._outbox.popleft()
                group.start_soon(self._deliver, client, url, payload, name=f"heleket webhook {payload.get('uuid')}")

    async def wait_for(
        self, predicate: Callable[[WebhookDelivery], bool], description: str, timeout: float
    ) -> WebhookDelivery:
        """The oldest matching delivery not handed out before."""
        with anyio.move_on_after(timeout):
            while True:
                for index, delivery in enumerate(self.deliveries):
                    if index not in self._handed_out and predicate(delivery):
                        self._handed_out.add(index)
                        return delivery
                await self._changed.wait()
        recent = "\n".join(f"  {_describe(d)}" for d in self.deliveries[-10:]) or "  (none)"
        raise WebhookNotDelivered(f"no new webhook {description} within {timeout} s; the last deliveries:\n{recent}")

    async def _deliver(self, client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> None:
        uuid = str(payload.get("uuid"))
        lock = self._locks.setdefault(uuid, anyio.Lock())
        # The body's unicode form is chosen per webhook; the signature is the same either way.
        body = php_json_encode(payload, unescaped_unicode=not self.unicode_escapes)
        async with lock:  # anyio locks are FIFO, so status changes of one invoice arrive in order
            for attempt in range(1, self.max_attempts + 1):
                if await self._attempt(client, url, body, payload, attempt, duplicate=False):
                    if self.duplicate:
                        await self._attempt(client, url, body, payload, attempt + 1, duplicate=True)
                    return
                if attempt < self.max_attempts:
                    await anyio.sleep(self.retry_seconds * 2 ** (attempt - 1))
            logger.info(
                "heleket emulator gave up on webhook %s %s after %d attempts",
                uuid,
                payload.get("status"),
                self.max_attempts,
            )

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: bytes,
        payload: dict[str, Any],
        attempt: int,
        *,
        duplicate: bool,
    ) -> bool:
        status_code: int | None = None
        error: str | None = None
        if self.fail_count > 0 and not duplicate:
            self.fail_count -= 1
            error = "dropped by fail_webhooks"
        else:
            try:
                response = await client.post(url, content=body, headers={"Content-Type": "application/json"})
                status_code = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL) as failure:  # a bad url_callback is a failed delivery
                error = f"{type(failure).__name__}: {failure}"
        delivery = WebhookDelivery(
            url=url,
            body=body,
            payload=payload,
            attempt=attempt,
            status_code=status_code,
            error=error,
            duplicate=duplicate,
            time=time.monotonic(),
        )
        self.deliveries.append(delivery)
        self._changed.fire()
        return delivery.ok


def _describe(delivery: WebhookDelivery) -> str:
    outcome = delivery.status_code if delivery.status_code is not None else delivery.error
    return (
        f"{delivery.payload.get('order_id')} {delivery.status} attempt {delivery.attempt}"
        f"{' (duplicate)' if delivery.duplicate else ''} -> {outcome}"
    )
