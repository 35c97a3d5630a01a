"""Capacity planning: when to grow node pools, which machines to launch, which nodes may go.

Pure, like the rest of the core: the planner gets the pools, the pool nodes as they are now
(booting, ready, idle since when), the pending demand the scheduler could not place for want of
a node (never demand held back by a queue's max or a user limit: more nodes would not help it),
the offers that failed lately, and ``now``; it returns decisions as data.

Scale up. Each waiting workload (a gang as a whole) first takes room on nodes already booting
or planned, in one region. What is left is packed onto new nodes: the offer is chosen by the
workload's shapes in order (a standard size falls back through its shapes, the whole gang at
once), then its GPU types in order of preference, then the hourly cost of what it adds, then
region. A workload stays in one region: an offer first uses the room booting in its own region
(a gang partly served by earlier launches gets only the rest), and only a workload that allows
spanning (``span_regions``) may also use room in other regions, each node there costing the
pool's ``transfer_cost`` an hour. An offer that stocked out or failed to boot is skipped until
its block expires; the next one is tried (the engine records each attempt). Pools never go above
``max``.

Headroom. Each pool keeps ``headroom_nodes`` idle nodes (and ``headroom_gpus`` idle GPUs) warm,
counting nodes that are booting and not spoken for, so a burst starts without a boot. With a
``headroom_window``, the warm nodes follow the arrivals (``headroom_target``): as many as the GPUs
asked in the last window would fill, between ``headroom_nodes`` and ``headroom_max_nodes``; with
``headroom_fit`` that room is counted in GPUs and free GPUs of ready nodes count
(``headroom_gpus_target``). Series headroom (``series_headroom_gpus``) anticipates the next burst
of a queue that sent large ones lately: a share of each such queue's burst peak (the most GPUs it
asked within ``headroom_series_window``, ``BurstMemory``) stays warm for ``headroom_memory``
seconds; with fit it adds to the rate part, in GPUs.

Scale down. A ready node with nothing on it, idle for ``idle_timeout``, goes, the most expensive
first, as long as the pool stays at or above ``min`` and its headroom. A node with allocations
is never idle, so a ``never`` workload's node never goes; checkpointable work leaves a node only
by compaction (``plan_compaction``), which frees whole nodes by moving it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gpupool.core.config import InstanceType, NodePool
from gpupool.core.resources import Resources, fits, gpu_milli, gpus_from_milli

POOL_LABEL = "gpupool/pool"
INSTANCE_LABEL = "gpupool/instance-type"
REGION_LABEL = "gpupool/region"


@dataclass(slots=True)
class PoolNode:
    """A node of a pool as the planner sees it."""

    name: str
    pool: str
    instance_type: InstanceType
    state: str  # "booting" | "ready"
    free: Resources  # capacity not allocated
    idle_since: float | None = None  # ready and empty since then; None = in use or booting
    launched_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Demand:
    """One workload waiting for a node: its members' resources and allowed GPU types, then the
    further shapes of its standard size to fall back through (the whole gang at once)."""

    workload: str
    members: tuple[Resources, ...]
    gpu_types: tuple[str, ...] = ()  # in order of preference; () = any
    regions: tuple[str, ...] = ()  # () = any region
    alternatives: tuple[tuple[tuple[Resources, ...], tuple[str, ...]], ...] = ()
    span_regions: bool = False  # members may be in several regions (each node outside pays transfer)

    def shapes(self) -> tuple[tuple[tuple[Resources, ...], tuple[str, ...]], ...]:
        return ((self.members, self.gpu_types), *self.alternatives)


@dataclass(frozen=True, slots=True)
class Arrival:
    """A workload that arrived: when, the GPUs its members ask for, the GPU types it allows, and
    its queue (whose bursts the series memory tracks)."""

    at: float
    gpus: float  # a share counts its part
    gpu_types: tuple[str, ...] = ()  # () = any
    queue: str = ""


SeriesKey = tuple[str, tuple[str, ...]]  # (queue, GPU types allowed)


class BurstMemory:
    """Per queue (and GPU types asked): the GPUs it asked in the last ``window`` seconds, and the
    largest such sum reached in the last ``memory`` seconds (its recent *burst peak*).

    Fed one arrival at a time, time passed in; each update and query is amortised O(1): a
    running sum over the window and a monotonic deque of window sums for the sliding maximum.
    """

    __slots__ = ("_peaks", "_recent", "_sums", "memory", "window")

    def __init__(self, window: float, memory: float) -> None:
        self.window = window
        self.memory = memory
        self._recent: dict[SeriesKey, deque[Arrival]] = {}
        self._sums: dict[SeriesKey, float] = {}
        self._peaks: dict[SeriesKey, deque[tuple[float, float]]] = {}

    def add(self, a: Arrival) -> None:
        key = (a.queue, a.gpu_types)
        recent = self._recent.setdefault(key, deque())
        total = self._sums.get(key, 0)
        while recent and recent[0].at < a.at - self.window:
            total -= recent.popleft().gpus
        recent.append(a)
        total += a.gpus
        self._sums[key] = total
        peaks = self._peaks.setdefault(key, deque())
        while peaks and peaks[-1][1] <= total:
            peaks.pop()
        peaks.append((a.at, total))

    def peaks(self, now: float) -> dict[SeriesKey, float]:
        """Each queue's burst peak over the last ``memory`` seconds (queues with none left out)."""
        out: dict[SeriesKey, float] = {}
        for key, peaks in list(self._peaks.items()):
            while peaks and peaks[0][0] < now - self.memory:
                peaks.popleft()
            if peaks:
                out[key] = peaks[0][1]
            else:
                del self._peaks[key]
                self._recent.pop(key, None)
                self._sums.pop(key, None)
        return out


