"""The Bot API as the Telegram emulator speaks it: wire objects, method parameters and errors. The rules
Telegram applies to message content are in telegram_content."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

json_encode = msgspec.json.Encoder().encode
json_decode = msgspec.json.Decoder().decode

# Parameters whose values arrive JSON-encoded inside form fields (aiogram dumps every nested value).
JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
        "media",
        "prices",
        "results",
    }
)
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
}


class ApiError(Exception):
    """A Bot API error response."""

    def __init__(self, error_code: int, description: str | None = None, *, retry_after: int | None = None) -> None:
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if error_code == 429
                else (DEFAULT_DESCRIPTIONS.get(error_code, "Error"))
            )
        super().__init__(description)
        self.error_code, self.description, self.retry_after = error_code, description, retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class Wire(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """A Bot API object: absent optional fields are left out, as Telegram does."""


class User(Wire, frozen=True):
    id: int
    is_bot: bool
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool = False
    # Only getMe reports these.
    can_join_groups: bool | None = None
    can_read_all_group_messages: bool | None = None
    supports_inline_queries: bool | None = None
    can_connect_to_business: bool | None = None
    has_main_web_app: bool | None = None


class Chat(Wire, frozen=True):
    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class MessageEntity(Wire, frozen=True):
    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None
    custom_emoji_id: str | None = None


class InlineKeyboardButton(Wire, frozen=True):
    text: str
    url: str | None = None
    callback_data: str | None = None
    web_app: dict[str, Any] | None = None
    login_url: dict[str, Any] | None = None
    switch_inline_query: str | None = None
    switch_inline_query_current_chat: str | None = None
    switch_inline_query_chosen_chat: dict[str, Any] | None = None
    copy_text: dict[str, Any] | None = None
    callback_game: dict[str, Any] | None = None
    pay: bool = False


class InlineKeyboardMarkup(Wire, frozen=True):
    inline_keyboard: list[list[InlineKeyboardButton]]

    def buttons(self) -> list[InlineKeyboardButton]:
        """Every button, row by row."""
        return [button for row in self.inline_keyboard for button in row]


class PhotoSize(Wire, frozen=True):
    file_id: str
    file_unique_id: str
    width: int
    height: int
    file_size: int | None = None


class Message(Wire, frozen=True):
    message_id: int
    date: int
    chat: Chat
    from_: User | None = msgspec.field(default=None, name="from")
    edit_date: int | None = None
    text: str | None = None
    entities: list[MessageEntity] | None = None
    photo: list[PhotoSize] | None = None
    caption: str | None = None
    caption_entities: list[MessageEntity] | None = None
    reply_markup: InlineKeyboardMarkup | None = None


class CallbackQuery(Wire, frozen=True):
    id: str
    from_: User = msgspec.field(name="from")
    chat_instance: str
    message: Message | None = None
    data: str | None = None


class Update(Wire, frozen=True):
    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    callback_query: CallbackQuery | None = None

    @property
    def kind(self) -> str:
        """The update type, as named in allowed_updates."""
        for name in ("message", "edited_message", "callback_query"):
            if getattr(self, name) is not None:
                return name
        raise ValueError(f"update {self.update_id} carries nothing")


class BotCommand(Wire, frozen=True):
    command: str
    description: str


class WebhookInfo(Wire, frozen=True):
    url: str
    has_custom_certificate: bool
    pending_update_count: int
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    max_connections: int | None = None
    allowed_updates: list[str] | None = None


# Method parameters. Unknown fields are ignored, as Telegram ignores them.


class Params(msgspec.Struct, kw_only=True):
    """Parameters of a Bot API method."""


class NoParams(Params):
    pass


class GetUpdates(Params):
    offset: int = 0
    limit: int = 100
    timeout: float = 0
    allowed_updates: list[str] | None = None


class SendMessage(Params):
    chat_id: int | str
    text: str = ""
    parse_mode: str | None = None
    entities: list[MessageEntity] | None = None
    reply_markup: dict[str, Any] | None = None


class SendPhoto(Params):
    chat_id: int | str
    photo: str = ""  # "attach://<field>" for an upload in the same multipart request, or a known file_id
    caption: str | None = None
    parse_mode: str | None = None
    caption_entities: list[MessageEntity] | None = None
    reply_markup: dict[str, Any] | None = None


class EditMessageText(Params):
    chat_id: int | str | None = None
    message_id: int | None = None
    inline_message_id: str | None = None
    text: str = ""
    parse_mode: str | None = None
    entities: list[MessageEntity] | None = None
    reply_markup: dict[str, Any] | None = None


class EditMessageReplyMarkup(Params):
    chat_id: int | str | None = None
    message_id: int | None = None
    inline_message_id: str | None = None
    reply_markup: dict[str, Any] | None = None


class DeleteMessage(Params):
    chat_id: int | str
    message_id: int


class AnswerCallbackQuery(Params):
    callback_query_id: str
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int = 0


class MyCommands(Params):
    commands: list[BotCommand] = []
    scope: dict[str, Any] | None = None
    language_code: str = ""


class SetWebhook(Params):
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    drop_pending_updates: bool = False
    ip_address: str | None = None


class DeleteWebhook(Params):
    drop_pending_updates: bool = False


ParamsT = TypeVar("ParamsT", bound=Params)


def decode_nested(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decode the JSON-encoded nested values of a form or query, leaving plain values as sent."""
    params = dict(raw)
    for key in JSON_PARAMS.intersection(params):
        if isinstance(params[key], str):
            try:
                params[key] = json_decode(params[key])
            except msgspec.DecodeError:
                pass  # left as text; typed conversion reports it as a bad request
    return params


def convert_params(params: dict[str, Any], params_type: type[ParamsT]) -> tuple[ParamsT, dict[str, Any]]:
    """Type the decoded params (form strings become ints and bools) and give the typed view for the record."""
    chat_id = params.get("chat_id")
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        params["chat_id"] = int(chat_id)  # an `int | str` union keeps form text as str; "@channel" stays text
    typed = msgspec.convert(params, params_type, strict=False)
    fields = set(params_type.__struct_fields__)
    recorded = {
        key: msgspec.to_builtins(getattr(typed, key)) if key in fields else value for key, value in params.items()
    }
    return typed, recorded


class Upload(msgspec.Struct, frozen=True):
    """A file sent in a multipart request."""

    filename: str
    data: bytes
