"""Webhook mode: Telegram posts updates to `POST /webhook/telegram` on the shop's web server.

This is how several instances behind a load balancer share one bot. The route checks Telegram's
secret header in constant time, reads at most MAX_BODY bytes, queues the update and answers 200 at
once; the receiver service handles queued updates in its own task group, so a stop lets them finish
like the poller's. The route answers 503, and Telegram delivers the update again later (to another
instance, or to this one once it can), when a stop has begun, when `max_concurrent` updates are
already queued or being handled, and while the Telegram circuit is open (every reply would fail).
"""

from __future__ import annotations

import hmac
import logging

import anyio
from aiogram.types import Update
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopbot.bot.updates import UpdateHandler
from shopbot.config.secret import Secret
from shopbot.guard.circuit import OPEN, CircuitBreaker
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts
from shopbot.request_body import BodyTooLarge, read_limited

log = logging.getLogger(__name__)
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_BODY = 1024 * 1024


class WebhookReceiver:
    """Registers the webhook at start and handles what the route queues."""

    def __init__(
        self,
        updates: UpdateHandler,
        lifecycle: Lifecycle,
        texts: Texts,
        *,
        url: str,
        secret: Secret,
        max_concurrent: int,
        circuit: CircuitBreaker | None = None,
    ) -> None:
        self.updates = updates
        self.max_concurrent = max_concurrent
        self.circuit = circuit
        self.in_hand = 0  # queued or being handled
        self.lifecycle = lifecycle
        self.texts = texts
        self.url = url
        self.secret = secret
        self._send: MemoryObjectSendStream[Update] | None = None
        self.accepting = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        bot, dispatcher = self.updates.bot, self.updates.dispatcher
        # Pending updates are kept (never drop_pending_updates): they may be payments.
        await bot.set_webhook(
            self.url,
            secret_token=self.secret.reveal(),
            allowed_updates=dispatcher.resolve_used_update_types(),
            drop_pending_updates=False,
        )
        await self.updates.start(self.texts)
        send, receive = anyio.create_memory_object_stream[Update](self.max_concurrent)
        try:
            async with receive, anyio.create_task_group() as handlers:
                self._send = send
                self.accepting = True
                task_status.started()
                async with anyio.create_task_group() as intake:
                    intake.start_soon(self._stop_intake_on_stop, send)
                    async for update in receive:
                        handlers.start_soon(self._handle, update, name=f"update:{update.update_id}")
                    intake.cancel_scope.cancel()
        finally:
            self.accepting = False
            send.close()
            with anyio.move_on_after(5, shield=True):
                await self.updates.stop()

    async def _handle(self, update: Update) -> None:
        try:
            await self.updates.handle(update)
        finally:
            self.in_hand -= 1

    async def _stop_intake_on_stop(self, send: MemoryObjectSendStream[Update]) -> None:
        await self.lifecycle.stopping.wait()
        self.accepting = False
        # Closing the sending side lets the loop above take what is queued, then end.
        send.close()

    def route(self) -> Route:
        return Route("/webhook/telegram", self.on_telegram_update, methods=["POST"])

    async def on_telegram_update(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return JSONResponse({"error": "missing_secret"}, status_code=401)
        if not hmac.compare_digest(given.encode(), self.secret.reveal().encode()):
            return JSONResponse({"error": "wrong_secret"}, status_code=403)
        if not self.accepting or self._send is None:
            return JSONResponse({"error": "not_accepting"}, status_code=503)
        try:
            body = await read_limited(request, MAX_BODY)
        except BodyTooLarge:
            return JSONResponse({"error": "body_too_large"}, status_code=413)
        try:
            update = Update.model_validate_json(body, context={"bot": self.updates.bot})
        except ValidationError:
            return JSONResponse({"error": "not_an_update"}, status_code=400)
        if self.circuit is not None and (await self.circuit.status()).state == OPEN:
            return JSONResponse({"error": "telegram_unreachable"}, status_code=503)  # kept by Telegram
        # No await from here to the count: the check and the count cannot interleave with another request.
        if self.in_hand >= self.max_concurrent:
            self.updates.metrics.errors.labels("telegram_webhook_busy").inc()
            return JSONResponse({"error": "busy"}, status_code=503)  # Telegram retries later
        try:
            self._send.send_nowait(update)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return JSONResponse({"error": "stopping"}, status_code=503)
        self.in_hand += 1
        return JSONResponse({"ok": True})