def headroom_target(
    pool: NodePool,
    arrivals: Iterable[Arrival],
    now: float,
    peaks: Mapping[SeriesKey, float] | None = None,
) -> int:
    """Warm idle nodes ``pool`` keeps now (of its cheapest instance type).

    * ``headroom_nodes`` always;
    * with a ``headroom_window``, as many as the GPUs asked by the arrivals of the last window
      would fill, at most ``headroom_max_nodes`` (the *rate* part);
    * with a ``headroom_memory`` (``series_headroom_gpus``), between bursts: a ``headroom_series``
      share of the burst peak of each queue that had one in the last ``headroom_memory``
      seconds, so that a queue submitting batches in series finds room for the start of its next.

    With ``headroom_fit`` both burst-sized parts are counted in GPUs instead
    (``headroom_gpus_target``) and only ``headroom_nodes`` is kept in whole nodes.
    """
    if pool.headroom_window <= 0 or not pool.instance_types:
        return pool.headroom_nodes
    node = min(pool.instance_types, key=lambda t: (t.hourly_cost, t.region, t.name))
    if node.gpus <= 0:
        return pool.headroom_nodes
    types = {t.gpu_type for t in pool.instance_types}
    since = now - pool.headroom_window
    asked = sum(
        a.gpus
        for a in arrivals
        if since <= a.at <= now and (not a.gpu_types or not types.isdisjoint(a.gpu_types))
    )
    if pool.headroom_fit:
        return pool.headroom_nodes  # both parts are counted in GPUs (``headroom_gpus_target``)
    rate = min(pool.headroom_max_nodes, math.ceil(asked / node.gpus))
    series = math.ceil(series_headroom_gpus(pool, peaks or {}) / node.gpus - 1e-9)
    return max(pool.headroom_nodes, rate, series)


