"""How any part of the shop tells the admins something: an `Alert` is called with the text to send.

The bot implements it (`bot.notices.admin_alert`); the parts that raise alerts (the supervisor, the
order worker, the wallet watch, the cost guard) only know this type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Alert = Callable[[str], Awaitable[None]]
