"""The bot's texts: every key exists in every language, and arguments cannot inject markup."""

from __future__ import annotations

import pytest
from fluent.syntax import FluentParser, ast
from fluent.syntax.visitor import Visitor

from shopbot.locales import FOLDER, LANGUAGES, Markup, Texts, pick_language

TEXTS = Texts()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_key(language: str) -> None:
    every_key = set().union(*(TEXTS.keys(other) for other in LANGUAGES))
    missing = sorted(every_key - TEXTS.keys(language))
    assert not missing, f"{language} lacks: {', '.join(missing)}"


class Collect(Visitor):
    """The names of the variables one Fluent message uses."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_VariableReference(self, node: ast.VariableReference) -> None:
        self.names.add(node.id.name)


def variables_of(language: str) -> dict[str, set[str]]:
    """Each message's variables, read from the Fluent files themselves."""
    found: dict[str, set[str]] = {}
    for path in (FOLDER / language).glob("*.ftl"):
        for entry in FluentParser().parse(path.read_text(encoding="utf-8")).body:
            if isinstance(entry, ast.Message):
                collect = Collect()
                collect.visit(entry)
                found[entry.id.name] = collect.names
    return found


def test_every_text_formats_without_errors_in_every_language(caplog: pytest.LogCaptureFixture) -> None:
    for language in LANGUAGES:
        for key, names in variables_of(language).items():
            # Numbers exercise plural selectors; a number also prints fine where text is expected.
            TEXTS.get(language, key, **dict.fromkeys(names, 2))
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "text" in r.getMessage()]


def test_arguments_are_escaped_unless_already_markup() -> None:
    assert "&lt;b&gt;Eve&lt;/b&gt;" in TEXTS.get("en", "welcome", name="<b>Eve</b>")
    assert "<i>x</i>" in TEXTS.get("en", "notice-delivered", what=Markup("<i>x</i>"))


def test_languages_are_picked_from_telegram_codes() -> None:
    assert [pick_language(c) for c in ("ru", "ru-RU", "en-GB", "de", None, "")] == ["ru", "ru", "en", "en", "en", "en"]
