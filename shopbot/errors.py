"""Errors that end in one clear line for the operator, and the one refusal a user is shown."""

from __future__ import annotations

from decimal import Decimal


class ShopbotError(Exception):
    """Base of every error shopbot reports to an operator as one line."""


class Refused(ShopbotError):
    """A user's request (an order, a top-up) cannot be done as asked; nothing was done. `reason` is stable
    (for code and metrics), the message is for the user; `shortfall` is set when the balance does not
    cover the price."""

    def __init__(self, reason: str, message: str, shortfall: Decimal | None = None) -> None:
        self.reason = reason
        self.shortfall = shortfall
        super().__init__(message)


class ConfigError(ShopbotError):
    """The configuration cannot be used; each problem names its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class PortInUseError(ShopbotError):
    """A listening port is already taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(f"port {port} on {host} is already in use")
