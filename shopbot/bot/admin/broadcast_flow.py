"""/broadcast and the admin menu's Broadcast button: compose a message (its formatting kept), an optional
link button, a segment, then a preview exactly as users will get it with the recipient count, and Send or
Cancel. The progress message that follows can pause, resume or cancel the sending.

Each handler checks its own filter (the command, the `adm_bc` prefix, a compose state) before `IsAdmin`,
so only attempts at the admin area are checked and logged; a non-admin's falls through to the ordinary bot.
"""

from __future__ import annotations

import asyncpg
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, Filter, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.admin.broadcast_screens import (
    BroadcastPress,
    BroadcastStep,
    button_keyboard,
    confirm_screen,
    progress_screen,
    quit_keyboard,
    recipient_counts,
    segment_keyboard,
)
from shopbot.bot.admin.broadcasts import (
    CHANGES,
    SEGMENTS,
    change_broadcast,
    count_segment,
    create_draft,
    get_broadcast,
    parse_button,
    start_broadcast,
)
from shopbot.bot.screens import show
from shopbot.locales import Translator


class ComposeBroadcast(StatesGroup):
    text = State()
    button = State()
    segment = State()


async def on_broadcast_command(message: Message, state: FSMContext, t: Translator) -> None:
    await state.set_state(ComposeBroadcast.text)
    await message.answer(t("broadcast-ask-text"), reply_markup=quit_keyboard(t))


async def on_new_broadcast(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(ComposeBroadcast.text)
    await show(query, t("broadcast-ask-text"), quit_keyboard(t))


async def on_text_composed(message: Message, state: FSMContext, t: Translator) -> None:
    # html_text keeps the admin's formatting (bold, links, spoilers…) as the HTML the bot sends with.
    await state.update_data(text=message.html_text)
    await state.set_state(ComposeBroadcast.button)
    await message.answer(t("broadcast-ask-button"), reply_markup=button_keyboard(t))


async def on_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("broadcast-text-only"), reply_markup=quit_keyboard(t))


async def on_button_typed(message: Message, state: FSMContext, t: Translator) -> None:
    button = parse_button(message.text or "")
    if button is None:
        await message.answer(t("broadcast-bad-button"), reply_markup=button_keyboard(t))
        return
    await state.update_data(button=list(button))
    await state.set_state(ComposeBroadcast.segment)
    await message.answer(t("broadcast-ask-segment"), reply_markup=segment_keyboard(t))


async def on_button_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("broadcast-bad-button"), reply_markup=button_keyboard(t))


async def on_no_button(query: CallbackQuery, state: FSMContext, t: Translator, callback_answer: CallbackAnswer) -> None:
    if await state.get_state() != ComposeBroadcast.button.state:
        stale(callback_answer, t)
        return
    await state.update_data(button=None)
    await state.set_state(ComposeBroadcast.segment)
    await show(query, t("broadcast-ask-segment"), segment_keyboard(t))


async def on_segment_typed(message: Message, t: Translator) -> None:
    await message.answer(t("broadcast-ask-segment"), reply_markup=segment_keyboard(t))


async def on_segment(
    query: CallbackQuery,
    callback_data: BroadcastPress,
    state: FSMContext,
    t: Translator,
    pool: asyncpg.Pool,
    bot: Bot,
    callback_answer: CallbackAnswer,
) -> None:
    """The draft is stored, then shown as every recipient will see it, with the count and Send / Cancel."""
    data = await state.get_data()
    if (
        await state.get_state() != ComposeBroadcast.segment.state
        or callback_data.arg not in SEGMENTS
        or not isinstance(data.get("text"), str)
    ):
        stale(callback_answer, t)
        return
    button = data.get("button")
    draft = await create_draft(
        pool,
        admin_id=query.from_user.id,
        admin_language=t.language,
        text=data["text"],
        button=(button[0], button[1]) if button else None,
        segment=callback_data.arg,
    )
    await state.clear()
    await show(query, t("broadcast-preview-below"))
    try:
        await bot.send_message(query.from_user.id, draft.text, reply_markup=draft.markup())
    except TelegramBadRequest as exc:  # Telegram refused it: nobody else would get it either
        await bot.send_message(query.from_user.id, t("broadcast-preview-refused", reason=exc.message))
        await change_broadcast(pool, draft.id, "cancel", admin_id=query.from_user.id)
        return
    text, markup = confirm_screen(t, draft, await count_segment(pool, callback_data.arg))
    await bot.send_message(query.from_user.id, text, reply_markup=markup)


