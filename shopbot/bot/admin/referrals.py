"""What the admin sees of referrals: on the dashboard, who joined through links and what bonuses were paid
(and the top inviters) in the period; on a user's profile, who invited them and whom they invited. A bonus
whose top-up Heleket later reported refunded is shown flagged: the operator decides, nothing is taken back."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shopbot.config.schema import Config
from shopbot.db.queries import queries
from shopbot.locales import Translator
from shopbot.money import format_money

TOP_INVITERS = 5
INVITEES_SHOWN = 10


def who(row: asyncpg.Record) -> str:
    return f"{row['first_name'] or '—'} ({'@' + row['username'] if row['username'] else row['id']})"


async def dashboard_lines(t: Translator, pool: asyncpg.Pool, config: Config, since: datetime) -> list[str]:
    """The period's referral figures, for the dashboard."""
    figures = await queries.referrals.referral_figures(pool, since)
    currency = config.shop.currency
    lines = [
        t(
            "admin-referral-figures",
            count=figures["invited"],
            bonuses=figures["bonuses"],
            amount=format_money(figures["paid"], currency),
        )
    ]
    if figures["flagged"]:
        lines.append(t("admin-referral-flagged", count=figures["flagged"]))
    top = await queries.referrals.top_inviters(pool, since, TOP_INVITERS)
    if top:
        lines.append(
            t("admin-referral-top", what=", ".join(f"{who(row)} {format_money(row['paid'], currency)}" for row in top))
        )
    return lines


async def profile_lines(t: Translator, pool: asyncpg.Pool, config: Config, user_id: int) -> list[str]:
    """Who invited the user, and the users they invited (with what each earned them), for the user lookup."""
    inviter = await queries.referrals.inviter_of(pool, user_id)
    lines = [
        t("admin-referral-invited-by", what=who(inviter), when=f"{inviter['invited_at']:%Y-%m-%d}")
        if inviter
        else t("admin-referral-not-invited")
    ]
    invitees = await queries.referrals.invitees_of(pool, user_id, INVITEES_SHOWN)
    if invitees:
        lines.append(t("admin-referral-invitees", count=invitees[0]["total"]))
        for row in invitees:
            key = "admin-referral-invitee-flagged" if row["flagged"] else "admin-referral-invitee"
            lines.append(
                t(key, what=who(row), amount=format_money(row["earned"], config.shop.currency), count=row["flagged"])
            )
    return lines
