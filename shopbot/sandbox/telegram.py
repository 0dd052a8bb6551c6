"""A Telegram Bot API emulator: a real HTTP server the unchanged aiogram client talks to, driven by tests."""

from __future__ import annotations

import contextvars
import hashlib
import itertools
import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import msgspec
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopbot.sandbox.pulse import Pulse
from shopbot.sandbox.telegram_content import (
    MAX_PHOTO_BYTES,
    command_entities,
    format_caption,
    format_text,
    image_size,
    inline_markup,
)
from shopbot.sandbox.telegram_wire import (
    AnswerCallbackQuery,
    ApiError,
    BotCommand,
    CallbackQuery,
    Chat,
    DeleteMessage,
    DeleteWebhook,
    EditMessageReplyMarkup,
    EditMessageText,
    GetUpdates,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    MyCommands,
    NoParams,
    Params,
    PhotoSize,
    SendMessage,
    SendPhoto,
    SetWebhook,
    Update,
    Upload,
    User,
    WebhookInfo,
    convert_params,
    decode_nested,
    json_decode,
    json_encode,
)
from shopbot.web.asgi import serve_asgi

logger = logging.getLogger(__name__)

# Telegram's own wording, so code that matches on descriptions behaves as in production.
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
# Without allowed_updates Telegram sends every type except these.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MAX_POLL_SECONDS = 50.0
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
# The files of the multipart request being answered (each request is handled in its own context; none
# outside a multipart request).
_UPLOADS: contextvars.ContextVar[dict[str, Upload]] = contextvars.ContextVar("uploads")


class RecordedCall(msgspec.Struct, frozen=True, kw_only=True):
    """One Bot API request as the emulator saw and answered it."""

    method: str  # canonical spelling, e.g. "sendMessage"
    params: dict[str, Any]  # nested JSON decoded; fields the method knows typed (ints, bools)
    response: dict[str, Any]  # the JSON body sent back
    status: int
    time: float  # time.monotonic() when answered

    @property
    def ok(self) -> bool:
        return bool(self.response["ok"])

    @property
    def result(self) -> Any:
        return self.response.get("result")

    @property
    def description(self) -> str | None:
        return self.response.get("description")


class CallNotMade(AssertionError):
    """wait_for_call found no matching call in time."""


@dataclass
class _ChatState:
    chat: Chat
    messages: dict[int, Message] = field(default_factory=dict)  # user's and bot's, in order
    last_message_id: int = 0

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    last_error_date: int | None = None
    last_error_message: str | None = None


