"""Compaction: move checkpointable work to free whole nodes, for scale-down or for a big gang.

Bin-packing at scheduling time keeps fragmentation low, but finishing work leaves holes: a few
GPUs used on many nodes, while a waiting 8-GPU gang needs a whole node, or a pool could shrink
if its light nodes were emptied. This planner picks nodes to free, the cheapest to empty first:
every allocation on the node must belong to a workload that may move (disruptible: not a
``never`` workload) and that fits somewhere else right now (a what-if first-fit over the other
nodes, which also reserves that room for the next node in the same plan). A disruption budget
caps how many workloads one plan moves.

The plan is data: which node to cordon and which applications to move. The engine carries it
out as checkpoint, stop, place again, with the node cordoned so nothing lands back on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gpupool.core.model import App, Node
from gpupool.core.resources import Resources, fits, gpu_milli


@dataclass(frozen=True, slots=True)
class Move:
    """Move application ``app`` off ``from_node`` (it restarts elsewhere); ``reason`` says why."""

    app: str
    from_node: str
    reason: str


@dataclass(frozen=True, slots=True)
class FreeNode:
    """Cordon ``node`` and move ``moves`` so that it ends up empty."""

    node: str
    purpose: str  # "scale-down" | "gang"
    moves: tuple[Move, ...]
    for_app: str | None = None


@dataclass(slots=True)
class CompactionPlan:
    """The nodes compaction would empty, each with the moves that empty it."""

    frees: list[FreeNode] = field(default_factory=list)

    @property
    def moves(self) -> list[Move]:
        return [m for f in self.frees for m in f.moves]


def plan_compaction(
    nodes: Sequence[Node],
    *,
    budget: int,
    wanted_gangs: Sequence[tuple[str, Resources, tuple[str, ...]]] = (),
    scale_down_candidates: Iterable[str] = (),
    movable: set[str] | None = None,
) -> CompactionPlan:
    """Plan nodes to free.

    ``wanted_gangs``: waiting gangs as (app id, one member's resources, allowed GPU types) that
    need a whole node nobody has. ``scale_down_candidates``: nodes a pool could drop if empty.
    ``budget``: how many applications one plan may move. ``movable``: app ids allowed to move
    (None = every disruptible one).
    """
    plan = CompactionPlan()
    free = {n.name: dict(n.avail) for n in nodes if n.schedulable}
    by_name = {n.name: n for n in nodes}
    emptied: set[str] = set()
    moved: set[str] = set()
    left = budget

    def apps_on(node: Node) -> list[App] | None:
        out: dict[str, App] = {}
        for a in node.allocations.values():
            if not a.disruptible or a.preempted or (movable is not None and a.app.id not in movable):
                return None
            out[a.app.id] = a.app
        return list(out.values())

    def try_free(node: Node, purpose: str, for_app: str | None, why: str) -> bool:
        nonlocal left
        apps = apps_on(node)
        if apps is None or not apps or len(apps) > left or any(a.id in moved for a in apps):
            return False
        trial = {k: dict(v) for k, v in free.items() if k != node.name and k not in emptied}
        for app in apps:
            for alloc in app.allocations.values():
                # A gang member elsewhere moves too, and must fit off this node as well.
                target = _first_fit(alloc.resources, alloc.node.gpu_type, trial, by_name)
                if target is None:
                    return False
                room = trial[target]
                for res_name, amount in alloc.resources.items():
                    room[res_name] = room.get(res_name, 0) - amount
        free.update(trial)
        free[node.name] = dict(node.capacity)
        emptied.add(node.name)
        moved.update(a.id for a in apps)
        left -= len(apps)
        plan.frees.append(
            FreeNode(node.name, purpose, tuple(Move(a.id, node.name, why) for a in apps), for_app)
        )
        return True

    # Waiting gangs first: the lightest node of an allowed type that would hold a member.
    for app_id, member, types in wanted_gangs:
        if left <= 0:
            break
        candidates = [
            n
            for n in nodes
            if n.schedulable
            and n.name not in emptied
            and (not types or n.gpu_type in types)
            and fits(member, n.capacity)
            and not fits(member, free[n.name])
        ]
        candidates.sort(key=lambda n: (gpu_milli(n.allocated), len(n.allocations), n.name))
        for n in candidates:
            if try_free(n, "gang", app_id, f"free {n.name} whole for the waiting gang {app_id}"):
                break

    # Then nodes a pool could drop, the least used first.
    cands = [by_name[name] for name in scale_down_candidates if name in by_name and name not in emptied]
    cands.sort(key=lambda n: (gpu_milli(n.allocated), len(n.allocations), n.name))
    for n in cands:
        if left <= 0:
            break
        try_free(n, "scale-down", None, f"empty {n.name} so that its pool can shrink")
    return plan


def _first_fit(
    res: Resources, gpu_type: str | None, free: dict[str, Resources], nodes: dict[str, Node]
) -> str | None:
    """The fullest node of the same GPU type that still fits (keep the move bin-packed)."""
    best: tuple[int, str] | None = None
    for name, room in free.items():
        node = nodes[name]
        if node.gpu_type != gpu_type or not fits(res, room):
            continue
        key = (gpu_milli(room), name)
        if best is None or key < best:
            best = key
    return best[1] if best is not None else None
