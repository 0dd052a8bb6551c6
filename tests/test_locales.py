"""The bot's texts: every key exists in every language, and arguments cannot inject markup."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shopbot.locales import LANGUAGES, Markup, Texts, pick_language

TEXTS = Texts()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_key(language: str) -> None:
    every_key = set().union(*(TEXTS.keys(other) for other in LANGUAGES))
    missing = sorted(every_key - TEXTS.keys(language))
    assert not missing, f"{language} lacks: {', '.join(missing)}"


def test_every_text_formats_without_errors_in_every_language(caplog: pytest.LogCaptureFixture) -> None:
    sample = {"name": "Ann", "amount": "1.00 USD", "balance": "2.00 USD", "count": 50, "months": 3, "id": 7,
              "recipient": "durov", "what": "x", "reason": "y", "price": Decimal("1"), "shortfall": Decimal("2")}
    for language in LANGUAGES:
        for key in TEXTS.keys(language):
            TEXTS.get(language, key, **sample)
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "text" in r.getMessage()]


def test_arguments_are_escaped_unless_already_markup() -> None:
    assert "&lt;b&gt;Eve&lt;/b&gt;" in TEXTS.get("en", "welcome", name="<b>Eve</b>")
    assert "<i>x</i>" in TEXTS.get("en", "notice-delivered", what=Markup("<i>x</i>"))


def test_languages_are_picked_from_telegram_codes() -> None:
    assert [pick_language(c) for c in ("ru", "ru-RU", "en-GB", "de", None, "")] == ["ru", "ru", "en", "en", "en", "en"]
