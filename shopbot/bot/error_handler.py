"""A handler that fails: logged with its update id, counted, and the user gets an apology.

A database too busy to lend a connection is not a bug: the pool already logged it with what to do, so
here it is only counted, and the user is told the shop is busy and to try again (nothing was done).
"""

from __future__ import annotations

import logging

from aiogram.types import ErrorEvent

from shopbot.db.pool import DatabaseBusyError
from shopbot.locales import DEFAULT_LANGUAGE, Texts, pick_language
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)


def error_handler(texts: Texts, metrics: Metrics):  # type: ignore[no-untyped-def]
    async def on_handler_error(event: ErrorEvent) -> bool:
        update = event.update
        busy = event.exception if isinstance(event.exception, DatabaseBusyError) else None
        if busy is None:
            metrics.errors.labels("handler").inc()
            log.error("update %s failed: %s", update.update_id, event.exception, exc_info=event.exception)
        else:
            metrics.errors.labels("database_busy").inc()
        user = (
            update.message.from_user
            if update.message
            else update.callback_query.from_user
            if update.callback_query
            else None
        )
        language = pick_language(user.language_code) if user else DEFAULT_LANGUAGE
        text = (
            texts.get(language, "error-apology")
            if busy is None
            else texts.get(language, "limit-busy", seconds=max(1, round(busy.waited)))
        )
        try:
            if update.callback_query is not None:
                await update.callback_query.answer(text, show_alert=True)
            elif update.message is not None:
                await update.message.answer(text)
        except Exception:
            log.warning("could not apologise for update %s", update.update_id)
        return True

    return on_handler_error
