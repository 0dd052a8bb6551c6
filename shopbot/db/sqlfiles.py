"""Where the SQL files are: `sql/` in a checkout, `shopbot/_sql` in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def sql_dir() -> Path:
    """The folder holding `migrations/` and `queries/`."""
    for candidate in (_PACKAGE.parent / "sql", _PACKAGE / "_sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("the sql/ folder is missing from this installation")
