"""What an update no longer pays for again and again: the answers' models, arg-less texts, fixed keyboards."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any, cast

import msgspec
import pytest
from aiogram import Bot
from aiogram.methods import EditMessageText, Response, SendMessage, TelegramMethod

from shopbot.bot.keyboards import back_to_menu, main_menu
from shopbot.bot.middlewares import KnownUserMiddleware, ShopUser
from shopbot.bot.routers.balance import balance_keyboard
from shopbot.bot.updates import KeepResponseTypes, keep_response_types
from shopbot.cache import Cache
from shopbot.config.schema import CacheConfig
from shopbot.locales import Texts, Translator

pytestmark = pytest.mark.anyio
TOKEN = "42:TEST"


async def test_the_answers_models_survive_a_full_collection() -> None:
    bot = Bot(TOKEN)
    keep_response_types(bot)
    keep_response_types(bot)  # a second handler on the same bot adds nothing
    assert sum(isinstance(m, KeepResponseTypes) for m in bot.session.middleware) == 1
    seen: list[TelegramMethod[Any]] = []

    async def make_request(bot: Bot, method: TelegramMethod[Any], timeout: int | None = None) -> Any:
        seen.append(method)

    call = bot.session.middleware.wrap_middlewares(make_request)
    for method in (SendMessage(chat_id=1, text="hi"), EditMessageText(chat_id=1, message_id=2, text="hi")):
        await call(bot, method)
        model = weakref.ref(cast(Any, Response)[method.__returning__])  # as aiogram's check_response builds it
        gc.collect()
        assert model() is not None, f"the model of {type(method).__name__}'s answer was collected"
    assert len(seen) == 2  # the call itself went through
    await bot.session.close()


def test_texts_without_arguments_are_the_same_every_time() -> None:
    texts = Texts()
    for language in ("en", "ru"):
        first = texts.get(language, "menu-title")
        assert texts.get(language, "menu-title") == first
        assert first == Texts().get(language, "menu-title")
    assert texts.get("en", "menu-title") != texts.get("ru", "menu-title")
    assert texts.get("en", "welcome", name="<b>") != texts.get("en", "welcome", name="Ann")  # arguments still count


def test_a_missing_text_is_logged_every_time(caplog: pytest.LogCaptureFixture) -> None:
    texts = Texts()
    with caplog.at_level(logging.ERROR, logger="shopbot.locales"):
        assert texts.get("en", "no-such-key") == "no-such-key"
        assert texts.get("en", "no-such-key") == "no-such-key"
    assert [r.getMessage() for r in caplog.records].count("missing text 'no-such-key'") == 2


def test_fixed_keyboards_are_built_once_per_language() -> None:
    texts = Texts()
    en, ru = Translator(texts, "en"), Translator(texts, "ru")
    for keyboard in (main_menu, back_to_menu, balance_keyboard):
        assert keyboard(en) is keyboard(Translator(texts, "en"))
        assert keyboard(en) is not keyboard(ru)
        assert keyboard(ru).model_dump() != keyboard(en).model_dump()  # each in its own language
    fresh = main_menu(Translator(Texts(), "en"))  # another set of texts builds its own
    assert fresh is not main_menu(en)
    assert fresh.model_dump() == main_menu(en).model_dump()


async def test_a_stored_language_choice_goes_into_the_cached_profile() -> None:
    cache = Cache.in_process(CacheConfig())
    users = KnownUserMiddleware(cast(Any, None), Texts(), cache)  # no database: the choice is already stored
    ann = ShopUser(
        id=601,
        username="ann",
        first_name="Ann",
        last_name=None,
        language="en",
        is_premium=False,
        telegram_language="en",
    )
    await cache.put("user", ann.id, ann)
    await users.language_stored(ann, "ru")
    assert await cache.get("user", ann.id, ShopUser) == msgspec.structs.replace(ann, language="ru")
    await users.language_stored(ann, None)  # no row came back: the next update reads the profile afresh
    assert await cache.get("user", ann.id, ShopUser) is None
