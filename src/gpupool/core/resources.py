"""Resource quantities: parsing, and arithmetic on open resource maps.

A resource map is a plain ``dict[str, int]`` (resource name -> quantity). Names are free
(``gpu``, ``vcore``, ``memory``, ``nvidia.com/gpu``, ``first``); only a few have meaning:

* ``vcore`` and ``cpu`` are counted in milli-cores, as in YuniKorn (``vcore: 1`` is 1000);
* the GPU resources (``gpu``, ``nvidia.com/gpu``, ``amd.com/gpu``) and the typed ``gpu/<TYPE>``
  are counted in milli-GPU (``gpu: 2`` is 2000, ``gpu: 0.25`` or ``250m`` is 250), so a share of
  one GPU is an ordinary quantity and quotas count shares exactly. An allocation on a node whose
  ``gpu-type`` label is ``T`` also counts ``gpu/T`` (per-type quota). An ask's GPUs are either a
  share of one GPU (1..999 milli) or whole GPUs (a multiple of 1000): ``check_gpu_ask``.

Maps are treated as values: the helpers here return new dicts and never mutate their inputs,
except the ``*_into`` variants, which exist for the hot paths of the scheduling core.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

Resources = dict[str, int]

GPU_RESOURCES = frozenset({"gpu", "nvidia.com/gpu", "amd.com/gpu"})
GPU_TYPE_LABEL = "gpu-type"
TYPED_GPU_PREFIX = "gpu/"
MILLI_RESOURCES = frozenset({"vcore", "cpu"})
GPU_MILLI = 1000  # milli-GPU in one GPU

_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?\s*$")


class QuantityError(ValueError):
    """A quantity that cannot be parsed; the message says what was wrong."""


MAX_QUANTITY = 2**63 - 1  # the largest quantity: a signed 64-bit integer, as in Kubernetes and YuniKorn


def parse_quantity(name: str, value: object) -> int:
    """Parse one quantity of resource ``name`` into the core's integer unit.

    ``vcore``/``cpu`` become milli-cores (``2`` -> 2000, ``500m`` -> 500), the GPU resources and
    ``gpu/<TYPE>`` milli-GPU (``0.25`` -> 250). Every other resource is a whole number (``16Gi``
    -> 17179869184); ``m`` or a fraction that does not come out whole is an error, as is a
    negative value.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        if value > MAX_QUANTITY:  # before str(): a huge int cannot even be printed
            raise QuantityError(f"too large: a quantity of {name} is at most {MAX_QUANTITY}")
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        raise QuantityError(f"{value!r} is not a quantity (expected a number or a string like 16Gi)")
    match = _QUANTITY.match(text) if len(text) <= 64 else None
    if match is None:
        raise QuantityError(
            f"{text[:64]!r} is not a quantity (expected a non-negative number with an optional suffix "
            "m, k, M, G, T, Ki, Mi, Gi, Ti)"
        )
    number, suffix = match.group(1), match.group(2) or ""
    milli = is_milli(name)
    if suffix == "m":
        if not milli:
            raise QuantityError(f"{text!r}: the suffix m (milli) is only allowed for vcore/cpu and GPUs")
        scaled = _exact(number, 1)
    else:
        scaled = _exact(number, _SUFFIX[suffix] * (1000 if milli else 1))
    if scaled is None:
        unit = "milli-GPU" if milli and name not in MILLI_RESOURCES else name
        raise QuantityError(f"{text!r} is not a whole number of {unit}")
    gpus = milli and name not in MILLI_RESOURCES
    # GPUs are bounded as written (YuniKorn's int64 of devices); their milli may go beyond it.
    if scaled > (MAX_QUANTITY * GPU_MILLI if gpus else MAX_QUANTITY):
        raise QuantityError(
            f"{text!r} is too large: a quantity of {name} is at most {MAX_QUANTITY} "
            f"({'GPUs' if gpus else _unit(name)}, a signed 64-bit integer)"
        )
    return scaled


