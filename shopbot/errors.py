"""Errors that end in one clear line for the operator."""


class ShopbotError(Exception):
    """Base of every error shopbot reports to an operator as one line."""


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
