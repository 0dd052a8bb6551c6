"""A handler that fails: logged with its update id, counted, and the user gets an apology.

A database too busy to lend a connection is not a bug: the pool already logged it with what to do, so
here it is only counted, and the user is told the shop is busy and to try again (nothing was done). A
database out of reach (restarting, say) is not a bug either: one warning line, no traceback, the same
answer to the user; the shop recovers on its own when the database is back.
"""

from __future__ import annotations

import logging

from aiogram.types import ErrorEvent

from shopbot.db.pool import OUTAGE_RETRY_SECONDS, DatabaseBusyError, is_outage
from shopbot.locales import DEFAULT_LANGUAGE, Texts, pick_language
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)


def error_handler(texts: Texts, metrics: Metrics):  # type: ignore[no-untyped-def]
    async def on_handler_error(event: ErrorEvent) -> bool:
        update = event.update
        exc = event.exception
        wait: float | None = None  # seconds to tell the user when the database, not the handler, failed
        if isinstance(exc, DatabaseBusyError):
            metrics.errors.labels("database_busy").inc()
            wait = exc.waited
        elif is_outage(exc):
            metrics.errors.labels("database_unavailable").inc()
            log.warning("update %s: the database is out of reach (%s: %s)", update.update_id, type(exc).__name__, exc)
            wait = OUTAGE_RETRY_SECONDS
        else:
            metrics.errors.labels("handler").inc()
            log.error("update %s failed: %s", update.update_id, exc, exc_info=exc)
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
            if wait is None
            else texts.get(language, "limit-busy", seconds=max(1, round(wait)))
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
