"""Logging: readable lines on a terminal, one JSON object per line elsewhere, secrets redacted."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from shopbot.config.schema import LogConfig

REDACTED = "********"
# Libraries that log every update or request at INFO; an operator wants to see the shop's own lines.
NOISY_LOGGERS = {"aiogram.event": logging.WARNING, "aiogram.dispatcher": logging.WARNING,
                 "hypercorn.access": logging.WARNING, "httpx": logging.WARNING, "asyncpg": logging.WARNING}
_json = msgspec.json.Encoder()
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _json.encode(entry).decode()


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and blanks every known secret in what it produced, tracebacks included."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        # Longest first, so a secret that contains another is blanked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def choose_format(config: LogConfig, stream: Any) -> str:
    """`auto` means text on a terminal and JSON when the output is collected by something else."""
    if config.format != "auto":
        return config.format
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def configure_logging(config: LogConfig, secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Install the root handler; call once at start-up, again to change the secrets redacted."""
    stream = stream or sys.stderr
    if choose_format(config, stream) == "json":
        inner: logging.Formatter = JsonFormatter()
    else:
        inner = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(inner, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "shopbot", False):
            root.removeHandler(old)
    handler.shopbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(config.level)
    for name, level in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(max(level, logging.getLevelName(config.level)))
