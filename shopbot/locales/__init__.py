"""The bot's texts, in Fluent files: `shopbot/locales/<language>/*.ftl`.

Fluent because it gets Russian plural forms right ("1 звезда, 2 звезды, 5 звёзд") inside the text
file, where a translator can see them, rather than in code. Every argument is HTML-escaped before it
is placed, since the bot sends HTML: a username or a reason can never inject markup.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from fluent.runtime import FluentBundle, FluentResource

log = logging.getLogger(__name__)
LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"
FOLDER = Path(__file__).resolve().parent


def pick_language(code: str | None) -> str:
    """The shop language for a Telegram language_code ("ru-RU" → "ru"; anything unknown → English)."""
    short = (code or "").split("-")[0].lower()
    return short if short in LANGUAGES else DEFAULT_LANGUAGE


class Markup(str):
    """Text that is already safe HTML (another formatted message): placed as it is, not escaped again."""


def _argument(value: Any) -> Any:
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Decimal):
        return f"{value:.2f}"  # money to the cent; Fluent's own number formatting would localise separators
    return value


class Texts:
    """Every language's messages; `get(lang, key, **args)` formats one. A message without arguments is
    formatted once and remembered (the texts never change while the shop runs)."""

    def __init__(self, folder: Path = FOLDER) -> None:
        self._bundles: dict[str, FluentBundle] = {}
        self._plain: dict[tuple[str, str], str] = {}
        for language in LANGUAGES:
            bundle = FluentBundle([language], use_isolating=False)
            for path in sorted((folder / language).glob("*.ftl")):
                bundle.add_resource(FluentResource(path.read_text(encoding="utf-8")))
            self._bundles[language] = bundle

    def keys(self, language: str) -> set[str]:
        return set(self._bundles[language]._messages)

    def has(self, language: str, key: str) -> bool:
        return self._bundles[language].has_message(key)

    def get(self, language: str, key: str, **args: Any) -> str:
        """The formatted message; falls back to English, then to the key itself (and logs it)."""
        if args:
            return self._format(language, key, args)
        text = self._plain.get((language, key))
        if text is None:
            text = self._format(language, key, args)
        return text

    def _format(self, language: str, key: str, args: dict[str, Any]) -> str:
        bundle = self._bundles.get(language) or self._bundles[DEFAULT_LANGUAGE]
        if not bundle.has_message(key):
            bundle = self._bundles[DEFAULT_LANGUAGE]
            if not bundle.has_message(key):
                log.error("missing text %r", key)
                return key
        message = bundle.get_message(key)
        if message.value is None:
            return key
        text, errors = bundle.format_pattern(message.value, {k: _argument(v) for k, v in args.items()})
        for error in errors:
            log.error("text %r in %s: %s", key, language, error)
        if not isinstance(text, str):
            return key  # not a text: a cyclic reference, logged just above
        if not args and not errors and language in self._bundles:  # bounded: known languages, existing keys
            self._plain[language, key] = text
        return text


class Translator:
    """Texts bound to one user's language: what handlers receive as `t`."""

    def __init__(self, texts: Texts, language: str) -> None:
        self.texts = texts
        self.language = language

    def __call__(self, key: str, **args: Any) -> str:
        return self.texts.get(self.language, key, **args)