def headroom_gpus_target(
    pool: NodePool,
    arrivals: Iterable[Arrival],
    now: float,
    peaks: Mapping[SeriesKey, float] | None = None,
) -> float:
    """Free GPUs ``pool`` keeps now: ``headroom_gpus``, or with ``headroom_fit`` the rate part
    (the GPUs asked by the arrivals of the last ``headroom_window``, at most
    ``headroom_max_nodes`` nodes' worth) plus the series part (``series_headroom_gpus``),
    counting the free GPUs of ready nodes too, not only whole idle nodes.

    The two parts add up: the series part is room warm *before* a queue's next batch (the start
    that no launch can catch), the rate part the lead that launches keep over a burst under way;
    during a batch of a queue with a recent series both are needed."""
    if not pool.headroom_fit or pool.headroom_window <= 0 or not pool.instance_types:
        return pool.headroom_gpus
    node = min(pool.instance_types, key=lambda t: (t.hourly_cost, t.region, t.name))
    types = {t.gpu_type for t in pool.instance_types}
    since = now - pool.headroom_window
    asked = sum(
        a.gpus
        for a in arrivals
        if since <= a.at <= now and (not a.gpu_types or not types.isdisjoint(a.gpu_types))
    )
    rate = min(pool.headroom_max_nodes * node.gpus, asked)
    return max(pool.headroom_gpus, rate + series_headroom_gpus(pool, peaks or {}))


def series_headroom_gpus(pool: NodePool, peaks: Mapping[SeriesKey, float]) -> float:
    """The warm GPUs that anticipate the next burst of queues submitting batches in series:
    ``headroom_series`` of each such queue's burst peak (the most GPUs it asked within one
    ``headroom_series_window``) over the last ``headroom_memory`` seconds, counted only for peaks
    of at least ``headroom_series_min`` GPUs (a queue of scattered small jobs keeps nothing warm)."""
    if pool.headroom_memory <= 0 or pool.headroom_series <= 0:
        return 0.0
    types = {t.gpu_type for t in pool.instance_types}
    gpus = sum(
        peak
        for (_queue, gpu_types), peak in peaks.items()
        if peak >= pool.headroom_series_min and (not gpu_types or not types.isdisjoint(gpu_types))
    )
    return pool.headroom_series * gpus


def series_window(pool: NodePool) -> float:
    """The window over which a queue's burst peak is summed for ``pool``'s series headroom:
    ``headroom_series_window``, or the rate part's ``headroom_window`` when that is 0."""
    return pool.headroom_series_window or pool.headroom_window


@dataclass(frozen=True, slots=True)
class ScaleUp:
    """A decision to launch ``count`` machines of ``instance_type`` in ``pool``.

    ``for_workloads`` names the waiting workloads the launch is for; it is empty for a launch that
    keeps the pool's headroom or its ``min``.
    """

    pool: str
    instance_type: InstanceType
    count: int
    reason: str
    for_workloads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScaleDown:
    """A decision to terminate ``node`` of ``pool``: idle past the pool's idle timeout."""

    node: str
    pool: str
    reason: str


@dataclass(slots=True)
class CapacityPlan:
    """What one ``plan_capacity`` call decides: launches, terminations, and why unserved workloads wait."""

    scale_up: list[ScaleUp] = field(default_factory=list)
    scale_down: list[ScaleDown] = field(default_factory=list)
    unmet: dict[str, str] = field(default_factory=dict)  # workload -> why no offer could serve it


@dataclass(slots=True)
class _Virtual:
    pool: str
    itype: InstanceType
    free: Resources
    new: bool
    ready: bool = False  # free room on a ready node (``ready_room``), not a booting or new one


def _fits_type(member: Resources, types: Sequence[str], v: _Virtual) -> bool:
    return not types or not gpu_milli(member) or v.itype.gpu_type in types


