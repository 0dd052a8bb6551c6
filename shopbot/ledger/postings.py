"""The statements that move money (`sql/ledger/postings.sql`): only the ledger may import this module.

import-linter's "Only the ledger writes balances" contract (pyproject.toml) forbids every other package to
import it, so no code outside `shopbot.ledger` can post a movement or change a cached balance.
"""

from __future__ import annotations

from shopbot.db.queries import load_query_file
from shopbot.db.sqlfiles import sql_dir

postings = load_query_file(sql_dir() / "ledger" / "postings.sql")