async def on_send(
    query: CallbackQuery,
    callback_data: BroadcastPress,
    t: Translator,
    pool: asyncpg.Pool,
    callback_answer: CallbackAnswer,
) -> None:
    """Draft → sending, once; the confirmation becomes the progress message the sender keeps current."""
    broadcast_id = parse_id(callback_data.arg)
    message = query.message
    started = None
    if broadcast_id is not None and isinstance(message, Message):
        started = await start_broadcast(
            pool,
            broadcast_id,
            admin_id=query.from_user.id,
            progress_chat_id=message.chat.id,
            progress_message_id=message.message_id,
        )
    if started is None:
        await already(query, broadcast_id, t, pool, callback_answer)
        return
    callback_answer.text = t("broadcast-started", count=started.total)
    await show(query, *progress_screen(t, started, await recipient_counts(pool, started.id)))
    # A small broadcast may be over already, its final screen shown: do not leave ours over it.
    current = await get_broadcast(pool, started.id)
    if current is not None and current.state != "sending":
        await show(query, *progress_screen(t, current, await recipient_counts(pool, started.id)))


async def on_change(
    query: CallbackQuery,
    callback_data: BroadcastPress,
    t: Translator,
    pool: asyncpg.Pool,
    callback_answer: CallbackAnswer,
) -> None:
    """Pause, resume or cancel: the sender sees it at its very next recipient."""
    broadcast_id = parse_id(callback_data.arg)
    changed = None
    if broadcast_id is not None:
        changed = await change_broadcast(pool, broadcast_id, callback_data.action, admin_id=query.from_user.id)
    if changed is None:
        await already(query, broadcast_id, t, pool, callback_answer)
        return
    callback_answer.text = t(f"broadcast-{callback_data.action}-done")
    if changed.started_at is None:  # a draft: nothing was sent
        await show(query, t("broadcast-draft-cancelled", id=changed.id))
        return
    await show(query, *progress_screen(t, changed, await recipient_counts(pool, changed.id)))


async def on_quit(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.clear()
    await show(query, t("broadcast-quit-done"))


async def on_unknown_press(query: CallbackQuery, t: Translator, callback_answer: CallbackAnswer) -> None:
    stale(callback_answer, t)


def parse_id(arg: str) -> int | None:
    return int(arg) if arg.isdigit() and 0 < int(arg) < 2**63 else None


def stale(callback_answer: CallbackAnswer, t: Translator) -> None:
    callback_answer.text = t("broadcast-stale")
    callback_answer.show_alert = True


async def already(
    query: CallbackQuery, broadcast_id: int | None, t: Translator, pool: asyncpg.Pool, callback_answer: CallbackAnswer
) -> None:
    """A press that no longer applies (a second Send, a stale preview, a forged id): say where it stands."""
    broadcast = None if broadcast_id is None else await get_broadcast(pool, broadcast_id)
    if broadcast is None:
        stale(callback_answer, t)
        return
    callback_answer.text = t("broadcast-already", id=broadcast.id, state=t(f"broadcast-is-{broadcast.state}"))
    callback_answer.show_alert = True


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.message.register(on_broadcast_command, Command("broadcast"), is_admin)
    router.callback_query.register(on_new_broadcast, BroadcastStep.filter(F.action == "new"), is_admin)
    # Compose states: any command has already left them (CommandsLeaveFlows), so text here is the content.
    router.message.register(on_text_composed, StateFilter(ComposeBroadcast.text), is_admin, F.text)
    router.message.register(on_not_text, StateFilter(ComposeBroadcast.text), is_admin)
    router.message.register(on_button_typed, StateFilter(ComposeBroadcast.button), is_admin, F.text)
    router.message.register(on_button_not_text, StateFilter(ComposeBroadcast.button), is_admin)
    router.message.register(on_segment_typed, StateFilter(ComposeBroadcast.segment), is_admin)
    router.callback_query.register(on_no_button, BroadcastStep.filter(F.action == "nobutton"), is_admin)
    router.callback_query.register(on_quit, BroadcastStep.filter(F.action == "quit"), is_admin)
    router.callback_query.register(on_segment, BroadcastPress.filter(F.action == "segment"), is_admin)
    router.callback_query.register(on_send, BroadcastPress.filter(F.action == "send"), is_admin)
    router.callback_query.register(on_change, BroadcastPress.filter(F.action.in_(CHANGES)), is_admin)
    router.callback_query.register(on_unknown_press, or_f(BroadcastStep.filter(), BroadcastPress.filter()), is_admin)
    return router
