"""What the sandbox page shows, as its JSON API answers it: test users, chat messages (Telegram's text and
entities as HTML, the inline buttons), and the emulated Fragment's orders and payments for the side panel."""

from __future__ import annotations

import base64
import html
import itertools
import re
from decimal import Decimal
from typing import Literal, TypedDict

from shopbot.sandbox.fragment_chain import FragmentPayment
from shopbot.sandbox.fragment_wire import Order
from shopbot.sandbox.telegram import TelegramEmulator
from shopbot.sandbox.telegram_wire import InlineKeyboardButton, Message, MessageEntity, User

# Where the emulated Heleket says its hosted payment page is; the chat opens its own /pay page instead.
HELEKET_PAGE = re.compile(r"https://pay\.heleket\.com/pay/([0-9a-f-]{36})")
# Entity types the page draws as the plain HTML tag of the same meaning.
TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "expandable_blockquote": "blockquote",
}


class UserView(TypedDict):
    """A test user as the page lists them."""

    id: int
    first_name: str
    username: str | None
    language_code: str | None


class ButtonView(TypedDict):
    """An inline button as the page draws it: it presses callback_data or opens url (ours for an invoice)."""

    text: str
    callback_data: str | None
    url: str | None


# A message in the chat as the page draws it: from the bot or the user, its text as HTML, its buttons.
MessageView = TypedDict(
    "MessageView",
    {
        "id": int,
        "from": Literal["bot", "user"],
        "date": int,
        "edited": bool,
        "html": str,
        "keyboard": list[list[ButtonView]],
    },
)


class OrderView(TypedDict):
    """An order on the emulated Fragment, as the side panel lists it."""

    id: str
    status: str
    product: str
    amount: int
    username: str
    cost: str
    fee: str
    txid: str | None
    created_at: int


class PaymentView(TypedDict):
    """A payment the emulated chain applied, as the side panel lists it."""

    order_ids: list[str]
    ton: str
    outcome: str
    transaction_hash: str
    time: float


def render_html(text: str, entities: list[MessageEntity] | None) -> str:
    """The message as HTML, from Telegram's text and entities (offsets in UTF-16 code units)."""
    units = text.encode("utf-16-le")
    opening: dict[int, list[MessageEntity]] = {}
    closing: dict[int, list[str]] = {}
    for entity in sorted(entities or [], key=lambda e: (e.offset, -e.length)):
        opening.setdefault(entity.offset, []).append(entity)
    out: list[str] = []
    bounds = sorted({0, len(units) // 2, *opening, *(e.offset + e.length for e in entities or [])})
    for start, end in itertools.pairwise(bounds):
        out.extend(reversed(closing.pop(start, [])))
        for entity in opening.get(start, []):
            tag, close = open_tag(entity, units[2 * start : 2 * (start + entity.length)].decode("utf-16-le"))
            out.append(tag)
            closing.setdefault(entity.offset + entity.length, []).append(close)
        out.append(html.escape(units[2 * start : 2 * end].decode("utf-16-le")))
    for rest in sorted(closing):
        out.extend(reversed(closing[rest]))
    return "".join(out).replace("\n", "<br>")


def open_tag(entity: MessageEntity, covered: str) -> tuple[str, str]:
    if entity.type in TAGS:
        return f"<{TAGS[entity.type]}>", f"</{TAGS[entity.type]}>"
    if entity.type == "spoiler":
        return '<span class="spoiler">', "</span>"
    if entity.type in ("text_link", "url"):
        target = local_url(entity.url or covered)
        return f'<a href="{html.escape(target)}" target="_blank" rel="noopener">', "</a>"
    if entity.type == "bot_command":
        return f'<a href="#" class="command" data-command="{html.escape(covered)}">', "</a>"
    return f'<span class="{html.escape(entity.type)}">', "</span>"


def local_url(url: str) -> str:
    """The chat's own payment page for a Heleket invoice link; any other URL unchanged."""
    found = HELEKET_PAGE.fullmatch(url)
    return f"/pay/{found.group(1)}" if found else url


def button_view(button: InlineKeyboardButton) -> ButtonView:
    """What the page needs to draw a button and press it (GET /api/chats/{id}/messages)."""
    return {
        "text": button.text,
        "callback_data": button.callback_data,
        "url": local_url(button.url) if button.url else None,
    }


def order_view(order: Order) -> OrderView:
    return {
        "id": order.id,
        "status": order.status,
        "product": order.product,
        "amount": order.amount,
        "username": order.username,
        "cost": order.cost,
        "fee": order.fee,
        "txid": order.txid,
        "created_at": order.created_at,
    }


def payment_view(payment: FragmentPayment) -> PaymentView:
    return {
        "order_ids": list(payment.order_ids),
        "ton": str(Decimal(payment.amount_nano) / 10**9),
        "outcome": payment.outcome,
        "transaction_hash": payment.transaction_hash,
        "time": payment.time,
    }


def user_view(user: User) -> UserView:
    return {
        "id": user.id,
        "first_name": user.first_name,
        "username": user.username,
        "language_code": user.language_code,
    }


def message_view(telegram: TelegramEmulator, message: Message) -> MessageView:
    """The message as it stands in the emulated chat; a photo (the admin's sales chart) is shown inline, its
    caption below it."""
    mine = message.from_ is not None and message.from_.id == telegram.bot_id
    keyboard = message.reply_markup.inline_keyboard if message.reply_markup else []
    body = render_html(message.text or message.caption or "", message.entities or message.caption_entities)
    if message.photo:
        data = telegram.photo(message)
        kind = "png" if data.startswith(b"\x89PNG") else "jpeg"
        body = (
            f'<img src="data:image/{kind};base64,{base64.b64encode(data).decode()}" alt="photo" '
            f'style="max-width:100%;display:block">{body}'
        )
    return {
        "id": message.message_id,
        "from": "bot" if mine else "user",
        "date": message.date,
        "edited": message.edit_date is not None,
        "html": body,
        "keyboard": [[button_view(button) for button in row] for row in keyboard],
    }
