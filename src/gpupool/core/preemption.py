"""Preemption: which running allocations to stop so that a waiting ask (or gang) gets its guarantee.

YuniKorn's laws, with gpupool's deliberate improvements (``shared/spec/scenarios.md``):

1. Only between queues: never within the ask's own leaf queue, never within its application.
2. Only for an ask whose queue is below its guarantee, own or inherited, and stays within it
   once placed (victims under a shared ancestor count as freed there). No guarantee on the
   ask's path: no preemption.
3. Victims come from leaves under the fence root: the first queue up from the ask's leaf that
   has ``preemption.policy: fence``, is the root, or would exceed its max with the ask ("fence
   by max"). Leaves with ``preemption.policy: disabled`` are skipped.
4. A victim's queue must be above its guarantee in a type the ask needs, judged by its remaining
   guarantee along its path (up to the root if the ask's leaf has no guarantee of its own, else
   below the queue they share), and no victim may take it (or an ancestor it does not share
   with the ask) below it.
5. A victim's priority is at most the ask's, translated through ``priority.offset`` and
   priority fences on the way. A victim must share a resource type with the ask.
6. Victim order: preemptible before opted-out, non-originators before originators, newest
   first; ties to the node name that sorts first.
7. The ask must be older than its queue's ``preemption.delay``; an ask is looked at again at
   most every 15 seconds.

Improvements over YuniKorn: the victim set is minimal (free room on the node and free queue
headroom count toward the ask, and a reprieve pass drops every victim the rest make
unnecessary), a gang is solved member by member on one what-if state, and the room made is
held for the ask until its victims have stopped.

Regions: a gang whose members must share one region (the ``gpupool/region`` node label, see
``Scheduler._region_rule``) is solved regions aside first; if that plan spreads it over
regions, it is solved again with the candidate nodes of one region at a time (nodes without a
region go with any), in the order placement tries regions, and the cheapest plan that keeps
it in one region is taken. A gang already running in a region is solved in that region only.
Elastic extras are taken back (``reclaim``) under the same rule. Single asks, gangs that allow
``span_regions`` and clusters without region labels skip all of this.

All what-if work mutates the scheduler's state through its own inverse operations and is
undone before ``attempt`` returns: the caller gets a plan and applies it, or nothing changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpupool.core.capacity import REGION_LABEL
from gpupool.core.decisions import Code, Reason
from gpupool.core.model import Allocation, App, Ask, Node
from gpupool.core.queues import INT32_MAX, Queue, clamp32
from gpupool.core.resources import (
    Resources,
    format_resources,
    gpu_count,
    ordered_key,
    over_max,
    shares_type,
    total,
    typed,
)

if TYPE_CHECKING:
    from gpupool.core.scheduler import Scheduler

MAX_NODES_EVALUATED = 64  # feasible nodes collected
MAX_NODES_SOLVED = 16  # of those, solved exactly

# What a plan costs, summed over its members' nodes: protected victims, originators stopped,
# workloads stopped, work lost (age x GPUs). Lower is better; compared between regions.
_Cost = tuple[int, int, int, float]
_FREE: _Cost = (0, 0, 0, 0.0)


@dataclass(slots=True)
class PreemptionPlan:
    asks: list[Ask]
    victims: list[Allocation]
    targets: list[tuple[Ask, Node]]
    reason: Reason


@dataclass(frozen=True, slots=True)
class _Leaf:
    queue: Queue
    limit: int  # the ask's priority translated into this leaf: victims at most this
    guards: tuple[Queue, ...]  # queues whose guarantee a victim here must not break
    left: Resources | None  # its remaining guarantee as seen from the ask (None: none applies)

    def over_for(self, counted: Resources) -> bool:
        """Above its guarantee in a type the ask needs (yunikorn-core
        ``isVictimQueueOverGuaranteed``); with no guarantee on its path, always."""
        left = self.left
        if left is None:
            return True
        return any(left[t] < 0 for t, v in counted.items() if v > 0 and t in left)


class _Candidate:
    """A victim unit: one allocation, or every allocation of a gang (a gang stops as a whole)."""

    __slots__ = ("allocs", "counted", "guards", "key", "originator", "preemptible", "queue", "start")

    def __init__(self, allocs: tuple[Allocation, ...], guards: tuple[Queue, ...]) -> None:
        self.allocs = allocs
        self.guards = guards  # queues whose guarantee this victim must not break
        first = allocs[0]
        self.queue = first.queue
        self.counted: Resources = {}
        for a in allocs:
            for k, v in a.counted.items():
                self.counted[k] = self.counted.get(k, 0) + v
        self.preemptible = all(a.preemptible for a in allocs)
        # Stopping a whole gang does not strand its workers: the originator rule is moot there.
        self.originator = len(allocs) == 1 and first.originator
        self.start = max(a.start for a in allocs)
        first_node = min(a.node.name for a in allocs)
        # Elastic extra members are given back before anything else.
        self.key = (
            not all(a.elastic for a in allocs),
            not self.preemptible,
            self.originator,
            -self.start,
            first_node,
            first.seq,
        )

    def on(self, node: Node) -> Resources:
        """The resources this unit holds on ``node``."""
        if len(self.allocs) == 1:
            a = self.allocs[0]
            return a.resources if a.node is node else {}
        out: Resources = {}
        for a in self.allocs:
            if a.node is node:
                for k, v in a.resources.items():
                    out[k] = out.get(k, 0) + v
        return out

    def gpus(self) -> int:
        return sum(gpu_count(a.resources) for a in self.allocs)


class _Cannot(Exception):
    """Preemption cannot help; the message says why."""


CANNOT_HELP = "; preemption cannot help: "


def cannot_help(reason: Reason, why: str) -> Reason:
    """``reason`` with why preemption cannot help, in place of any earlier such clause (an ask
    that keeps waiting is annotated again every cycle: the text must not grow)."""
    base = reason.message.split(CANNOT_HELP, 1)[0]
    return Reason(reason.code, f"{base}{CANNOT_HELP}{why}", reason.hint)


def _victim_order(c: _Candidate) -> tuple[bool, bool, bool, float, str, int]:
    return c.key


def _common_ancestor(a: Queue, b: Queue) -> Queue:
    seen = {id(q) for q in a.ancestors()}
    q: Queue | None = b
    while q is not None:
        if id(q) in seen:
            return q
        q = q.parent
    raise AssertionError("queues of one tree always share the root")


def _reduces(res: Resources, need: Resources) -> bool:
    return any(res.get(k, 0) > 0 for k, n in need.items() if n > 0)


def _merge(a: list[_Candidate], b: list[_Candidate]) -> Iterator[_Candidate]:
    """Both lists are in victim order; yield their union in that order."""
    return heapq.merge(a, b, key=_victim_order)


def _used_up(q: Queue, need: Resources) -> str | None:
    """The first type ``need`` asks for that ``q`` guarantees and already uses more than, as text."""
    if not q.guaranteed:
        return None
    for t, g in q.guaranteed.items():
        if need.get(t, 0) > 0 and q.allocated.get(t, 0) - q.preempting.get(t, 0) > g:
            return f"{g} {t}"
    return None


def _satisfied(need: Resources) -> bool:
    return all(n <= 0 for n in need.values())


class Preemptor:
    """One cycle's preemption search over the scheduler's state."""

    def __init__(self, scheduler: Scheduler, now: float) -> None:
        self.s = scheduler
        self.now = now
        self._cache: dict[tuple[object, ...], dict[int, _Leaf]] = {}
        self._failed: dict[tuple[object, ...], str] = {}
        self._leaf_hosts_cache: dict[tuple[int, int], dict[str, tuple[Node, int]]] = {}
        self._hosts_cache: dict[tuple[object, ...], list[tuple[Node, int]]] = {}
        self._units: dict[int, _Candidate | None] = {}
        self._qpool: dict[tuple[str, str | None], list[_Candidate]] = {}

    # --------------------------------------------------------------- entry point

    def attempt(self, app: App, asks: list[Ask], leaf: Queue) -> PreemptionPlan | None:
        lead = asks[0]
        original = lead.reason or Reason(Code.NO_NODE, "cannot be placed")
        try:
            self._preconditions(app, asks, leaf)
        except _Cannot as why:
            self._annotate(asks, original, str(why))
            return None
        required = len(asks) == 1 and lead.required_node is not None
        if not required and lead.last_preempt_check is not None and self.now < lead.last_preempt_check + 15.0:
            return None
        lead.last_preempt_check = self.now
        rule = self._region_bound(app, asks)
        memo = (
            leaf.path,
            rule,
            tuple((a.priority, ordered_key(a.resources), a.gpu_types, a.required_node) for a in asks),
        )
        if memo in self._failed:
            self._annotate(asks, original, self._failed[memo])
            return None
        try:
            plan = self._by_region(rule, lambda region: self._solve_all(asks, leaf, region))
        except _Cannot as why:
            # Nothing that happened since in this cycle made victims easier to find.
            self._failed[memo] = str(why)
            self._annotate(asks, original, str(why))
            return None
        return plan

    def _annotate(self, asks: list[Ask], original: Reason, why: str) -> None:
        reason = cannot_help(original, why)
        for a in asks:
            a.reason = reason

    def _preconditions(self, app: App, asks: list[Ask], leaf: Queue) -> None:
        lead = asks[0]
        required = len(asks) == 1 and lead.required_node is not None
        if not self.s.preemption_enabled:
            raise _Cannot("preemption is disabled in this partition")
        if any(not a.preempt_others for a in asks):
            raise _Cannot("the ask does not preempt others (preempt_others is false)")
        if required:
            # As YuniKorn's required-node (DaemonSet) preemption: at once, whatever the
            # preemption.delay and the queues' guarantees.
            return
        # Before the delay: a queue above or without a guarantee is never promised
        # preemption "after preemption.delay".
        self._within_guarantee(asks, leaf)
        created = min(a.created for a in asks)
        if self.now < created + leaf.preemption_delay:
            raise _Cannot(
                f"it has waited {self.now - created:g}s; {leaf.path} lets an ask preempt after "
                f"{leaf.preemption_delay:g}s (preemption.delay)"
            )

    def _within_guarantee(self, asks: list[Ask], leaf: Queue) -> None:
        need = total(a.resources for a in asks)
        if leaf.guaranteed:
            for t, g in leaf.guaranteed.items():
                if need.get(t, 0) > 0 and leaf.allocated.get(t, 0) + need[t] > g:
                    raise _Cannot(
                        f"{leaf.path} would go above its own guarantee of {t} "
                        f"({leaf.allocated.get(t, 0)} in use + {need[t]} > {g}); "
                        "preemption only restores guarantees"
                    )
        if not leaf.guaranteed:
            # Its guarantee is inherited: every victim must fit in what is left of it, so an
            # ancestor already above its guarantee leaves nothing to preempt for (yunikorn-core
            # checks askQueueRemaining.FitInActual(victim)).
            for q in leaf.ancestors()[1:]:
                over = _used_up(q, need)
                if over is not None:
                    raise _Cannot(
                        f"{leaf.path} has no guarantee of its own and {q.path} is already above its "
                        f"guarantee of {over}, so there is no guarantee left to restore"
                    )
        # Per-GPU-type guarantees count too, for every type the asks may run on.
        for a in asks:
            for types in self.s._type_options(a):
                for gpu_type in types:
                    for k, v in typed(a.resources, gpu_type).items():
                        need[k] = max(need.get(k, 0), v)
        for q in leaf.ancestors():
            if q.guaranteed and any(need.get(t, 0) > 0 for t in q.guaranteed):
                return
        raise _Cannot(
            f"neither {leaf.path} nor its parents guarantee any of {format_resources(need)}, "
            "so it may only use idle capacity"
        )

    # --------------------------------------------------------------- elastic extras first

    def reclaim(self, app: App, asks: list[Ask], leaf: Queue) -> PreemptionPlan | None:
        """Take back extra members of elastic workloads (any queue, no waiting, no guarantee
        rules: they only ever borrowed idle GPUs) if that alone lets the asks run.

        A gang that must stay in one region gets room in one region, as in ``attempt``: the
        plan regions aside if it keeps the gang in one, else the cheapest plan of one region."""
        s = self.s
        if any(a.elastic or not a.preempt_others for a in asks):
            return None
        extras = [a for a in s.elastic.values() if not a.preempted and a.app is not app]
        if not extras:
            return None
        extras.sort(key=lambda a: (-a.start, a.node.name, a.seq))  # newest first
        try:
            return self._by_region(
                self._region_bound(app, asks),
                lambda region: self._reclaim_all(asks, leaf, extras, region),
            )
        except _Cannot:
            return None

    def _reclaim_all(
        self, asks: list[Ask], leaf: Queue, extras: list[Allocation], region: str | None = None
    ) -> tuple[PreemptionPlan, _Cost]:
        """Extras to take back for every ask on one what-if state, and what they cost. With
        ``region``, the asks go to nodes of that region or of none."""
        s = self.s
        undo: list[tuple[str, Allocation]] = []
        victims: list[Allocation] = []
        targets: list[tuple[Ask, Node]] = []

        def live(a: Allocation) -> bool:
            return a.id in s.allocations and not a.preempted

        def take(a: Allocation) -> None:
            s._detach(a)
            undo.append(("detach", a))
            victims.append(a)

        try:
            for ask in asks:
                node, reason = s._find_place(ask, leaf, region=region)
                if node is None and reason.code in (Code.QUEUE_QUOTA, Code.GANG_WAITING):
                    for q in leaf.ancestors():
                        over = over_max(q.allocated, ask.resources, q.max)
                        for x in extras:
                            if not over or all(v <= 0 for v in over.values()):
                                break
                            if live(x) and x.queue.is_under(q) and _reduces(x.resources, over):
                                take(x)
                                for k in over:
                                    over[k] -= x.resources.get(k, 0)
                    node, reason = s._find_place(ask, leaf, region=region)
                if node is None:
                    node = self._clear_extras(ask, leaf, [x for x in extras if live(x)], take, region)
                if node is None:
                    raise _Cannot("taking back elastic extra members does not make room")
                undo.append(("assign", s._assign(ask, node)))
                targets.append((ask, node))
        finally:
            self._undo(undo)
        if not victims:
            raise _Cannot("it fits without taking back elastic extra members")
        what = asks[0].id if len(asks) == 1 else f"gang {asks[0].app.id}"
        reason = Reason(
            Code.PREEMPTED, f"elastic extra member given back so that {what} in {leaf.path} can run"
        )
        cost = (
            sum(1 for v in victims if not v.preemptible),
            sum(1 for v in victims if v.originator),
            len(victims),
            sum((self.now - v.start) * max(1, gpu_count(v.resources)) for v in victims),
        )
        return PreemptionPlan(asks, victims, targets, reason), cost

    def _undo(self, undo: list[tuple[str, Allocation]]) -> None:
        """Reverse a what-if: unassign the asks placed, attach the victims detached."""
        for kind, obj in reversed(undo):
            if kind == "assign":
                self.s._unassign(obj)
            else:
                self.s._attach(obj)

    def _clear_extras(
        self,
        ask: Ask,
        leaf: Queue,
        extras: list[Allocation],
        take: Callable[[Allocation], None],
        region: str | None = None,
    ) -> Node | None:
        """The node (of ``region`` or of none, if given) where the fewest extra members make
        room for ``ask``; takes them."""
        s = self.s
        by_node: dict[str, list[Allocation]] = {}
        for x in extras:
            by_node.setdefault(x.node.name, []).append(x)
        allowed = {t for types in s._type_options(ask) for t in types}
        best: tuple[int, str, Node, list[Allocation]] | None = None
        for name, xs in by_node.items():
            node = s.nodes[name]
            if not node.schedulable or node.gpu_type not in allowed:
                continue
            if region is not None and not in_region(node, region):
                continue
            if not _fits_capacity(ask.resources, node.capacity):
                continue
            if s._quota_blocker(leaf, typed(ask.resources, node.gpu_type)) is not None:
                continue
            avail = node.avail_for(ask.id)
            need = {k: v - avail.get(k, 0) for k, v in ask.resources.items() if v > avail.get(k, 0)}
            chosen: list[Allocation] = []
            for x in xs:
                if _satisfied(need):
                    break
                if _reduces(x.resources, need):
                    chosen.append(x)
                    for k in need:
                        need[k] -= x.resources.get(k, 0)
            if _satisfied(need) and (best is None or (len(chosen), name) < best[:2]):
                best = (len(chosen), name, node, chosen)
        if best is None:
            return None
        for x in best[3]:
            take(x)
        return best[2]

    # --------------------------------------------------------------- regions

    def _region_bound(self, app: App, asks: list[Ask]) -> tuple[str, ...] | None:
        """None if the asks may take nodes of any regions; else the region they must use, or
        ``()`` for any one region (a gang none of whose members runs in a region yet)."""
        s = self.s
        if not s._regions:
            return None
        rule = s._region_rule(app)
        if rule is None or not (rule or len(asks) > 1):
            return None
        return rule

    def _by_region(
        self, rule: tuple[str, ...] | None, solve: Callable[[str | None], tuple[PreemptionPlan, _Cost]]
    ) -> PreemptionPlan:
        """A plan of ``solve`` (``_solve_all`` or ``_reclaim_all`` bound to the asks, given a
        region or None) under the region rule ``rule`` (see ``_region_bound``)."""
        if rule is None:
            return solve(None)[0]
        if rule:
            return solve(rule[0])[0]
        # Regions aside first: the cheapest plan often keeps the gang in one region anyway.
        plan, _ = solve(None)
        regions = regions_of(plan)
        if len(regions) <= 1:
            return plan
        # Then one region at a time, the first member's region first, then as placement tries
        # them; the cheapest plan wins, ties to the region tried first.
        best: tuple[_Cost, int, PreemptionPlan] | None = None
        for i, region in enumerate([regions[0], *self.s._other_regions(regions[0])]):
            try:
                plan, cost = solve(region)
            except _Cannot:
                continue
            if best is None or (cost, i) < best[:2]:
                best = (cost, i, plan)
        if best is None:
            raise _Cannot("the room it would make spans regions and the members must share one")
        return best[2]

    # --------------------------------------------------------------- what-if over all members

    def _solve_all(
        self, asks: list[Ask], leaf: Queue, region: str | None = None
    ) -> tuple[PreemptionPlan, _Cost]:
        """Victims for every ask on one what-if state, and what they cost. With ``region``, the
        asks go to nodes of that region or of none."""
        s = self.s
        undo: list[tuple[str, Allocation]] = []
        victims: list[Allocation] = []
        targets: list[tuple[Ask, Node]] = []
        cost = _FREE
        try:
            for ask in asks:
                blocked = s.limits.blocking(s._app_limits.get(ask.app.id, ()), ask.resources)
                if blocked is not None:
                    raise _Cannot(f"{blocked}: a user or group limit is not restored by preemption")
                node, _ = s._find_place(ask, leaf, region=region)
                if node is None:
                    if ask.required_node is not None and len(asks) == 1:
                        node, chosen = self._solve_required(ask, leaf, region)
                    else:
                        node, chosen, spent = self._solve(ask, leaf, region)
                        cost = (
                            cost[0] + spent[0],
                            cost[1] + spent[1],
                            cost[2] + spent[2],
                            cost[3] + spent[3],
                        )
                    for v in chosen:
                        s._detach(v)
                        undo.append(("detach", v))
                    victims.extend(chosen)
                alloc = s._assign(ask, node)
                undo.append(("assign", alloc))
                targets.append((ask, node))
        finally:
            self._undo(undo)
        if not victims:
            raise _Cannot("it fits without preemption")
        what = asks[0].id if len(asks) == 1 else f"gang {asks[0].app.id} ({len(asks)} members)"
        queues = sorted({v.queue.path for v in victims})
        reason = Reason(
            Code.PREEMPTED,
            f"preempted so that {what} in {leaf.path} gets its guarantee; "
            f"{', '.join(queues)} above its guarantee",
        )
        return PreemptionPlan(asks, victims, targets, reason), cost

    # --------------------------------------------------------------- one ask, one node

    def _solve(
        self, ask: Ask, leaf: Queue, region: str | None = None
    ) -> tuple[Node, list[Allocation], _Cost]:
        """The node where clearing room for ``ask`` costs least (only nodes of ``region`` or of
        none, if given), the allocations to stop there, and what that costs."""
        s = self.s
        fence = self._fence_root(leaf, ask.resources)
        eligible = self._eligible(ask, leaf, fence)
        if not eligible:
            shared = "" if leaf.guaranteed else " (counting the guarantees it shares with them)"
            raise _Cannot(
                f"no queue under {fence.path} other than {leaf.path} is above its guarantee{shared} "
                "with work of no higher priority"
            )
        best: tuple[tuple[int, int, int, float, str], Node, list[Allocation]] | None = None
        gpus = gpu_count(ask.resources)
        for types in s._type_options(ask):
            allowed = set(types)
            ranked: list[tuple[int, str, Node, list[_Candidate]]] = []
            # Nodes holding possible victims, the most free GPUs first (they need the least
            # cleared); stop once enough are feasible.
            free = s.index.free_gpus
            hosts: list[tuple[int, str, Node]] = []
            for n, victim_gpus in self._hosts(leaf, fence, ask.priority, eligible):
                if n.gpu_type in allowed and (region is None or in_region(n, region)):
                    f = free(n.name)
                    if f + victim_gpus >= gpus:
                        hosts.append((-f, n.name, n))
            hosts.sort()
            for _, _, node in hosts:
                if node.gpu_type not in allowed or not _fits_capacity(ask.resources, node.capacity):
                    continue
                local = self._local(ask, node, eligible)
                if not local:
                    continue
                gap = self._gap(ask, node, local)
                if gap is not None:
                    ranked.append((gap, node.name, node, local))
                    if len(ranked) >= MAX_NODES_EVALUATED:
                        break
            # The ask may already fit a node and be held back only by a queue's max.
            fitting = s.index.best(gpus, types, within(region, lambda n: s._fits_node(ask, n)))
            if fitting is not None:
                ranked.append((0, fitting.name, fitting, self._local(ask, fitting, eligible)))
            # Solve the most promising nodes: least to clear, then the newest work to clear.
            ranked.sort(key=lambda r: (r[0], -max((c.start for c in r[3]), default=0.0), r[1]))
            for _, _, node, local in ranked[:MAX_NODES_SOLVED]:
                units = self._plan_on_node(ask, leaf, node, local, eligible)
                if units is None:
                    continue
                # Fewest protected victims, fewest workloads stopped, least work lost (newest first).
                score = (
                    sum(1 for u in units if not u.preemptible),
                    sum(1 for u in units if u.originator),
                    len(units),
                    sum((self.now - u.start) * max(1, u.gpus()) for u in units),
                    node.name,
                )
                chosen = [a for u in units for a in u.allocs]
                if best is None or score < best[0]:
                    best = (score, node, chosen)
            if best is not None:
                return best[1], best[2], best[0][:4]
        raise _Cannot(
            "no node can be cleared for it without taking a queue below its guarantee "
            "or stopping higher-priority work"
        )

    def _hosts(
        self, leaf: Queue, fence: Queue, priority: int, eligible: dict[int, _Leaf]
    ) -> list[tuple[Node, int]]:
        """Schedulable nodes holding possible victims, with the GPUs those victims hold."""
        key = (leaf.path, fence.path, priority)
        cached = self._hosts_cache.get(key)
        if cached is None:
            gpus: dict[str, int] = {}
            nodes: dict[str, Node] = {}
            for info in eligible.values():
                for name, (node, held) in self._leaf_hosts(info).items():
                    nodes[name] = node
                    gpus[name] = gpus.get(name, 0) + held
            cached = [(n, gpus[name]) for name, n in nodes.items()]
            self._hosts_cache[key] = cached
        return cached

    def _leaf_hosts(self, info: _Leaf) -> dict[str, tuple[Node, int]]:
        """Per node, the GPUs of the leaf's allocations that an ask of this limit may preempt."""
        key = (id(info.queue), info.limit)
        cached = self._leaf_hosts_cache.get(key)
        if cached is None:
            cached = {}
            for app in info.queue.apps.values():
                for a in app.allocations.values():
                    if a.node.schedulable and not a.preempted and a.disruptible and a.priority <= info.limit:
                        node, held = cached.get(a.node.name, (a.node, 0))
                        cached[a.node.name] = (node, held + gpu_count(a.resources))
            self._leaf_hosts_cache[key] = cached
        return cached

    def _local(self, ask: Ask, node: Node, eligible: dict[int, _Leaf]) -> list[_Candidate]:
        """Possible victims on ``node``, in victim order."""
        out: list[_Candidate] = []
        seen_apps: set[int] = set()
        for a in node.allocations.values():
            info = eligible.get(id(a.queue))
            if (
                info is None
                or a.preempted
                or not a.disruptible
                or a.app is ask.app
                or a.priority > info.limit
                or a.required_node is not None
            ):
                continue
            if not shares_type(a.resources, ask.resources):
                continue
            if a.app.gang is not None and not a.elastic:
                if id(a.app) in seen_apps:
                    continue
                seen_apps.add(id(a.app))
                unit = self._gang_unit(a.app, info)
                if unit is not None:
                    out.append(unit)
            else:
                out.append(_Candidate((a,), info.guards))
        out.sort(key=_victim_order)
        return out

    def _gang_unit(self, app: App, info: _Leaf) -> _Candidate | None:
        """All allocations of a gang as one victim, or None if any of them may not be one."""
        key = id(app)
        if key in self._units:
            return self._units[key]
        allocs = tuple(a for a in app.allocations.values() if not a.elastic)
        ok = bool(allocs) and all(
            not a.preempted and a.disruptible and a.priority <= info.limit and a.required_node is None
            for a in allocs
        )
        unit = _Candidate(allocs, info.guards) if ok else None
        self._units[key] = unit
        return unit

    def _live(self, c: _Candidate, ask: Ask) -> bool:
        allocations = self.s.allocations
        return all(not a.preempted and a.app is not ask.app and a.id in allocations for a in c.allocs)

    @staticmethod
    def _gap(ask: Ask, node: Node, local: list[_Candidate]) -> int | None:
        """How much of the ask the node lacks now (None if its victims cannot cover it)."""
        avail = node.avail_for(ask.id)
        gap = 0
        for k, v in ask.resources.items():
            short = v - avail.get(k, 0)
            if short <= 0:
                continue
            if sum(c.on(node).get(k, 0) for c in local) < short:
                return None
            gap += short if k in ("gpu", "nvidia.com/gpu", "amd.com/gpu") else 0
        return gap

    def _plan_on_node(
        self, ask: Ask, leaf: Queue, node: Node, local: list[_Candidate], eligible: dict[int, _Leaf]
    ) -> list[_Candidate] | None:
        counted = typed(ask.resources, node.gpu_type)
        avail = node.avail_for(ask.id)
        need_node = {k: v - avail.get(k, 0) for k, v in ask.resources.items() if v > avail.get(k, 0)}
        shortfalls: list[tuple[Queue, Resources]] = []
        for q in leaf.ancestors():
            over = over_max(q.allocated, counted, q.max)
            if over:
                shortfalls.append((q, over))
        # Law 4: the ask must fit its own guarantee or, for a type its leaf does not guarantee,
        # the nearest ancestor's; victims under that ancestor count as freed there.
        # A leaf without a guarantee of its own inherits every ancestor's: the ask must fit in
        # each (yunikorn-core: the ask queue's remaining guarantee is the least along its path).
        for t, v in counted.items():
            if v <= 0:
                continue
            owners = [q for q in leaf.ancestors() if q.guaranteed and t in q.guaranteed]
            if leaf.guaranteed:
                owners = owners[:1]
            for owner in owners:
                assert owner.guaranteed is not None
                if not leaf.guaranteed and _used_up(owner, {t: v}) is not None:
                    return None  # no inherited guarantee left for this type
                beyond = owner.allocated.get(t, 0) + v - owner.guaranteed[t]
                if beyond > 0:
                    if owner is leaf:
                        return None  # the ask alone takes its own queue above its guarantee
                    shortfalls.append((owner, {t: beyond}))
        if not need_node and not shortfalls:
            return []
        # Victims off this node only help with the queue shortfalls; those that can are the same
        # for every node, so they are filtered once per node type and merged with the local ones.
        if shortfalls:
            qkey = (ask.id, node.gpu_type)
            qpool = self._qpool.get(qkey)
            if qpool is None:
                qpool = self._queue_pool(ask, shortfalls, eligible)
                self._qpool[qkey] = qpool
        else:
            qpool = []
        remaining_node = dict(need_node)
        remaining = [(q, dict(o)) for q, o in shortfalls]
        taken: dict[int, Resources] = {}
        chosen: list[_Candidate] = []
        seen: set[int] = set()
        queues_done = not remaining
        for c in _merge(local, qpool):
            if id(c.allocs[0]) in seen or not self._live(c, ask):
                continue
            if not eligible[id(c.queue)].over_for(counted):
                continue
            seen.add(id(c.allocs[0]))
            here = c.on(node)
            if queues_done and not here:
                continue
            useful = bool(here) and _reduces(here, remaining_node)
            if not useful and not queues_done:
                useful = any(_reduces(c.counted, o) and c.queue.is_under(q) for q, o in remaining)
            if not useful or not self._budget_ok(c, taken):
                continue
            chosen.append(c)
            for g in c.guards:
                bucket = taken.setdefault(id(g), {})
                for k, x in c.counted.items():
                    bucket[k] = bucket.get(k, 0) + x
            for k in remaining_node:
                remaining_node[k] -= here.get(k, 0)
            for q, o in remaining:
                if c.queue.is_under(q):
                    for k in o:
                        o[k] -= c.counted.get(k, 0)
            queues_done = all(_satisfied(o) for _, o in remaining)
            if queues_done and _satisfied(remaining_node):
                break
        else:
            return None
        # Reprieve: drop every victim the others make unnecessary, most protected first.
        keep = list(chosen)
        for c in reversed(chosen):
            trial = [x for x in keep if x is not c]
            if self._covers(trial, node, need_node, shortfalls):
                keep = trial
        return keep

    @staticmethod
    def _covers(
        chosen: list[_Candidate], node: Node, need_node: Resources, shortfalls: list[tuple[Queue, Resources]]
    ) -> bool:
        for k, n in need_node.items():
            if sum(c.on(node).get(k, 0) for c in chosen) < n:
                return False
        for q, o in shortfalls:
            for k, n in o.items():
                if sum(c.counted.get(k, 0) for c in chosen if c.queue.is_under(q)) < n:
                    return False
        return True

    @staticmethod
    def _budget_ok(c: _Candidate, taken: dict[int, Resources]) -> bool:
        """A victim may not take its queue below its guarantee. A gang stops as a whole, so it
        may be taken while its queue is still above its guarantee, even if stopping it all
        leaves the queue below until it is placed again; otherwise a team could shield
        borrowed GPUs by running them as one big gang."""
        gang = len(c.allocs) > 1
        for g in c.guards:
            assert g.guaranteed is not None
            already = taken.get(id(g), {})
            for t, floor in g.guaranteed.items():
                x = c.counted.get(t, 0)
                if x <= 0:
                    continue
                used = g.allocated.get(t, 0) - g.preempting.get(t, 0) - already.get(t, 0)
                if (used <= floor) if gang else (used - x < floor):
                    return False
        return True

    # --------------------------------------------------------------- who may be a victim

    @staticmethod
    def _fence_root(leaf: Queue, res: Resources) -> Queue:
        q = leaf
        while True:
            if q.preemption_policy == "fence" or q.parent is None:
                return q
            if over_max(q.allocated, res, q.max):
                return q
            q = q.parent

    def _eligible(self, ask: Ask, leaf: Queue, fence: Queue) -> dict[int, _Leaf]:
        """Leaves under the fence whose allocations may be victims, by ``id(queue)``."""
        key = (leaf.path, fence.path, ask.priority)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out: dict[int, _Leaf] = {}
        for victim_leaf in fence.leaves():
            if victim_leaf is leaf or victim_leaf.preemption_policy == "disabled" or not victim_leaf.apps:
                continue
            lca = _common_ancestor(leaf, victim_leaf)
            # As yunikorn-core's GetRemainingGuaranteedResource: when the ask's leaf has a
            # guarantee of its own, the victim's queues are judged below the queue they share;
            # otherwise the shared ancestors count too, so two leaves that only share an
            # ancestor's unmet guarantee never preempt each other.
            left = victim_leaf.remaining_guaranteed(stop=lca if leaf.guaranteed else None)
            if left is not None and not any(x < 0 for x in left.values()):
                continue  # within its guarantee
            limit = self._translated_priority(ask.priority, leaf, victim_leaf, lca)
            if limit is None:
                continue
            guards = tuple(q for q in victim_leaf.ancestors() if q.guaranteed and not lca.is_under(q))
            out[id(victim_leaf)] = _Leaf(victim_leaf, limit, guards, left)
        self._cache[key] = out
        return out

    def _queue_pool(
        self, ask: Ask, shortfalls: list[tuple[Queue, Resources]], eligible: dict[int, _Leaf]
    ) -> list[_Candidate]:
        """Possible victims anywhere that reduce a queue shortfall, in victim order."""
        out: list[_Candidate] = []
        for info in eligible.values():
            vq = info.queue
            under = [o for q, o in shortfalls if vq.is_under(q)]
            if not under:
                continue
            for app in vq.apps.values():
                if app is ask.app:
                    continue
                if app.gang is not None and app.allocations:
                    unit = self._gang_unit(app, info)
                    if (
                        unit is not None
                        and shares_type(unit.counted, ask.resources)
                        and any(_reduces(unit.counted, o) for o in under)
                    ):
                        out.append(unit)
                for a in app.allocations.values():
                    if app.gang is not None and not a.elastic:
                        continue
                    if (
                        a.preempted
                        or not a.disruptible
                        or a.priority > info.limit
                        or a.required_node is not None
                        or not shares_type(a.resources, ask.resources)
                    ):
                        continue
                    if any(_reduces(a.counted, o) for o in under):
                        out.append(_Candidate((a,), info.guards))
        out.sort(key=_victim_order)
        return out

    @staticmethod
    def _translated_priority(prio: int, leaf: Queue, victim_leaf: Queue, lca: Queue) -> int | None:
        """The ask's priority as seen inside the victim's subtree; None if a fence shuts it out."""
        p = prio
        q: Queue | None = leaf
        while q is not None and q is not lca:
            p = q.priority_offset if q.priority_policy == "fence" else clamp32(p + q.priority_offset)
            q = q.parent
        down: list[Queue] = []
        q = victim_leaf
        while q is not None and q is not lca:
            down.append(q)
            q = q.parent
        for b in reversed(down):
            if b.priority_policy == "fence":
                return None if b.priority_offset > p else INT32_MAX
            p = clamp32(p - b.priority_offset)
        return p

    # --------------------------------------------------------------- required node

    def _solve_required(
        self, ask: Ask, leaf: Queue, region: str | None = None
    ) -> tuple[Node, list[Allocation]]:
        """An ask pinned to a node: victims on that node only, queue guarantees aside, the ask's
        own application included; never another required-node allocation (yunikorn-core
        required_node_preemptor.go filterAllocations)."""
        node = self.s.nodes.get(ask.required_node or "")
        if node is None or not node.schedulable:
            raise _Cannot(f"required node {ask.required_node} is not schedulable")
        if region is not None and not in_region(node, region):
            raise _Cannot(f"required node {node.name} is not in region {region}, where its gang runs")
        if ask.gpu_types and node.gpu_type not in ask.gpu_types:
            raise _Cannot(
                f"required node {node.name} has GPU type {node.gpu_type}, not {'/'.join(ask.gpu_types)}"
            )
        # As YuniKorn's checkHeadRooms before required-node preemption: room on the node does
        # not help an ask its queue's max holds back.
        blocker = self.s._quota_blocker(leaf, typed(ask.resources, node.gpu_type))
        if blocker is not None:
            raise _Cannot(f"{blocker.path} is at its max, and preemption on {node.name} does not change that")
        avail = node.avail_for(ask.id)
        need = {k: v - avail.get(k, 0) for k, v in ask.resources.items() if v > avail.get(k, 0)}
        pool = [
            a
            for a in node.allocations.values()
            if not a.preempted
            and a.disruptible
            and a.priority <= ask.priority
            and a.required_node is None
            and shares_type(a.resources, ask.resources)
        ]
        pool.sort(
            key=lambda a: (a.originator, not a.preemptible, a.priority, -a.start, sum(a.resources.values()))
        )
        chosen: list[Allocation] = []
        for a in pool:
            if _satisfied(need):
                break
            if not _reduces(a.resources, need):
                continue
            chosen.append(a)
            for k in need:
                need[k] -= a.resources.get(k, 0)
        if not _satisfied(need):
            raise _Cannot(f"the allocations on {node.name} that it may preempt do not make enough room")
        return node, chosen


def _fits_capacity(ask: Resources, capacity: Resources) -> bool:
    return all(capacity.get(k, 0) >= v for k, v in ask.items() if v > 0)


def in_region(node: Node, region: str) -> bool:
    """A node of ``region``, or of no region (static nodes go with any)."""
    return node.labels.get(REGION_LABEL, region) == region


def within(region: str | None, fits: Callable[[Node], bool]) -> Callable[[Node], bool]:
    """``fits`` limited to the nodes of ``region`` (or of none); ``fits`` itself without one."""
    if region is None:
        return fits
    return lambda n: in_region(n, region) and fits(n)


def regions_of(plan: PreemptionPlan) -> list[str]:
    """The regions of the nodes a plan places its asks on, in the order of the asks."""
    out: list[str] = []
    for _, node in plan.targets:
        region = node.labels.get(REGION_LABEL)
        if region is not None and region not in out:
            out.append(region)
    return out