def _fit(
    members: Sequence[Resources], types: Sequence[str], nodes: Sequence[_Virtual]
) -> tuple[list[_Virtual], list[Resources], list[Resources]]:
    """First fit of as many ``members`` as go onto ``nodes`` (what-if: nothing changes).
    Returns the nodes used, their free room after, and the members left over."""
    free = [dict(n.free) for n in nodes]
    used: list[int] = []
    left: list[Resources] = []
    for m in members:
        for i, (n, f) in enumerate(zip(nodes, free, strict=True)):
            if _fits_type(m, types, n) and fits(m, f):
                for k, v in m.items():
                    f[k] = f.get(k, 0) - v
                if i not in used:
                    used.append(i)
                break
        else:
            left.append(m)
    return [nodes[i] for i in used], [free[i] for i in used], left


def _commit(used: list[_Virtual], after: list[Resources]) -> None:
    for n, f in zip(used, after, strict=True):
        n.free = f


def _on_existing(d: Demand, virtual: list[_Virtual]) -> list[_Virtual] | None:
    """Place the whole workload on room that exists or is coming (booting or planned nodes), in
    one region unless it may span; its shapes in order. Returns the nodes used, or None."""
    room = [v for v in virtual if not d.regions or v.itype.region in d.regions]
    if d.span_regions:
        groups = [room]
    else:
        regions = sorted({v.itype.region for v in room})
        groups = [[v for v in room if v.itype.region == r] for r in regions]
    for members, types in d.shapes():
        for group in groups:
            used, after, left = _fit(members, types, group)
            if not left:
                _commit(used, after)
                return used
    return None


