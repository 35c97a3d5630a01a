"""Asks that may only be placed within their queue's guarantee (gpupool's, not YuniKorn's).

An ask made with ``within_guarantee`` (a notebook session that may not be preempted) is placed
only while its leaf queue stays within its guaranteed resources with it: for every resource
the ask counts (``typed``: its resources plus ``gpu/<TYPE>`` of the node's type), the leaf's
``allocated`` plus the ask must not exceed what the leaf's ``guaranteed`` names. Above the
guarantee only preemptible work runs, so no work that may never be preempted keeps another
queue from its guarantee (Run:ai's rule for non-preemptible workloads).

What an unset guarantee means:

* GPUs: a GPU the guarantee does not name is not guaranteed. The ask's GPUs are covered when
  the guarantee names ``gpu`` (all GPUs), or ``gpu/<TYPE>`` of the type of the node it would go
  to; each GPU key it names must hold the ask. A queue whose guarantee names no GPU of that type
  (or that has no guarantee) cannot take the ask's GPUs there at all.
* Any other resource (``vcore``, ``memory`` ...): checked only when the guarantee names it; a
  resource the guarantee leaves out does not hold the ask back (as a ``max`` that does not list
  a type). The scarce resource work that may not be preempted could keep from others is GPUs;
  a queue that also guarantees CPU or memory has them checked too.

Only the ask's own leaf counts: guarantees of the children of a queue add up to no more than
its own (``configcheck``), so leaves within their guarantees keep every ancestor within its.
A leaf without a guarantee of its own has none here (its parent's is shared by its siblings).

Pure: it reads queues and resource maps and returns data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gpupool.core.config import ChildTemplate
from gpupool.core.queues import Queue
from gpupool.core.resources import (
    GPU_RESOURCES,
    TYPED_GPU_PREFIX,
    Resources,
    format_quantity,
    format_resources,
    typed,
)

WHY = "work that may not be preempted runs only within its queue's guarantee"


def is_gpu_key(key: str) -> bool:
    """A GPU resource: ``gpu``, ``nvidia.com/gpu``, ``amd.com/gpu`` or a typed ``gpu/<TYPE>``."""
    return key in GPU_RESOURCES or key.startswith(TYPED_GPU_PREFIX)


@dataclass(frozen=True, slots=True)
class GuaranteeGap:
    """Why an ask does not fit its queue's guarantee: ``resource`` would go from ``used`` by
    ``need`` above ``guaranteed`` (None: the guarantee names no GPU the ask could use here)."""

    queue: str
    resource: str
    used: int
    need: int
    guaranteed: int | None
    guarantee: Resources  # the queue's whole guarantee, for the words

    def message(self) -> str:
        """The plain words for ``gpupool why``, a session's reason and a refusal."""
        g = self.guaranteed
        if g is None:
            what = self.resource
            if what.startswith(TYPED_GPU_PREFIX):
                what = f"GPUs of type {what[len(TYPED_GPU_PREFIX) :]}"
            elif what == "gpu":
                what = "GPUs"
            has = format_resources(self.guarantee) if self.guarantee else "none"
            return f"queue {self.queue} guarantees no {what} (its guarantee: {has}): {WHY}"
        q = self.resource
        if self.need > g:  # the ask alone (a refusal at submission, or a guarantee lowered since)
            return (
                f"queue {self.queue} guarantees {q} {format_quantity(q, g)}, less than the "
                f"{format_quantity(q, self.need)} asked: {WHY}"
            )
        return (
            f"queue {self.queue} would go above its guarantee ({q}: {format_quantity(q, self.used)} in use, "
            f"{format_quantity(q, g)} guaranteed, it asks for {format_quantity(q, self.need)}): {WHY}"
        )


def guarantee_gap(
    queue: str, guaranteed: Mapping[str, int] | None, used: Mapping[str, int], counted: Mapping[str, int]
) -> GuaranteeGap | None:
    """None if ``counted`` more keeps ``used`` within ``guaranteed`` (the module's rule), else
    the first resource that would go above it (or the GPU it does not guarantee)."""
    g = guaranteed or {}
    gpu_named = False
    first_gpu: str | None = None
    for k, v in counted.items():
        if v <= 0:
            continue
        gpu = is_gpu_key(k)
        if gpu and first_gpu is None:
            first_gpu = k
        cap = g.get(k)
        if cap is None:
            continue
        gpu_named = gpu_named or gpu
        if used.get(k, 0) + v > cap:
            return GuaranteeGap(queue, k, used.get(k, 0), v, cap, dict(g))
    if first_gpu is not None and not gpu_named:
        # Name the type when the guarantee names GPUs of other types ("no GPUs of type H100"),
        # else the GPUs ("no GPUs": it guarantees none).
        key = first_gpu
        if any(is_gpu_key(k) for k in g):
            key = next((k for k in counted if k.startswith(TYPED_GPU_PREFIX) and counted[k] > 0), first_gpu)
        return GuaranteeGap(queue, key, used.get(key, 0), counted[key], None, dict(g))
    return None


def leaf_gap(leaf: Queue, counted: Mapping[str, int]) -> GuaranteeGap | None:
    """``guarantee_gap`` for ``counted`` more in ``leaf`` as it is now (the scheduler's check)."""
    return guarantee_gap(leaf.path, leaf.guaranteed, leaf.allocated, counted)


def never_within(
    queue: str,
    guaranteed: Mapping[str, int] | None,
    shapes: tuple[tuple[Resources, tuple[str, ...]], ...],
    cluster_types: tuple[str | None, ...],
) -> GuaranteeGap | None:
    """The gap of the first shape if no shape (resources, GPU types) of an ask fits the guarantee
    even in an empty queue, on any GPU type it may use (its own list, else ``cluster_types``);
    None if some shape on some type could fit once the queue has room."""
    first: GuaranteeGap | None = None
    for res, types in shapes:
        options: tuple[str | None, ...] = types or cluster_types or (None,)
        for t in options:
            gap = guarantee_gap(queue, guaranteed, {}, typed(res, t))
            if gap is None:
                return None
            if first is None:
                first = gap
    return first


def guarantee_at(queues: Mapping[str, Queue], path: str) -> Resources | None:
    """The guarantee of the queue at ``path`` (``Scheduler.queues``); a queue that does not exist
    yet (a placement rule will create it) gets its nearest child template's, as it will be made."""
    existing = queues.get(path)
    if existing is not None:
        return existing.guaranteed
    parts = path.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        up: Queue | None = queues.get(".".join(parts[:depth]))
        if up is None:
            continue
        template: ChildTemplate | None = None
        while up is not None and template is None:
            template = up.child_template
            up = up.parent
        return dict(template.guaranteed) if template is not None and template.guaranteed else None
    return None