def is_milli(name: str) -> bool:
    """Whether the core counts ``name`` in thousandths (vcore, cpu, the GPUs, ``gpu/<TYPE>``)."""
    return name in MILLI_RESOURCES or name in GPU_RESOURCES or name.startswith(TYPED_GPU_PREFIX)


def _unit(name: str) -> str:
    if name in MILLI_RESOURCES:
        return "milli-cores"
    return "milli-GPU" if is_milli(name) else "units"


def _exact(number: str, factor: int) -> int | None:
    whole, _, frac = number.partition(".")
    numerator = int(whole + frac) * factor
    denominator = 10 ** len(frac)
    if numerator % denominator:
        return None
    return numerator // denominator


def parse_resources(raw: Mapping[str, object]) -> Resources:
    """Parse a map of resource name -> quantity; raises QuantityError naming the resource."""
    out: Resources = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise QuantityError(f"resource name {name!r} must be a non-empty string")
        try:
            out[name] = parse_quantity(name, value)
        except QuantityError as exc:
            raise QuantityError(f"{name}: {exc}") from None
    return out


def format_quantity(name: str, value: int) -> str:
    """Render a quantity for people: milli-cores as cores, milli-GPU as GPUs (``0.25``),
    bytes-like values with binary suffixes."""
    if name in MILLI_RESOURCES:
        return f"{value / 1000:g}" if value % 1000 else str(value // 1000)
    if is_milli(name):
        return format_gpus(value)
    for suffix in ("Ti", "Gi", "Mi", "Ki"):
        factor = _SUFFIX[suffix]
        if value >= factor and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def format_gpus(milli: int) -> str:
    """A milli-GPU quantity as GPUs, exactly: 2000 -> ``2``, 250 -> ``0.25``, 1500 -> ``1.5``."""
    sign = "-" if milli < 0 else ""
    whole, frac = divmod(abs(milli), GPU_MILLI)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:03d}".rstrip("0")


# Reasons name resources in every cycle, mostly the same few maps: their text is kept, per
# distinct map (bounded: cleared when full; the text is the same either way).
_FORMATTED: dict[tuple[tuple[str, int], ...], str] = {}
_FORMATTED_MAX = 4096


def format_resources(res: Mapping[str, int]) -> str:
    if not res:
        return "{}"
    key = tuple(res.items())
    text = _FORMATTED.get(key)
    if text is None:
        text = "{" + ", ".join(f"{k}: {format_quantity(k, v)}" for k, v in sorted(key)) + "}"
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        _FORMATTED[key] = text
    return text


def is_gpu(name: str) -> bool:
    return name in GPU_RESOURCES


_GPU_NAMES = tuple(sorted(GPU_RESOURCES))


def gpu_milli(res: Mapping[str, int]) -> int:
    """The GPUs of a resource map, in milli-GPU (every GPU resource together)."""
    # Looks up the few GPU names rather than scanning the map: called per fit and per victim.
    out = 0
    for k in _GPU_NAMES:
        if k in res:
            out += res[k]
    return out


def whole_gpus(res: Mapping[str, int]) -> int:
    """Whole GPU devices of a map that holds only whole GPUs (a node's capacity, a whole-GPU ask).

    A share or a fraction is an error here, never rounded: use ``gpu_milli`` or ``gpus_of``."""
    milli = gpu_milli(res)
    if milli % GPU_MILLI:
        raise ValueError(f"{format_gpus(milli)} GPUs is not a whole number of GPUs")
    return milli // GPU_MILLI


def gpus_from_milli(milli: int) -> int | float:
    """Milli-GPU as GPUs for people and metrics: an int when whole (so whole-GPU figures print as
    they always did), else the exact fraction (250 -> 0.25)."""
    whole, frac = divmod(milli, GPU_MILLI)
    return milli / GPU_MILLI if frac else whole


def gpus_of(res: Mapping[str, int]) -> int | float:
    """The GPUs of a map as a number for people and metrics (a share counts 0.25)."""
    return gpus_from_milli(gpu_milli(res))


