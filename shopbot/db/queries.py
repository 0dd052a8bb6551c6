"""Named queries from `sql/queries/*.sql`, in aiosql's `-- name:` format.

Each file is a namespace (`queries.users.upsert_user`). The suffix of a name says what it
returns: `^` one row (or None), `$` one value, `!` nothing (a status), none: all rows.
Parameters are asyncpg's own `$1, $2 …`, so the text PostgreSQL sees is the text in the file.
A statement that takes session state (a session advisory lock, LISTEN, a session setting) marks its
connection before it runs, so the pool resets that connection on release (shopbot/db/connection.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, Protocol

from shopbot.db.connection import mark_session_state
from shopbot.db.sqlfiles import sql_dir

Kind = Literal["rows", "row", "value", "execute"]
_SUFFIX_KIND: dict[str, Kind] = {"^": "row", "$": "value", "!": "execute", "": "rows"}
_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)([\^$!]?)\s*$", re.MULTILINE)
# What outlives the statement and its transaction: session advisory locks (not the _xact_ ones), LISTEN,
# session settings, cursors held open, prepared statements and temporary tables made in SQL. A false
# positive costs one reset round trip; a miss would hand the state to the connection's next user.
_SESSION_STATE = re.compile(
    r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(|\bset_config\s*\(|\bWITH\s+HOLD\b|\bTEMP(?:ORARY)?\s+TABLE\b"
    # Statements that begin so, after any comment lines; comments are not stripped elsewhere, since a false
    # positive is the safe side.
    r"|(?:\A|;)(?:\s|--[^\n]*\n)*(?:LISTEN|DECLARE|PREPARE|SET\s+(?!LOCAL\b|TRANSACTION\b))",
    re.IGNORECASE,
)


class Database(Protocol):
    """Where a query runs: an asyncpg connection or the pool (asyncpg ships no type information)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class Query:
    """One named statement and how its result is read."""

    name: str
    sql: str
    kind: Kind
    session_state: bool = False  # takes state that outlives it: run on an acquired connection, which is marked

    async def __call__(self, db: Database, *args: Any) -> Any:
        """Run on a connection or the pool, returning what the name's suffix promises."""
        if self.session_state:
            mark_session_state(db, f"query {self.name!r}")
        if self.kind == "rows":
            return await db.fetch(self.sql, *args)
        if self.kind == "row":
            return await db.fetchrow(self.sql, *args)
        if self.kind == "value":
            return await db.fetchval(self.sql, *args)
        return await db.execute(self.sql, *args)


def parse_queries(text: str, source: str) -> dict[str, Query]:
    """Split one file into its named queries; a statement without a name is an error."""
    matches = list(_NAME_LINE.finditer(text))
    preamble = text[: matches[0].start()] if matches else text
    if any(line.strip() and not line.strip().startswith("--") for line in preamble.splitlines()):
        raise ValueError(f"{source}: SQL before the first '-- name:' line")
    queries: dict[str, Query] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        name = match.group(1)
        if name in queries:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        if not body:
            raise ValueError(f"{source}: query {name!r} has no SQL")
        queries[name] = Query(name, body, _SUFFIX_KIND[match.group(2)], takes_session_state(body))
    return queries


def takes_session_state(sql: str) -> bool:
    """Whether `sql` leaves something in the session after it and its transaction end."""
    return _SESSION_STATE.search(sql) is not None


def load_query_file(path: Path) -> SimpleNamespace:
    """One query file as a namespace of `Query` objects."""
    return SimpleNamespace(**parse_queries(path.read_text(encoding="utf-8"), path.name))


def load_queries(folder: Path | None = None) -> SimpleNamespace:
    """Every query file of a folder (`sql/queries` unless told), each as a namespace of `Query` objects."""
    folder = folder or sql_dir() / "queries"
    return SimpleNamespace(**{path.stem: load_query_file(path) for path in sorted(folder.glob("*.sql"))})


queries = load_queries()
