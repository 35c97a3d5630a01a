"""What the configuration layers share: issues and errors, locations in the input, Go durations.

``ConfigError`` (a ``ValueError``) carries every ``ConfigIssue`` found in a configuration: where
(a readable path such as ``partitions[0].queues.root.a.resources.max.gpu`` plus the raw key path
``loc``, which the YAML edge turns into a line number), what, and a hint on what to do. ``At`` is
such a location while the configuration is read. ``parse_duration`` parses Go durations
(``preemption.delay``, ``idletimeout``, the ``session.*`` properties)
and writes them back (``format_duration``). Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "At",
    "ConfigError",
    "ConfigIssue",
    "DurationError",
    "format_duration",
    "kind",
    "parse_duration",
]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration.

    ``path`` is the readable location (queues by their path), ``loc`` the raw key path into the
    input mapping (keys as written, list indices as ints), ``line`` the 1-based source line when
    the edge could find it.
    """

    path: str
    message: str
    hint: str = ""
    loc: tuple[str | int, ...] = ()
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """An invalid configuration: every issue found, with where, what and what to do."""

    def __init__(self, issues: Iterable[ConfigIssue], source: str = "<config>") -> None:
        self.issues: list[ConfigIssue] = list(issues)
        self.source = source
        super().__init__(self.render())

    def lines(self) -> list[str]:
        """One ``SOURCE: path: message`` line per issue, each followed by its ``Hint:`` if any."""
        out: list[str] = []
        for issue in self.issues:
            where = f"{issue.path}: " if issue.path else ""
            line = f" (line {issue.line})" if issue.line is not None else ""
            out.append(f"{self.source}: {where}{issue.message}{line}")
            if issue.hint:
                out.append(f"  Hint: {issue.hint}")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())


@dataclass(frozen=True, slots=True)
class At:
    """A location while a configuration is read: the readable ``path`` and the raw key path ``loc``."""

    path: str
    loc: tuple[str | int, ...] = ()

    def key(self, name: str, raw_key: str | None = None) -> At:
        sep = "." if self.path else ""
        return At(self.path + sep + name, (*self.loc, raw_key if raw_key is not None else name))

    def index(self, i: int) -> At:
        return At(f"{self.path}[{i}]", (*self.loc, i))

    def issue(self, message: str, hint: str = "") -> ConfigIssue:
        return ConfigIssue(self.path, message, hint, self.loc)


def kind(value: object) -> str:
    """How a value reads in a message: ``the string 'x'``, ``the number 4``, ``a mapping``..."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


class DurationError(ValueError):
    """A string that is not a Go duration."""


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION_UNIT = r"(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"^[+-]?(?:{_DURATION_NUMBER}{_DURATION_UNIT})+$")
_DURATION_PART = re.compile(rf"({_DURATION_NUMBER})({_DURATION_UNIT})")


def parse_duration(text: str) -> float:
    """Parse a Go duration (``30s``, ``1m30s``, ``500ms``, ``2h``, ``1.5h``) into seconds.

    As Go's ``time.ParseDuration``: a sequence of numbers each with a unit (ns, us, ms, s, m, h),
    optionally signed; ``0`` is the only number allowed without a unit. Raises DurationError.
    """
    if not isinstance(text, str):
        raise DurationError(f"{text!r} is not a duration (expected a string such as 30s, 1m30s, 500ms)")
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if not _DURATION.match(s):
        if re.fullmatch(r"[+-]?[0-9]+(?:\.[0-9]*)?", s):
            raise DurationError(f"{text!r} has no unit (write e.g. {s}s for seconds)")
        raise DurationError(
            f"{text!r} is not a duration (use a number with a unit ns, us, ms, s, m or h, "
            "e.g. 30s, 1m30s, 500ms, 2h)"
        )
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(s))
    return -seconds if s.startswith("-") else seconds


def format_duration(seconds: float) -> str:
    """Seconds as a Go duration, largest units first, whole seconds: ``4h``, ``1h30m``, ``2m5s``, ``0s``.

    What ``parse_duration`` reads back (for whole seconds); fractions of a second are rounded.
    """
    total = round(seconds)
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return sign + ("".join(parts) or "0s")
