"""Asks that could never run, known at submission: refused then, not left to wait forever.

Two checks, pure like the rest of the core:

* ``gang_over_max``: a gang (all its members at once) that needs more than the ``max`` of its
  leaf queue or of an ancestor could never be admitted (YuniKorn rejects it at submission).
  The scheduler applies it when a gang's asks arrive; the control plane asks it before it
  stores anything, so such a submission is refused rather than stored as failed.
* ``never_fits``: a member whose shape no node of the cluster, and no machine a node pool can
  launch, could hold even when empty (9 GPUs where nodes have 8, a GPU type nobody has). The
  reason names what exists, so the user can pick a shape that does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gpupool.core.decisions import Code, Reason
from gpupool.core.queues import Queue
from gpupool.core.resources import Resources, fits, format_resources, gpu_milli, over_max


def gang_over_max(leaf: Queue, need: Mapping[str, int]) -> Reason | None:
    """Why a gang needing ``need`` in all can never run in ``leaf``, or None if it may."""
    for q in leaf.ancestors():
        if over_max({}, need, q.max):
            return Reason(
                Code.REJECTED,
                f"gang needs {format_resources(need)} in all, more than the max of {q.path} "
                f"{format_resources(q.max or {})}: it could never run",
                "make the gang smaller or submit it to a queue with a larger max",
            )
    return None


@dataclass(frozen=True, slots=True)
class Host:
    """A machine that exists or can be launched: its whole capacity and GPU type."""

    capacity: Mapping[str, int]
    gpu_type: str | None
    where: str  # "node h100-0", "pool gpu (p4d in us-east)"


def _holds(host: Host, resources: Mapping[str, int], gpu_types: Sequence[str]) -> bool:
    type_ok = not gpu_types or not gpu_milli(resources) or host.gpu_type in gpu_types
    return type_ok and fits(resources, host.capacity)


def never_fits(shapes: Sequence[tuple[Resources, Sequence[str]]], hosts: Iterable[Host]) -> str | None:
    """Why no host could ever hold one member of any of ``shapes`` (its resources and allowed GPU
    types, in order of preference), naming what exists; None if some host could, or if no host
    is known at all (nothing to judge by)."""
    known = list(hosts)
    if not known or any(_holds(h, r, t) for r, t in shapes for h in known):
        return None
    asked = "; or ".join(
        format_resources(r) + (f" on {'/'.join(t)}" if t and gpu_milli(r) else "") for r, t in shapes
    )
    kinds: dict[tuple[str | None, str], list[str]] = {}
    for h in known:
        kinds.setdefault((h.gpu_type, format_resources(h.capacity)), []).append(h.where)
    parts = []
    for (gpu_type, cap), where in sorted(kinds.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        names = ", ".join(where[:3]) + (", ..." if len(where) > 3 else "")
        parts.append(f"{len(where)} x {gpu_type or 'no GPU type'} {cap} ({names})")
    exists = "; ".join(parts)
    types = sorted({h.gpu_type for h in known if h.gpu_type})
    wanted = sorted({t for _, ts in shapes for t in ts if t not in types})
    unknown = ""
    if wanted:
        unknown = f"no GPU type {'/'.join(wanted)} exists (GPU types: {', '.join(types) or 'none'}); "
    return f"{unknown}no node could ever hold a member of {asked}; what exists: {exists}"


__all__ = ["Host", "gang_over_max", "never_fits"]
