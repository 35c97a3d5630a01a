"""The generic readers of configuration values: strings, booleans, counts, names, resources, durations.

``Reader`` collects every issue it finds instead of stopping at the first, so that one run of
``gpupool config check`` lists them all; each reader reports a value it cannot use and returns
None (or a neutral value), and the caller goes on. The readers of each part of the file
(``queues``, ``pools``) build on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpupool.config.schema import Keys, RawField, read_keys
from gpupool.core.configerror import At, ConfigIssue, DurationError, parse_duration
from gpupool.core.configerror import kind as _kind
from gpupool.core.resources import TYPED_GPU_PREFIX, QuantityError, Resources, is_milli, parse_quantity

__all__ = ["Reader"]


class Reader:
    """Reads values of a configuration, collecting issues in ``issues``."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def error(self, at: At, message: str, hint: str = "") -> None:
        self.issues.append(ConfigIssue(at.path, message, hint, at.loc))

    def fields(self, raw: object, at: At, keys: type[Keys], what: str) -> dict[str, RawField] | None:
        """The keys of a mapping, lower-cased, as ``keys`` allows them (see ``schema.read_keys``)."""
        return read_keys(keys, raw, at, what, self.issues)

    def string(self, f: RawField, what: str, *, scalar_ok: bool = False) -> str | None:
        v = f.value
        if isinstance(v, str):
            return v
        if scalar_ok and isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        self.error(f.at, f"{what} must be a string, got {_kind(v)}")
        return None

    def boolean(self, f: RawField, what: str) -> bool | None:
        if isinstance(f.value, bool):
            return f.value
        self.error(f.at, f"{what} must be true or false, got {_kind(f.value)}")
        return None

    def count(self, f: RawField, what: str) -> int | None:
        """A positive integer (maxapplications)."""
        v = f.value
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if not isinstance(v, int) or isinstance(v, bool):
            self.error(f.at, f"{what} must be a whole number >= 1, got {_kind(f.value)}")
            return None
        if v < 1:
            self.error(
                f.at,
                f"{what} is {v}; it must be at least 1 (0 would block every application)",
                f"remove `{what}` for no limit",
            )
            return None
        return v

    def names(self, f: RawField, what: str) -> list[str] | None:
        """A list of strings; a single string is taken as a one-element list."""
        v = f.value
        if v is None:
            return []
        if isinstance(v, str):
            return [v]
        if not isinstance(v, list):
            self.error(f.at, f"{what} must be a list of names, got {_kind(v)}")
            return None
        out: list[str] = []
        for i, item in enumerate(v):
            if isinstance(item, str):
                out.append(item)
            else:
                self.error(f.at.index(i), f"{what} entries must be strings, got {_kind(item)}")
        return out

    def resources(self, f: RawField, what: str) -> Resources | None:
        """A resource map; an empty map or null is None (no setting)."""
        raw = f.value
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.error(f.at, f"{what} must be a map of resource: quantity, got {_kind(raw)}")
            return None
        out: Resources = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not name.strip():
                self.error(f.at, f"resource name {name!r} in {what} must be a non-empty string")
                continue
            rat = f.at.key(name)
            if name.startswith(TYPED_GPU_PREFIX) and not name[len(TYPED_GPU_PREFIX) :]:
                self.error(rat, "`gpu/` needs a GPU type", "write e.g. gpu/H100: 4 (per-GPU-type quota)")
                continue
            try:
                out[name] = parse_quantity(name, value)
            except QuantityError as exc:
                hint = "vcore takes m for milli-cores (500m); memory takes Ki, Mi, Gi, Ti or k, M, G, T"
                if is_milli(name) and name not in ("vcore", "cpu"):
                    hint = f"{name} is counted in GPUs down to a thousandth, e.g. {name}: 4 or {name}: 0.25"
                elif name not in ("vcore", "cpu", "memory"):
                    hint = f"{name} is counted in whole units, e.g. {name}: 4"
                self.error(rat, f"invalid quantity: {exc}", hint)
        return out or None

    def amount(self, f: RawField, what: str, *, minimum: int = 0) -> int | None:
        """A whole number >= ``minimum``."""
        v = f.value
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v.strip())
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            self.error(f.at, f"{what} must be a whole number >= {minimum}, got {_kind(f.value)}")
            return None
        return v

    def integer(self, f: RawField, what: str) -> int | None:
        """A whole number, of any sign (a priority)."""
        v = f.value
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        self.error(f.at, f"{what} must be a whole number, got {_kind(v)}")
        return None

    def number(self, f: RawField, what: str) -> float | None:
        """A number >= 0 (seconds, an age)."""
        v = f.value
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        self.error(f.at, f"{what} must be a number >= 0, got {_kind(v)}")
        return None

    def cost(self, f: RawField, what: str) -> float:
        """A price per hour: a number >= 0."""
        v = f.value
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        self.error(f.at, f"{what} must be a number >= 0, got {_kind(v)}", "write a price per hour, e.g. 2.5")
        return 0.0

    def seconds(self, f: RawField, what: str) -> float | None:
        v = f.value
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        if isinstance(v, str):
            try:
                return parse_duration(v)
            except DurationError as exc:
                self.error(f.at, f"{what}: {exc}", "write a duration such as 90s, 5m or 1h30m")
                return None
        self.error(f.at, f"{what} must be a duration such as 90s or 5m, got {_kind(v)}")
        return None
