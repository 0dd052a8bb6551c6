"""A secret string that never shows itself in a repr, a log line or an error."""

from __future__ import annotations

from typing import Any

import msgspec


class Secret:
    """Wraps a secret value; only `reveal()` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself: call this only where it is sent to its owner."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would copy the secret out of this process unmasked.
        raise TypeError("a Secret cannot be pickled")

    def masked(self) -> str:
        """What `config check` prints: whether it is set, never what it is."""
        return "********" if self._value else ""


def decode_hook(type_: type, value: Any) -> Any:
    """msgspec dec_hook: strings become `Secret`s where the schema says so."""
    if type_ is Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value)
        raise ValueError("expected a string")
    raise NotImplementedError(type_)


def encode_hook(value: Any) -> Any:
    """msgspec enc_hook: secrets are written masked."""
    if isinstance(value, Secret):
        return value.masked()
    raise NotImplementedError(type(value))


def secret_values(tree: Any) -> list[str]:
    """Every non-empty secret in a struct tree, for the log redactor."""
    found: list[str] = []
    if isinstance(tree, Secret):
        return [tree.reveal()] if tree else []
    if isinstance(tree, msgspec.Struct):
        for field in msgspec.structs.fields(tree):
            found.extend(secret_values(getattr(tree, field.name)))
    return found