def in_gpus(res: Mapping[str, int]) -> dict[str, int | float]:
    """``res`` for the wire: GPU quantities (``gpu``, ``gpu/<TYPE>`` ...) in GPUs (ints when
    whole, as they were before the core counted milli-GPU), every other one as the core has it."""
    return {k: gpus_from_milli(v) if is_milli(k) and k not in MILLI_RESOURCES else v for k, v in res.items()}


def from_gpus(res: Mapping[str, object]) -> Resources:
    """The inverse of ``in_gpus``: GPU quantities given in GPUs (``2``, ``0.25``) to milli-GPU,
    every other quantity taken as already in the core's unit (raises QuantityError)."""
    out: Resources = {}
    for k, v in res.items():
        if is_milli(k) and k not in MILLI_RESOURCES:
            out[k] = parse_quantity(k, v)
        elif isinstance(v, int) and not isinstance(v, bool):
            out[k] = v
        else:
            raise QuantityError(f"{k}: {v!r} is not a whole number")
    return out


def is_share(milli: int) -> bool:
    """A share of one GPU (1..999 milli), as opposed to no GPU or whole GPUs."""
    return 0 < milli < GPU_MILLI


def check_gpu_ask(res: Mapping[str, int]) -> None:
    """Raise QuantityError unless the GPUs of an ask are a share of one GPU or whole GPUs."""
    for k, v in res.items():
        if k not in GPU_RESOURCES:
            continue
        if v <= 0:
            raise QuantityError(
                f"{k}: {format_gpus(v)} asks for no GPU; leave {k} out of an ask without GPUs"
            )
        if not (is_share(v) or v % GPU_MILLI == 0):
            raise QuantityError(
                f"{k}: {format_gpus(v)} is neither a share of one GPU (0.001 to 0.999) nor whole GPUs "
                "(a share above one GPU cannot be placed)"
            )


def typed(res: Mapping[str, int], gpu_type: str | None, gpus: int | None = None) -> Resources:
    """The resources an allocation counts against quota on a node of ``gpu_type`` (milli-GPU);
    ``gpus`` is ``gpu_milli(res)`` when the caller has it already."""
    out = dict(res)
    if gpu_type:
        if gpus is None:
            gpus = gpu_milli(res)
        if gpus:
            out[TYPED_GPU_PREFIX + gpu_type] = gpus
    return out


def add(a: Mapping[str, int], b: Mapping[str, int]) -> Resources:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def add_into(target: dict[str, int], b: Mapping[str, int]) -> None:
    for k, v in b.items():
        target[k] = target.get(k, 0) + v


def sub_into(target: dict[str, int], b: Mapping[str, int]) -> None:
    for k, v in b.items():
        left = target.get(k, 0) - v
        if left:
            target[k] = left
        else:
            target.pop(k, None)


def fits(ask: Mapping[str, int], available: Mapping[str, int]) -> bool:
    """True if every positive quantity of ``ask`` is within ``available`` (missing = 0)."""
    for k, v in ask.items():
        if v > 0 and v > available.get(k, 0):
            return False
    return True


def within_max(usage: Mapping[str, int], ask: Mapping[str, int], limit: Mapping[str, int] | None) -> bool:
    """True if ``usage + ask`` stays within ``limit``; a type the limit does not list is unlimited."""
    if not limit:
        return True
    for k, v in ask.items():
        if v > 0:
            cap = limit.get(k)
            if cap is not None and usage.get(k, 0) + v > cap:
                return False
    return True


def over_max(usage: Mapping[str, int], ask: Mapping[str, int], limit: Mapping[str, int] | None) -> Resources:
    """How far ``usage + ask`` goes beyond ``limit``, per type (only the types that exceed)."""
    out: Resources = {}
    if not limit:
        return out
    for k, v in ask.items():
        if v > 0 and k in limit:
            excess = usage.get(k, 0) + v - limit[k]
            if excess > 0:
                out[k] = excess
    return out


def shares_type(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return any(v > 0 and b.get(k, 0) > 0 for k, v in a.items())


def total(items: Iterable[Mapping[str, int]]) -> Resources:
    out: Resources = {}
    for r in items:
        add_into(out, r)
    return out


def ordered_key(res: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, v) for k, v in res.items() if v))
