"""Reading environment variables: typed values, one problem line per bad variable, and
``Secret`` for the values that must never show themselves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class EnvReader:
    """Reads typed values from variables, collecting one problem line per bad one (a
    secret's value is never part of it)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        return self._values.get(name, "").strip()

    def text(self, name: str, default: str = "") -> str:
        return self.raw(name) or default

    def secret(self, name: str) -> Secret:
        return Secret(self.raw(name))

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name).lower()
        if not value:
            return default
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        self.problems.append(f"{name}: expected true or false, got {self.raw(name)!r}")
        return default

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"{name}: expected a whole number, got {value!r}")
            return default
        if not minimum <= number <= maximum:
            self.problems.append(f"{name}: must be between {minimum} and {maximum}, got {number}")
            return default
        return number

    def _number(
        self, name: str, expected: str, minimum: float, maximum: float, *, positive: bool = False
    ) -> float | None:
        """The variable as a number within bounds; None (a problem noted) otherwise."""
        value = self.raw(name)
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"{name}: expected {expected}, got {value!r}")
            return None
        if not (minimum < number if positive else minimum <= number) or number > maximum:
            low = f"above {minimum:g}" if positive else f"between {minimum:g}"
            high = f"and at most {maximum:g}" if positive else f"and {maximum:g}"
            self.problems.append(f"{name}: must be {low} {high}, got {value}")
            return None
        return number

    def seconds(self, name: str, default: float, maximum: float) -> float:
        if not self.raw(name):
            return default
        number = self._number(name, "a number of seconds", 0, maximum)
        return default if number is None else number

    def optional_integer(self, name: str, minimum: int, maximum: int) -> int | None:
        return self.integer(name, 0, minimum, maximum) if self.raw(name) else None

    def optional_rate(self, name: str, maximum: float) -> float | None:
        if not self.raw(name):
            return None
        return self._number(name, "a number per second", 0, maximum, positive=True)

    def share(self, name: str, default: float, maximum: float) -> float:
        if not self.raw(name):
            return default
        number = self._number(name, "a share such as 0.2", 0, maximum)
        return default if number is None else number

    def address(self, name: str, default: str, *, optional: bool = False) -> str:
        value = self.raw(name)
        if not value:
            return "" if optional else default
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            self.problems.append(
                f"{name}: expected HOST:PORT (e.g. 127.0.0.1:50051), got {value!r}"
            )
            return "" if optional else default
        return value

    def url(self, name: str) -> str:
        value = self.raw(name)
        if value and not value.startswith(("http://", "https://", "ws://", "wss://")):
            self.problems.append(f"{name}: expected an http(s):// or ws(s):// URL, got {value!r}")
            return ""
        return value.rstrip("/")

    def store_url(self, name: str, schemes: tuple[str, ...]) -> Secret:
        value = self.raw(name)
        if value and not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
            # Never echo the value: it may carry a password.
            expected = " or ".join(f"{scheme}://" for scheme in schemes)
            self.problems.append(f"{name}: expected a {expected} URL")
            return Secret("")
        return Secret(value)

    def file_path(self, name: str) -> str:
        value = self.raw(name)
        if value and not Path(value).is_file():
            self.problems.append(f"{name}: file not found: {value}")
        return value
