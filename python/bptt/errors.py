"""The error a user can fix: bad input to `bptt train`, `bptt sample` or `bptt check`; and the
checks of single values that raise it."""

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "OutputLost",
    "SettingError",
    "UsageError",
    "check_integer",
    "check_number",
    "shown",
    "writing",
]


class UsageError(Exception):
    """A bad file, text, checkpoint or option; the command line prints its message on one line
    and exits with status 2, without a traceback."""


class OutputLost(Exception):
    """Standard output took no more text (a closed pipe, as `| head` leaves it; a full disk):
    the command line says so on stderr, in one line with what was done about it, and exits with
    status 1."""

    def __init__(self, error: OSError, what_then: str = ""):
        super().__init__(
            f"standard output: {error.strerror or error}" + (f"; {what_then}" if what_then else "")
        )


class SettingError(UsageError):
    """A UsageError about settings, which its message names as the library does ("hidden",
    "seq_len": TrainConfig's fields) and a caller may name otherwise (the command line: by its
    options, "--hidden"). `describe(name)` is the message with `name(setting)` for each setting;
    str() is `describe` with each named as given."""

    def __init__(self, describe: Callable[[Callable[[str], str]], str]):
        super().__init__(describe(lambda setting: setting))
        self.describe = describe

    @classmethod
    def invalid(cls, setting: str, problem: str) -> "SettingError":
        """The error "{setting}: {problem}", e.g. "hidden: expected an integer >= 1, got 0"."""
        return cls(lambda name: f"{name(setting)}: {problem}")


def check_integer(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """value, if it is an integer (not a bool) in [minimum, maximum]; else a SettingError about
    the setting `name`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        expected = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise SettingError.invalid(name, f"expected an integer {expected}, got {shown(value)}")
    return value


def check_number(
    name: str, value: object, *, zero_allowed: bool = False, maximum: float | None = None
) -> float:
    """value, if it is a finite number > 0 (>= 0 when zero_allowed; <= maximum); else a
    SettingError about the setting `name`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not _is_finite(value)
        or value < 0
        or (value == 0 and not zero_allowed)
        or (maximum is not None and value > maximum)
    ):
        expected = (
            f"a finite number {'>=' if zero_allowed else '>'} 0"
            if maximum is None
            else f"a number in {'[' if zero_allowed else '('}0, {maximum:g}]"
        )
        raise SettingError.invalid(name, f"expected {expected}, got {shown(value)}")
    return value


def shown(value: object, limit: int = 60) -> str:
    """repr(value) for a message, its middle elided beyond `limit` characters (a JSON integer
    of 400 digits)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}…{text[-(limit // 2) :]} ({len(text)} characters)"


def _is_finite(value: float) -> bool:
    """Whether value is a finite float or an integer a float can hold (10**400 is neither)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """An OSError while writing `path` (a full disk, no permission, a directory in the way) as a
    UsageError naming it."""
    try:
        yield
    except OSError as error:
        raise UsageError(f"{path}: cannot write it ({error.strerror or error})") from None