def plan_capacity(
    pools: Sequence[NodePool],
    nodes: Iterable[PoolNode],
    demand: Sequence[Demand],
    blocked: set[tuple[str, str, str]],
    now: float,
    *,
    ready_room: bool = False,
    arrivals: Sequence[Arrival] = (),
    peaks: Mapping[SeriesKey, float] | None = None,
) -> CapacityPlan:
    """Decide scale-ups and scale-downs. ``blocked`` holds (pool, instance type, region) offers
    that failed lately; ``arrivals`` the recent arrivals that size burst headroom.

    ``ready_room``: demand first takes free room on ready nodes too (as Ray's autoscaler packs
    its resource demand onto every node's available resources). Only useful when ``demand``
    holds asks the scheduler could not place for other reasons than room (quota-blocked ones):
    room-blocked demand does not fit the ready nodes by definition. Off by default."""
    plan = CapacityPlan()
    warm = {p.name: headroom_target(p, arrivals, now, peaks) for p in pools}
    warm_gpus = {p.name: headroom_gpus_target(p, arrivals, now, peaks) for p in pools}
    by_pool: dict[str, list[PoolNode]] = {p.name: [] for p in pools}
    for n in nodes:
        by_pool.setdefault(n.pool, []).append(n)
    count = {p.name: len(by_pool.get(p.name, [])) for p in pools}
    planned: dict[tuple[str, str, str], int] = {}
    reasons: dict[tuple[str, str, str], list[str]] = {}

    # Room on nodes that are still booting: the scheduler will place work there once they are up.
    virtual = [
        _Virtual(n.pool, n.instance_type, dict(n.free), False)
        for p in pools
        for n in by_pool[p.name]
        if n.state == "booting"
    ]
    if ready_room:
        virtual += [
            _Virtual(n.pool, n.instance_type, dict(n.free), False, ready=True)
            for p in pools
            for n in by_pool[p.name]
            if n.state == "ready"
        ]

    def add(pool: NodePool, itype: InstanceType, n: int, why: str, workload: str | None) -> None:
        # Launches for waiting workloads and launches to keep headroom or min are separate
        # scale-ups, so that each launch names only the workloads it is for.
        key = (pool.name, itype.name, "" if workload else "keep")
        planned[key] = planned.get(key, 0) + n
        count[pool.name] += n
        reasons.setdefault(key, [])
        if workload:
            reasons[key].append(workload)
        elif why not in reasons[key]:
            reasons[key].append(why)

    for d in demand:
        used = _on_existing(d, virtual)
        if used is not None:
            # Booting nodes, or nodes planned for earlier workloads, will take it.
            for v in used:
                if v.new:
                    reasons[(v.pool, v.itype.name, "")].append(d.workload)
            continue
        choice = _choose_offer(pools, d, count, blocked, virtual)
        if isinstance(choice, str):
            plan.unmet[d.workload] = choice
            continue
        pool, itype, fresh, used_room, after = choice
        _commit(used_room, after)
        for v in used_room:
            if v.new:
                reasons[(v.pool, v.itype.name, "")].append(d.workload)
        virtual.extend(fresh)
        add(pool, itype, len(fresh), "", d.workload)

    # Headroom: idle (or booting and not spoken for) nodes and GPUs kept warm per pool.
    for pool in pools:
        idle_nodes = sum(1 for n in by_pool[pool.name] if n.state == "ready" and n.idle_since is not None)
        idle_nodes += sum(
            1 for v in virtual if v.pool == pool.name and not v.ready and v.free == v.itype.capacity()
        )
        idle_milli = sum(gpu_milli(n.free) for n in by_pool[pool.name] if n.state == "ready")
        idle_milli += sum(gpu_milli(v.free) for v in virtual if v.pool == pool.name and not v.ready)
        idle_gpus = gpus_from_milli(idle_milli)  # free GPUs, a free share counting its part
        cheapest = min(pool.instance_types, key=lambda t: (t.hourly_cost, t.region, t.name))
        offers = [
            t
            for t in sorted(pool.instance_types, key=lambda t: (t.hourly_cost, t.region, t.name))
            if (pool.name, t.name, t.region) not in blocked
        ] or [cheapest]
        itype = offers[0]
        keep = warm[pool.name]
        keep_gpus = warm_gpus[pool.name]
        sized = ""
        if pool.headroom_window > 0:
            sized = f" (sized by the last {pool.headroom_window:g}s of arrivals)"
        while count[pool.name] < pool.max and (idle_nodes < keep or (keep_gpus and idle_gpus < keep_gpus)):
            add(pool, itype, 1, f"keep headroom of {keep} node(s)/{keep_gpus} GPU(s){sized}", None)
            idle_nodes += 1
            idle_gpus += itype.gpus
            if itype.gpus == 0 and keep_gpus:
                break
        while count[pool.name] < pool.min:
            add(pool, itype, 1, f"keep the pool at its min of {pool.min}", None)

    for (pool_name, itype_name, kind), launches in sorted(planned.items()):
        pool = next(p for p in pools if p.name == pool_name)
        itype = next(t for t in pool.instance_types if t.name == itype_name)
        why = reasons[(pool_name, itype_name, kind)]
        text = f"{launches} x {itype.name} ({itype.region})"
        if kind:
            plan.scale_up.append(ScaleUp(pool_name, itype, launches, text + " to " + "; ".join(why)))
        else:
            text += f" for {len(why)} waiting workload(s)"
            plan.scale_up.append(ScaleUp(pool_name, itype, launches, text, tuple(why)))

    # Scale down idle nodes past their timeout, keeping min and headroom, and any node a waiting
    # workload could use (it has just become ready; the scheduler will place it there).
    def wanted(n: PoolNode) -> bool:
        cap = n.instance_type.capacity()
        for d in demand:
            if d.gpu_types and n.instance_type.gpu_type not in d.gpu_types:
                continue
            if d.regions and n.instance_type.region not in d.regions:
                continue
            if any(fits(m, cap) for m in d.members):
                return True
        return False

    for pool in pools:
        idle = [
            n
            for n in by_pool[pool.name]
            if n.state == "ready"
            and n.idle_since is not None
            and now - n.idle_since >= pool.idle_timeout
            and not wanted(n)
        ]
        idle_total = sum(1 for n in by_pool[pool.name] if n.state == "ready" and n.idle_since is not None)
        idle.sort(key=lambda n: (-n.instance_type.hourly_cost, n.idle_since or 0.0, n.name))
        left = count[pool.name]
        for n in idle:
            if left - 1 < pool.min or idle_total - 1 < warm[pool.name]:
                break
            if (
                warm_gpus[pool.name]
                and gpus_from_milli(
                    sum(gpu_milli(m.free) for m in by_pool[pool.name] if m.state == "ready" and m is not n)
                )
                < warm_gpus[pool.name]
            ):
                continue
            plan.scale_down.append(
                ScaleDown(
                    n.name,
                    pool.name,
                    f"idle for {now - (n.idle_since or now):.0f}s (idle timeout {pool.idle_timeout:g}s)",
                )
            )
            left -= 1
            idle_total -= 1
    return plan