class TelegramEmulator:
    """The Bot API of one bot, plus the users who talk to it. Serve `app`; drive it with the test API."""

    def __init__(
        self,
        *,
        token: str,
        bot_username: str = "shopbot_test_bot",
        bot_id: int | None = None,
        webhook_retry_seconds: float = 0.2,
    ) -> None:
        self.token = token
        self.bot_id = int(token.partition(":")[0]) if bot_id is None else bot_id
        self.bot = User(id=self.bot_id, is_bot=True, first_name="Shopbot", username=bot_username)
        self.webhook_retry_seconds = webhook_retry_seconds
        self.calls: list[RecordedCall] = []
        self.users: dict[int, User] = {}
        self.files: dict[str, bytes] = {}  # every uploaded file by its file_id
        self._handed_out: set[int] = set()  # indexes into calls already returned by wait_for_call
        self._chats: dict[int, _ChatState] = {}
        self._pending: list[Update] = []
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(4_000_000_000_000_000_001)
        self._open_queries: set[str] = set()
        self._allowed_updates: frozenset[str] | None = None  # None: all but OPT_IN_UPDATES
        self._commands: dict[tuple[str, str], list[BotCommand]] = {}
        self._webhook: _Webhook | None = None
        self._faults: defaultdict[str, deque[ApiError]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[float]] = defaultdict(deque)
        self._blocked: set[int] = set()  # users who blocked the bot
        self._poll_generation = 0
        self._closing = False
        self._changed = Pulse()  # any state change: new update, call, poller, webhook
        methods: list[tuple[str, type[Params], Callable[[Any], Awaitable[Any]]]] = [
            ("getMe", NoParams, self._get_me),
            ("getUpdates", GetUpdates, self._get_updates),
            ("sendMessage", SendMessage, self._send_message),
            ("sendPhoto", SendPhoto, self._send_photo),
            ("editMessageText", EditMessageText, self._edit_text),
            ("editMessageReplyMarkup", EditMessageReplyMarkup, self._edit_markup),
            ("deleteMessage", DeleteMessage, self._delete_message),
            ("answerCallbackQuery", AnswerCallbackQuery, self._answer_callback_query),
            ("setMyCommands", MyCommands, self._set_my_commands),
            ("getMyCommands", MyCommands, self._get_my_commands),
            ("deleteMyCommands", MyCommands, self._delete_my_commands),
            ("setWebhook", SetWebhook, self._set_webhook),
            ("deleteWebhook", DeleteWebhook, self._delete_webhook),
            ("getWebhookInfo", NoParams, self._get_webhook_info),
        ]
        # Telegram matches method names case-insensitively.
        self._methods = {name.lower(): (name, params, handler) for name, params, handler in methods}
        self.app = Starlette(
            routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])], lifespan=self._lifespan
        )

    # --- the test-facing API -------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        *,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str = "en",
        is_premium: bool = False,
    ) -> User:
        """A Telegram user with a private chat with the bot (the chat id is the user id)."""
        user = User(
            id=user_id,
            is_bot=False,
            first_name=first_name,
            username=username,
            language_code=language_code,
            is_premium=is_premium,
        )
        self.users[user_id] = user
        chat = Chat(id=user_id, type="private", first_name=first_name, username=username)
        if user_id in self._chats:  # re-adding renames the user but keeps the conversation
            self._chats[user_id].chat = chat
        else:
            self._chats[user_id] = _ChatState(chat)
        return user

    def send_text(self, user_id: int, text: str, *, entities: list[MessageEntity] | None = None) -> Update:
        """The user sends text in their private chat (added with defaults if new); /commands get entities, and
        `entities` is the formatting the user applied (bold, links…)."""
        if user_id not in self.users:
            self.add_user(user_id)
        state = self._chats[user_id]
        found = sorted([*command_entities(text), *(entities or [])], key=lambda e: (e.offset, -e.length))
        message = Message(
            message_id=state.next_message_id(),
            date=int(time.time()),
            chat=state.chat,
            from_=self.users[user_id],
            text=text,
            entities=found or None,
        )
        state.messages[message.message_id] = message
        return self._inject(Update(update_id=next(self._update_ids), message=message))

    def press_button(self, user_id: int, message_id: int, callback_data: str) -> Update:
        """The user presses the inline button carrying callback_data under a bot message in their chat."""
        message = self._chats[user_id].messages.get(message_id) if user_id in self._chats else None
        buttons = message.reply_markup.buttons() if message is not None and message.reply_markup else []
        if not any(button.callback_data == callback_data for button in buttons):
            offered = [button.callback_data for button in buttons if button.callback_data is not None]
            raise LookupError(
                f"message {message_id} in chat {user_id} has no button with callback_data "
                f"{callback_data!r}; its callback buttons: {offered}"
            )
        assert message is not None
        return self._press(user_id, message, callback_data)

    def forge_press(self, user_id: int, message_id: int, callback_data: str) -> Update:
        """What a modified client can send: any callback data under one of the bot's messages in the chat
        (Telegram does not check it against the buttons shown). For testing that forgeries change nothing."""
        message = self._chats[user_id].messages.get(message_id) if user_id in self._chats else None
        if message is None:
            raise LookupError(f"no message {message_id} in chat {user_id}")
        return self._press(user_id, message, callback_data)

    def open_query(self) -> str:
        """A callback query id the bot may answer, for an update a test delivers around the emulator."""
        query_id = str(next(self._query_ids))
        self._open_queries.add(query_id)
        return query_id

    def _press(self, user_id: int, message: Message, callback_data: str) -> Update:
        query = CallbackQuery(
            id=self.open_query(),
            from_=self.users[user_id],
            chat_instance=str(self.bot_id * 7919 + user_id),
            message=message,
            data=callback_data,
        )
        return self._inject(Update(update_id=next(self._update_ids), callback_query=query))

    @property
    def unanswered_callbacks(self) -> set[str]:
        """Ids of button presses the bot never answered (a user would be staring at a spinner)."""
        return set(self._open_queries)

    def chat_messages(self, chat_id: int, *, include_user: bool = False) -> list[Message]:
        """The bot's messages in the chat as they stand now (edits applied, deletions gone), oldest first."""
        messages = self._chats[chat_id].messages.values() if chat_id in self._chats else []
        return [m for m in messages if include_user or (m.from_ is not None and m.from_.id == self.bot_id)]

    def block_bot(self, user_id: int, *, blocked: bool = True) -> None:
        """The user blocks the bot (or unblocks it): from then on Telegram refuses to send them anything."""
        (self._blocked.add if blocked else self._blocked.discard)(user_id)

    def photo(self, message: Message) -> bytes:
        """The bytes of the largest size of the photo a message shows."""
        assert message.photo, f"message {message.message_id} shows no photo"
        return self.files[message.photo[-1].file_id]

    def fail_next(
        self, method: str, *, error_code: int, description: str | None = None, retry_after: int | None = None
    ) -> None:
        """Answer the next call of method with this error (queued: call twice to fail two calls)."""
        self._faults[method.lower()].append(ApiError(error_code, description, retry_after=retry_after))

    def delay_next(self, method: str, seconds: float) -> None:
        """Answer the next call of method only after `seconds` (queued like fail_next): a slow Telegram."""
        self._delays[method.lower()].append(seconds)

    async def wait_for_call(
        self, method: str, *, predicate: Callable[[RecordedCall], bool] | None = None, timeout: float = 5.0
    ) -> RecordedCall:
        """The oldest call of method (matching predicate) not yet returned by an earlier wait_for_call."""
        with anyio.move_on_after(timeout):
            while True:
                for index, call in enumerate(self.calls):
                    if (
                        index not in self._handed_out
                        and call.method.lower() == method.lower()
                        and (predicate is None or predicate(call))
                    ):
                        self._handed_out.add(index)
                        return call
                await self._changed.wait()
        recent = "\n".join(f"  {_describe(call)}" for call in self.calls[-10:]) or "  (none)"
        raise CallNotMade(
            f"no new {method} call{' matching the predicate' if predicate else ''} within "
            f"{timeout} s; the last calls were:\n{recent}"
        )

    def end_long_polls(self) -> None:
        """Answer parked getUpdates calls now with [] (and any later ones at once), ahead of a shutdown."""
        self._closing = True
        self._changed.fire()

    # --- HTTP ----------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._closing = False
        # trust_env=False: a proxy from the environment must not swallow deliveries to 127.0.0.1.
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client, anyio.create_task_group() as group:
            group.start_soon(self._deliver_webhooks, client, name="telegram emulator webhook delivery")
            yield
            group.cancel_scope.cancel()

    async def _endpoint(self, request: Request) -> Response:
        try:
            raw = await _read_params(request)
        except ApiError as error:
            return Response(json_encode(error.body()), status_code=error.error_code, media_type="application/json")
        status, body = await self._call(request.path_params["token"], request.path_params["method"], raw)
        return Response(json_encode(body), status_code=status, media_type="application/json")

    async def _call(self, token: str, method: str, raw: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one Bot API call and record it."""
        name, params_type, handler = self._methods.get(method.lower(), (method, NoParams, None))
        params = decode_nested(raw)
        try:
            if token != self.token:
                raise ApiError(401)
            if handler is None:
                raise ApiError(404)
            try:
                typed, params = convert_params(params, params_type)
            except msgspec.ValidationError as error:
                raise ApiError(400, f"Bad Request: {error}") from None
            if self._delays[name.lower()]:
                await anyio.sleep(self._delays[name.lower()].popleft())
            if self._faults[name.lower()]:
                raise self._faults[name.lower()].popleft()
            status, body = 200, {"ok": True, "result": msgspec.to_builtins(await handler(typed))}
        except ApiError as error:
            status, body = error.error_code, error.body()
        self.calls.append(RecordedCall(method=name, params=params, response=body, status=status, time=time.monotonic()))
        self._changed.fire()
        return status, body

    # --- updates -------------------------------------------------------------------------------------------

    def _inject(self, update: Update) -> Update:
        allowed = self._allowed_updates
        if (update.kind in allowed) if allowed else (update.kind not in OPT_IN_UPDATES):
            self._pending.append(update)
            self._changed.fire()
        return update

    async def _get_updates(self, params: GetUpdates) -> list[Update]:
        if self._webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        if params.offset < 0:
            del self._pending[: max(len(self._pending) + params.offset, 0)]
        elif params.offset > 0:  # confirms every update below offset
            self._pending = [update for update in self._pending if update.update_id >= params.offset]
        if params.allowed_updates is not None:
            self._allowed_updates = frozenset(params.allowed_updates) or None
        self._poll_generation += 1
        generation = self._poll_generation
        self._changed.fire()  # an older poll still parked must give way
        with anyio.move_on_after(min(max(params.timeout, 0.0), MAX_POLL_SECONDS)):
            while not self._pending and not self._closing and self._webhook is None:
                await self._changed.wait()
                if generation != self._poll_generation:
                    raise ApiError(409, POLL_CONFLICT)
        return [] if self._webhook is not None else self._pending[: min(max(params.limit, 1), 100)]

    async def _deliver_webhooks(self, client: httpx.AsyncClient) -> None:
        """POST pending updates one by one, in order, while a webhook is set; retry a failed one."""
        while True:
            webhook = self._webhook
            if webhook is None or not self._pending:
                await self._changed.wait()
                continue
            update = self._pending[0]
            error = await self._post_update(client, webhook, update)
            if error is None:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
                continue
            logger.info("webhook delivery of update %d failed: %s", update.update_id, error)
            webhook.last_error_date, webhook.last_error_message = int(time.time()), error
            await anyio.sleep(self.webhook_retry_seconds)

    async def _post_update(self, client: httpx.AsyncClient, webhook: _Webhook, update: Update) -> str | None:
        """Deliver one update; None on success, else the error getWebhookInfo reports."""
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        try:
            response = await client.post(webhook.url, content=json_encode(update), headers=headers)
        except httpx.HTTPError as error:
            return f"Connection failed: {type(error).__name__}"
        if not response.is_success:
            return f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}"
        # Like Telegram, run a method the bot answered with in the webhook response body.
        if response.headers.get("content-type", "").startswith("application/json") and response.content:
            try:
                reply = json_decode(response.content)
            except msgspec.DecodeError:
                return None  # Telegram ignores a body it cannot use
            if isinstance(reply, dict) and isinstance(reply.get("method"), str):
                await self._call(self.token, reply.pop("method"), reply)
        return None

    # --- methods -------------------------------------------------------------------------------------------

    async def _get_me(self, params: NoParams) -> User:
        return msgspec.structs.replace(
            self.bot,
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
            can_connect_to_business=False,
            has_main_web_app=False,
        )

    async def _send_message(self, params: SendMessage) -> Message:
        state = self._chat(params.chat_id, sending=True)
        text, entities = format_text(params.text, params.parse_mode, params.entities)
        markup = inline_markup(params.reply_markup)
        message = Message(
            message_id=state.next_message_id(),
            date=int(time.time()),
            chat=state.chat,
            from_=self.bot,
            text=text,
            entities=entities,
            reply_markup=markup,
        )
        state.messages[message.message_id] = message
        return message

    async def _send_photo(self, params: SendPhoto) -> Message:
        state = self._chat(params.chat_id, sending=True)
        data = self._photo_data(params.photo)
        size = image_size(data)
        if size is None:
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption, entities = format_caption(params.caption, params.parse_mode, params.caption_entities)
        unique = hashlib.sha256(data).hexdigest()[:16]
        file_id = f"AgACAgIAAxkDAAI{unique}"
        self.files[file_id] = data
        photo = [
            PhotoSize(
                file_id=file_id, file_unique_id=f"AQAD{unique[:8]}", width=size[0], height=size[1], file_size=len(data)
            )
        ]
        message = Message(
            message_id=state.next_message_id(),
            date=int(time.time()),
            chat=state.chat,
            from_=self.bot,
            photo=photo,
            caption=caption,
            caption_entities=entities,
            reply_markup=inline_markup(params.reply_markup),
        )
        state.messages[message.message_id] = message
        return message

    def _photo_data(self, photo: str) -> bytes:
        """An upload of this request ("attach://<field>") or a photo sent before (its file_id)."""
        if photo.startswith("attach://"):
            upload = _UPLOADS.get({}).get(photo.removeprefix("attach://"))
            if upload is None:
                raise ApiError(400, "Bad Request: wrong remote file identifier specified: can't unserialize it")
            if len(upload.data) > MAX_PHOTO_BYTES:
                raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            return upload.data
        if photo in self.files:
            return self.files[photo]
        if not photo:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    async def _edit_text(self, params: EditMessageText) -> Message:
        state, old = self._bot_message(params.chat_id, params.message_id, params.inline_message_id, sending=True)
        if old.text is None:  # a photo with a caption: editMessageCaption would be the method
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = format_text(params.text, params.parse_mode, params.entities)
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        return self._replace(state, old, text, entities, inline_markup(params.reply_markup))

    async def _edit_markup(self, params: EditMessageReplyMarkup) -> Message:
        state, old = self._bot_message(params.chat_id, params.message_id, params.inline_message_id)
        return self._replace(state, old, old.text, old.entities, inline_markup(params.reply_markup))

    async def _delete_message(self, params: DeleteMessage) -> bool:
        state = self._chat(params.chat_id)
        if state.messages.pop(params.message_id, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _answer_callback_query(self, params: AnswerCallbackQuery) -> bool:
        if params.callback_query_id not in self._open_queries:
            raise ApiError(400, QUERY_INVALID)
        self._open_queries.discard(params.callback_query_id)
        return True

    async def _set_my_commands(self, params: MyCommands) -> bool:
        for command in params.commands:
            if not _COMMAND_NAME.fullmatch(command.command):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self._commands[_commands_key(params)] = list(params.commands)
        return True

    async def _get_my_commands(self, params: MyCommands) -> list[BotCommand]:
        return self._commands.get(_commands_key(params), [])

    async def _delete_my_commands(self, params: MyCommands) -> bool:
        self._commands.pop(_commands_key(params), None)
        return True

    async def _set_webhook(self, params: SetWebhook) -> bool:
        if not params.url:
            return await self._delete_webhook(DeleteWebhook(drop_pending_updates=params.drop_pending_updates))
        if params.secret_token is not None and not _SECRET_TOKEN.fullmatch(params.secret_token):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if params.drop_pending_updates:
            self._pending.clear()
        if params.allowed_updates is not None:
            self._allowed_updates = frozenset(params.allowed_updates) or None
        self._webhook = _Webhook(params.url, params.secret_token, params.max_connections, params.ip_address)
        self._changed.fire()
        return True

    async def _delete_webhook(self, params: DeleteWebhook) -> bool:
        if params.drop_pending_updates:
            self._pending.clear()
        self._webhook = None
        self._changed.fire()
        return True

    async def _get_webhook_info(self, params: NoParams) -> WebhookInfo:
        hook = self._webhook
        if hook is None:
            return WebhookInfo(url="", has_custom_certificate=False, pending_update_count=len(self._pending))
        return WebhookInfo(
            url=hook.url,
            has_custom_certificate=False,
            pending_update_count=len(self._pending),
            ip_address=hook.ip_address,
            last_error_date=hook.last_error_date,
            last_error_message=hook.last_error_message,
            max_connections=hook.max_connections,
            allowed_updates=sorted(self._allowed_updates) if self._allowed_updates else None,
        )

    # --- helpers -------------------------------------------------------------------------------------------

    def _chat(self, chat_id: int | str | None, *, sending: bool = False) -> _ChatState:
        state = self._chats.get(chat_id) if isinstance(chat_id, int) else None  # "@channel" names no user
        if state is None:
            raise ApiError(400, "Bad Request: chat not found")
        if sending and chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return state

    def _bot_message(
        self, chat_id: int | str | None, message_id: int | None, inline_message_id: str | None, *, sending: bool = False
    ) -> tuple[_ChatState, Message]:
        if inline_message_id is not None:  # inline mode is not emulated
            raise ApiError(400, "Bad Request: message to edit not found")
        state = self._chat(chat_id, sending=sending)
        message = state.messages.get(message_id or 0)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message.from_ is None or message.from_.id != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return state, message

    def _replace(
        self,
        state: _ChatState,
        old: Message,
        text: str | None,
        entities: list[MessageEntity] | None,
        markup: InlineKeyboardMarkup | None,
    ) -> Message:
        if (old.text, old.entities, old.reply_markup) == (text, entities, markup):
            raise ApiError(400, NOT_MODIFIED)
        new = msgspec.structs.replace(
            old, text=text, entities=entities, reply_markup=markup, edit_date=int(time.time())
        )
        state.messages[old.message_id] = new
        return new


async def serve_telegram_emulator(
    emulator: TelegramEmulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the emulator over HTTP until the enclosing scope is cancelled; started() gets the port."""

    async def until_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            # A parked getUpdates would otherwise hold hypercorn's drain for its whole timeout.
            emulator.end_long_polls()

    await serve_asgi(
        emulator.app,
        host=host,
        port=port,
        shutdown_trigger=until_cancelled,
        graceful_seconds=1.0,
        task_status=task_status,
    )


async def _read_params(request: Request) -> dict[str, Any]:
    """Parameters from the query string and a form, multipart or JSON body, as the Bot API accepts them."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        try:
            decoded = json_decode(body) if body else {}
        except msgspec.DecodeError:
            raise ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(decoded, dict):
            raise ApiError(400, "Bad Request: can't parse JSON object")
        params.update(decoded)
    elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        uploads: dict[str, Upload] = {}
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    params[key] = value
                else:  # a file: the method refers to it as attach://<key> (or it is the parameter itself)
                    uploads[key] = Upload(value.filename or key, await value.read())
                    params.setdefault(key, f"attach://{key}")
        _UPLOADS.set(uploads)
    return params


def _commands_key(params: MyCommands) -> tuple[str, str]:
    scope = params.scope or {"type": "default"}
    return json_encode(dict(sorted(scope.items()))).decode(), params.language_code


def _describe(call: RecordedCall) -> str:
    params = repr(call.params)
    outcome = "ok" if call.ok else f"{call.status} {call.description}"
    return f"{call.method} {params if len(params) <= 160 else params[:157] + '...'} -> {outcome}"
