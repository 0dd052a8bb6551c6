"""The rules Telegram applies to message content, as the emulator applies them: HTML parse mode and
entities, captions, photos, inline keyboards, and the /command entities of incoming text."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from shopbot.sandbox.telegram_wire import ApiError, InlineKeyboardMarkup, MessageEntity

MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![^\s])")


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, the unit of entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[MessageEntity]:
    """bot_command entities for every /command, as Telegram adds them to incoming text."""
    return [
        MessageEntity(type="bot_command", offset=utf16_length(text[: m.start()]), length=utf16_length(m.group()))
        for m in _COMMAND.finditer(text)
    ]


def format_text(
    text: str, parse_mode: str | None, entities: list[MessageEntity] | None
) -> tuple[str, list[MessageEntity] | None]:
    """The text and entities Telegram would store; only HTML is parsed (Markdown passes through as is)."""
    if not entities and parse_mode and parse_mode.lower() == "html":
        try:
            text, entities = parse_html(text)
        except EntityParseError as error:
            raise ApiError(400, f"Bad Request: can't parse entities: {error}") from None
    elif not entities and parse_mode and parse_mode.lower() not in ("markdown", "markdownv2"):
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if utf16_length(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    return text, entities or None


def format_caption(
    caption: str | None, parse_mode: str | None, entities: list[MessageEntity] | None
) -> tuple[str | None, list[MessageEntity] | None]:
    """A media caption as Telegram stores it: like a text, but it may be empty and is at most 1024 long."""
    if not caption or not caption.strip():
        return None, None
    text, found = format_text(caption, parse_mode, entities)
    if utf16_length(text) > MAX_CAPTION:
        raise ApiError(400, "Bad Request: message caption is too long")
    return text, found


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG (from its IHDR chunk) or a JPEG (from its SOF marker); None if it is neither."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        index = 2
        while index + 9 <= len(data) and data[index] == 0xFF:
            marker, length = data[index + 1], int.from_bytes(data[index + 2 : index + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2):
                return int.from_bytes(data[index + 7 : index + 9], "big"), int.from_bytes(
                    data[index + 5 : index + 7], "big"
                )
            index += 2 + length
    return None


def inline_markup(markup: dict[str, Any] | None) -> InlineKeyboardMarkup | None:
    """The inline keyboard a message carries; reply keyboards are accepted but, as in Telegram, not echoed."""
    if markup is None or "inline_keyboard" not in markup:
        return None
    try:
        keyboard = msgspec.convert(markup, InlineKeyboardMarkup)
    except msgspec.ValidationError:
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object") from None
    for button in keyboard.buttons():
        actions = [
            name
            for name in button.__struct_fields__
            if name not in ("text", "pay") and getattr(button, name) is not None
        ] + (["pay"] if button.pay else [])
        if not actions:
            raise ApiError(
                400,
                "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
            )
        if button.callback_data is not None and not 1 <= len(button.callback_data.encode()) <= 64:
            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return keyboard if keyboard.buttons() else None


class EntityParseError(ValueError):
    """Markup Telegram would refuse with "can't parse entities"."""


_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_CHARACTER_REFERENCE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_NAMED_CHARACTERS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_START_TAG = re.compile(r"<([^\s>]*)")
_ATTRIBUTE = re.compile(r"\s*([A-Za-z0-9_-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_END_TAG = re.compile(r"</([^\s>]*)\s*>")


class _OpenTag(msgspec.Struct):
    name: str
    attributes: dict[str, str]
    start: int  # UTF-16 offset in the parsed text
    language: str | None = None


def parse_html(markup: str) -> tuple[str, list[MessageEntity]]:
    """Turn parse_mode=HTML text into plain text and entities, refusing what Telegram refuses."""
    pieces: list[str] = []
    position = 0  # UTF-16 length of the text so far
    stack: list[_OpenTag] = []
    entities: list[MessageEntity] = []
    index = 0
    while index < len(markup):
        char = markup[index]
        if char == "&" and (reference := _CHARACTER_REFERENCE.match(markup, index)):
            piece, index = _resolve_reference(reference), reference.end()
        elif char != "<":
            piece, index = char, index + 1
        elif markup.startswith("</", index):
            index = _close_tag(markup, index, stack, position, entities)
            continue
        else:
            index = _open_tag(markup, index, stack, position)
            continue
        pieces.append(piece)
        position += utf16_length(piece)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda entity: (entity.offset, -entity.length))
    return "".join(pieces), entities


def _byte_offset(markup: str, index: int) -> int:
    return len(markup[:index].encode())


def _resolve_reference(reference: re.Match[str]) -> str:
    decimal, hexadecimal, name = reference.groups()
    if name:
        return _NAMED_CHARACTERS[name]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    return chr(code) if code <= 0x10FFFF else reference.group()


def _open_tag(markup: str, index: int, stack: list[_OpenTag], position: int) -> int:
    offset = _byte_offset(markup, index)
    match = _START_TAG.match(markup, index)
    assert match is not None  # the pattern accepts an empty name
    name, cursor = match.group(1).lower(), match.end()
    if cursor >= len(markup):
        raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
    if name not in _TAG_TYPES:
        raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
    attributes: dict[str, str] = {}
    while not markup.startswith(">", cursor):
        attribute = _ATTRIBUTE.match(markup, cursor)
        if attribute is None or attribute.end() >= len(markup):
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        key, *values = attribute.groups()
        attributes[key.lower()] = next((value for value in values if value is not None), "")
        cursor = attribute.end()
        while cursor < len(markup) and markup[cursor].isspace():
            cursor += 1
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    stack.append(_OpenTag(name, attributes, position))
    return cursor + 1


def _close_tag(markup: str, index: int, stack: list[_OpenTag], position: int, entities: list[MessageEntity]) -> int:
    offset = _byte_offset(markup, index)
    match = _END_TAG.match(markup, index)
    if match is None:
        raise EntityParseError(f"Unclosed end tag at byte offset {offset}")
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
    name = match.group(1).lower()
    tag = stack.pop()
    if name and name != tag.name:
        raise EntityParseError(
            f'Unmatched end tag at byte offset {offset}, expected "</{tag.name}>", found "</{name}>"'
        )
    language = tag.attributes.get("class", "").removeprefix("language-")
    if tag.name == "code" and stack and stack[-1].name == "pre":
        stack[-1].language = language or None  # <pre><code class="language-x"> is one pre entity
    elif position > tag.start and (tag.name != "a" or tag.attributes.get("href")):
        entities.append(_entity(tag, position))
    return match.end()


def _entity(tag: _OpenTag, position: int) -> MessageEntity:
    kind = _TAG_TYPES[tag.name]
    if tag.name == "blockquote" and "expandable" in tag.attributes:
        kind = "expandable_blockquote"
    return MessageEntity(
        type=kind,
        offset=tag.start,
        length=position - tag.start,
        url=tag.attributes.get("href") if kind == "text_link" else None,
        language=tag.language,
        custom_emoji_id=tag.attributes.get("emoji-id") if kind == "custom_emoji" else None,
    )
