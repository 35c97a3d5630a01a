"""Demand for new nodes: what the waiting asks would need, read from a view of the scheduler.

The autoscaler (``gpupool.engine.autoscaler``) plans capacity from this demand; it computes
nothing about asks or quotas itself. Everything here is pure: it reads the scheduler's asks,
applications and queues and returns data.

* ``waiting_demand``: the waiting workloads a new node would let run (``every``: all waiting
  workloads), one ``Demand`` per application in submission order, quota-aware; a workload that
  may only run within its queue's guarantee counts only while the guarantee has room for it.
* ``wanted_gangs``: waiting gangs that need a whole node nobody has (compaction frees one).
* ``beyond_max``: whether a queue (or a parent) already has more pending than its max allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gpupool.core.capacity import Demand
from gpupool.core.decisions import Code
from gpupool.core.fit import region_rule
from gpupool.core.model import App, Ask
from gpupool.core.queues import Queue
from gpupool.core.resources import TYPED_GPU_PREFIX, Resources, add_into, typed, within_max
from gpupool.core.within_guarantee import guarantee_gap

# Asks waiting for these reasons would run on a new node; quota-blocked ones would not.
NEEDS_NODE = frozenset({Code.NO_NODE, Code.GANG_WAITING})


def waiting_demand(asks: Iterable[Ask], apps: Mapping[str, App], *, every: bool = False) -> list[Demand]:
    """Waiting workloads that a new node would let run (with ``every``: every waiting workload,
    quota-blocked ones too), in the order they were submitted.

    Quota-aware unless ``every``: a queue's demand counts only up to what its max (and its
    parents') still allows, so asks submitted together beyond a team's max never launch nodes;
    and work that may only run within its queue's guarantee only up to that guarantee
    (``guarantee_room``), so two such sessions with room for one launch one session's node.
    """
    by_app: dict[str, list[Ask]] = {}
    for ask in asks:
        if ask.reserved_node is not None:
            continue
        if not every and (ask.reason is None or ask.reason.code not in NEEDS_NODE):
            continue
        by_app.setdefault(ask.app.id, []).append(ask)
    out: list[Demand] = []
    planned: dict[str, dict[str, int]] = {}
    guaranteed: dict[str, dict[str, int]] = {}  # leaf -> allocated + demand planned within its guarantee
    for app_id in sorted(by_app, key=lambda a: apps[a].seq):
        app_asks = by_app[app_id]
        members = tuple(a.resources for a in app_asks)
        types = app_asks[0].gpu_types
        app = apps[app_id]
        guarded: tuple[tuple[str, ...], Resources] | None = None
        if not every and app.queue is not None and app_asks[0].within_guarantee:
            guarded = guarantee_room(app.queue, members, types, guaranteed)
            if guarded is None:
                continue  # its queue's guarantee is spoken for: a new node would not run it
        if not every and app.queue is not None and not within_quota(app.queue, members, planned):
            continue
        if guarded is not None and app.queue is not None:
            types, counted = guarded
            add_into(guaranteed.setdefault(app.queue.path, dict(app.queue.allocated)), counted)
        # A standard size's further shapes, the whole gang at once (as the core places it).
        rounds = max(len(a.shapes) for a in app_asks)
        alternatives = tuple(
            (
                tuple(a.shapes[min(i, len(a.shapes) - 1)][0] for a in app_asks),
                app_asks[0].shapes[min(i, len(app_asks[0].shapes) - 1)][1],
            )
            for i in range(1, rounds)
        )
        span = app.gang is not None and app.gang.span_regions
        # A gang whose first members run in one region needs the rest there: a node elsewhere
        # neither serves it nor should be kept for it.
        home = region_rule(app) or ()
        out.append(Demand(app_id, members, types, home, alternatives=alternatives, span_regions=span))
    return out


def within_quota(leaf: Queue, members: tuple[Resources, ...], planned: dict[str, dict[str, int]]) -> bool:
    """Whether ``members`` fit under the max of ``leaf`` and of each parent, counting what the
    queues hold plus what ``planned`` already gave earlier demand; if so, add them to it."""
    need: dict[str, int] = {}
    for m in members:
        for k, v in m.items():
            need[k] = need.get(k, 0) + v
    path = [q for q in leaf.ancestors() if q.max]
    for q in path:
        used = planned.setdefault(q.path, dict(q.allocated))
        if not within_max(used, need, q.max):
            return False
    for q in path:
        used = planned[q.path]
        for k, v in need.items():
            used[k] = used.get(k, 0) + v
    return True


def guarantee_room(
    leaf: Queue,
    members: tuple[Resources, ...],
    types: tuple[str, ...],
    planned: Mapping[str, Mapping[str, int]],
) -> tuple[tuple[str, ...], Resources] | None:
    """For a workload that may only run within its leaf's guarantee (``core.within_guarantee``):
    the GPU types a new node may have for it and what it counts there, if its members fit the
    guarantee with what the leaf holds plus the demand ``planned`` already gave it; else None.
    Without types of its own it gets the first type its guarantee names (a node of another type
    would not run it), or any type when the guarantee names GPUs untyped."""
    used = planned.get(leaf.path, leaf.allocated)
    named = tuple(k[len(TYPED_GPU_PREFIX) :] for k in leaf.guaranteed or {} if k.startswith(TYPED_GPU_PREFIX))
    options: tuple[str | None, ...] = types or (None,)
    if not types and named and "gpu" not in (leaf.guaranteed or {}):
        options = named
    for t in options:
        counted: Resources = {}
        for m in members:
            add_into(counted, typed(m, t))
        if guarantee_gap(leaf.path, leaf.guaranteed, used, counted) is None:
            return (types or ((t,) if t is not None else ())), counted
    return None


def beyond_max(queue: Queue) -> bool:
    """The pending asks of ``queue`` (or of a parent) already go beyond its max: a workload
    submitted there waits behind them and would not use a warm node."""
    return any(q.max and not within_max(q.allocated, q.pending, q.max) for q in queue.ancestors())


def wanted_gangs(apps: Iterable[App]) -> list[tuple[str, Resources, tuple[str, ...]]]:
    """Waiting gangs that need a node nobody has, as (app id, one member's resources, allowed
    GPU types): what compaction may free a whole node for."""
    wanted: list[tuple[str, Resources, tuple[str, ...]]] = []
    for app in apps:
        if not app.asks or app.gang is None:
            continue
        ask = next(iter(app.asks.values()))
        if ask.reason is None or ask.reason.code not in NEEDS_NODE or ask.reserved_node is not None:
            continue
        wanted.append((app.id, ask.resources, ask.gpu_types))
    return wanted