_Option = tuple[
    tuple[int, int, float, str, str], NodePool, InstanceType, list[_Virtual], list[_Virtual], list[Resources]
]


def _choose_offer(
    pools: Sequence[NodePool],
    d: Demand,
    count: dict[str, int],
    blocked: set[tuple[str, str, str]],
    virtual: Sequence[_Virtual] = (),
) -> tuple[NodePool, InstanceType, list[_Virtual], list[_Virtual], list[Resources]] | str:
    """The best offer for a workload that existing room cannot take whole: (pool, instance type,
    the new nodes, the existing room it also uses and that room's free resources after), or why
    no offer can serve it.

    Options are ordered by the workload's shapes (a standard size's fallbacks), then its GPU
    type preference, then the hourly cost of what it adds, then region. An option first uses
    room already booting or planned in the offer's region (a gang partly served by earlier
    launches only needs the rest), then new nodes of the offer. A workload that may span regions
    can also use such room in other regions; each node it uses outside the offer's region costs
    the pool's ``transfer_cost`` an hour on top.
    """
    options: list[_Option] = []
    why: list[str] = []
    for s_index, (members, types) in enumerate(d.shapes()):
        for pool in pools:
            for itype in pool.instance_types:
                if types and itype.gpu_type not in types and any(gpu_milli(m) for m in members):
                    continue
                if d.regions and itype.region not in d.regions:
                    continue
                cap = itype.capacity()
                if not all(fits(m, cap) for m in members):
                    continue
                if (pool.name, itype.name, itype.region) in blocked:
                    why.append(f"{itype.name} in {itype.region} failed lately")
                    continue
                rank = types.index(itype.gpu_type) if types and itype.gpu_type in types else len(types)
                # Room in the offer's region; a spanning workload may also take room elsewhere
                # (own region first), if that costs less than new nodes.
                for spread in (False, True) if d.span_regions else (False,):
                    room = [
                        v
                        for v in virtual
                        if (spread or v.itype.region == itype.region)
                        and (not d.regions or v.itype.region in d.regions)
                    ]
                    room.sort(key=lambda v: v.itype.region != itype.region)
                    used, after, left = _fit(members, types, room)
                    fresh = [_Virtual(pool.name, itype, dict(cap), True) for _ in range(len(left))]
                    placed_fresh, fresh_after, rest = _fit(left, (), fresh)
                    assert not rest  # every member fits an empty node of this type (checked above)
                    _commit(placed_fresh, fresh_after)
                    needed = len(placed_fresh)
                    if count[pool.name] + needed > pool.max:
                        why.append(f"pool {pool.name} would go above its max of {pool.max} nodes")
                        continue
                    away = sum(1 for v in used if v.itype.region != itype.region)
                    cost = itype.hourly_cost * needed + pool.transfer_cost * away
                    key = (s_index, rank, cost, itype.region, itype.name)
                    options.append((key, pool, itype, placed_fresh, used, after))
    if not options:
        if why:
            return "; ".join(dict.fromkeys(why))
        return "no node pool has an instance type that fits it"
    options.sort(key=lambda o: o[0])
    _, pool, itype, fresh, used, after = options[0]
    return pool, itype, fresh, used, after
