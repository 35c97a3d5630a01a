"""Preemption: which running allocations to stop so that a waiting ask (or gang) gets its guarantee.

YuniKorn's laws, with gpupool's deliberate improvements (``shared/spec/scenarios.md``):

1. Only between queues: never within the ask's own leaf queue, never within its application.
2. Only for an ask whose queue is below its guarantee, own or inherited, and stays within it
   once placed (victims under a shared ancestor count as freed there), and its victims free no
   more than the queue is still owed (``gpupool.core.owed``). No guarantee on the ask's path:
   no preemption.
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
   most every ``PREEMPTION_CHECK_INTERVAL`` (15) seconds.

Improvements over YuniKorn: the victim set is minimal (free room on the node and free queue
headroom count toward the ask, and a reprieve pass drops every victim the rest make
unnecessary), a gang is solved member by member on one what-if state, and the room made is
held for the ask until its victims have stopped.

Regions: a gang whose members must share one region (the ``gpupool/region`` node label, see
``gpupool.core.fit.region_rule``) is solved regions aside first; if that plan spreads it over
regions, it is solved again with the candidate nodes of one region at a time (nodes without a
region go with any), in the order placement tries regions, and the cheapest plan that keeps
it in one region is taken. A gang already running in a region is solved in that region only.
Elastic extras are taken back (``reclaim``) under the same rule. Single asks, gangs that allow
``span_regions`` and clusters without region labels skip all of this.

All what-if work is done on the ``Snapshot``: each trial edit (a victim removed, an ask
assigned) hands back its undo, and all are undone before ``attempt`` returns: the caller gets
a plan and applies it, or nothing changed. The search for one ask's victims on one node is
``gpupool.core.victims``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpupool.core.decisions import Code, Reason
from gpupool.core.fit import in_region, regions_of_nodes, shared_reason
from gpupool.core.model import Allocation, App, Ask, Node
from gpupool.core.owed import Owed
from gpupool.core.queues import Queue
from gpupool.core.resources import (
    format_resources,
    gpu_milli,
    gpus_from_milli,
    ordered_key,
    over_max,
    total,
    typed,
)
from gpupool.core.sharing import free_for, gpu_victims, gpus_held, held_by, partly_used
from gpupool.core.snapshot import Snapshot, Undo
from gpupool.core.victims import (
    FREE,
    Cannot,
    Cost,
    VictimSearch,
    fits_capacity,
    reduces,
    satisfied,
    used_up,
)
from gpupool.core.within_guarantee import leaf_gap

# An ask that preemption could not help is looked at again at most this often (seconds).
PREEMPTION_CHECK_INTERVAL = 15.0


@dataclass(slots=True)
class PreemptionPlan:
    """What preemption decided for some asks: the victims to stop, and where each ask goes."""

    asks: list[Ask]
    victims: list[Allocation]
    targets: list[tuple[Ask, Node]]
    reason: Reason


CANNOT_HELP = "; preemption cannot help: "


def cannot_help(reason: Reason, why: str) -> Reason:
    """``reason`` with why preemption cannot help, in place of any earlier such clause (an ask
    that keeps waiting is annotated again every cycle: the text must not grow)."""
    base = reason.message
    if reason.preemption:
        base = base[: len(base) - len(CANNOT_HELP) - len(reason.preemption)]
    return shared_reason(reason.code, f"{base}{CANNOT_HELP}{why}", reason.hint, preemption=why)


class Preemptor:
    """One cycle's preemption search, on the snapshot's public methods only."""

    def __init__(self, snap: Snapshot, now: float) -> None:
        self.s = snap
        self.now = now
        self._failed: dict[tuple[object, ...], str] = {}
        self._search = VictimSearch(snap, now)

    # --------------------------------------------------------------- entry point

    def attempt(self, app: App, asks: list[Ask], leaf: Queue) -> PreemptionPlan | None:
        lead = asks[0]
        original = lead.reason or Reason(Code.NO_NODE, "cannot be placed")
        try:
            self._preconditions(app, asks, leaf)
        except Cannot as why:
            self._annotate(asks, original, str(why))
            return None
        required = len(asks) == 1 and lead.required_node is not None
        checked = lead.last_preempt_check
        if not required and checked is not None and self.now < checked + PREEMPTION_CHECK_INTERVAL:
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
        except Cannot as why:
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
            raise Cannot("preemption is disabled in this partition")
        if any(not a.preempt_others for a in asks):
            raise Cannot("the ask does not preempt others (preempt_others is false)")
        if required:
            # As YuniKorn's required-node (DaemonSet) preemption: at once, whatever the
            # preemption.delay and the queues' guarantees.
            return
        # Before the delay: a queue above or without a guarantee is never promised
        # preemption "after preemption.delay".
        self._within_guarantee(asks, leaf)
        created = min(a.created for a in asks)
        if self.now < created + leaf.preemption_delay:
            raise Cannot(
                f"it has waited {self.now - created:g}s; {leaf.path} lets an ask preempt after "
                f"{leaf.preemption_delay:g}s (preemption.delay)"
            )

    def _within_guarantee(self, asks: list[Ask], leaf: Queue) -> None:
        need = total(a.resources for a in asks)
        if leaf.guaranteed:
            # Room already made for its other asks (their victims still stopping) counts as used:
            # else two asks of one leaf would each restore the same guarantee.
            held = self.s.held_under(leaf, {a.id for a in asks})
            for t, g in leaf.guaranteed.items():
                if need.get(t, 0) > 0 and leaf.allocated.get(t, 0) + held.get(t, 0) + need[t] > g:
                    kept = f" + {held[t]} held for its other asks" if held.get(t, 0) else ""
                    raise Cannot(
                        f"{leaf.path} would go above its own guarantee of {t} "
                        f"({leaf.allocated.get(t, 0)} in use{kept} + {need[t]} > {g}); "
                        "preemption only restores guarantees"
                    )
        if not leaf.guaranteed:
            # Its guarantee is inherited: every victim must fit in what is left of it, so an
            # ancestor already above its guarantee leaves nothing to preempt for (yunikorn-core
            # checks askQueueRemaining.FitInActual(victim)).
            for q in leaf.ancestors()[1:]:
                over = used_up(q, need)
                if over is not None:
                    raise Cannot(
                        f"{leaf.path} has no guarantee of its own and {q.path} is already above its "
                        f"guarantee of {over}, so there is no guarantee left to restore"
                    )
        # Per-GPU-type guarantees count too, for every type the asks may run on.
        for a in asks:
            for types in self.s.type_options(a):
                for gpu_type in types:
                    for k, v in typed(a.resources, gpu_type).items():
                        need[k] = max(need.get(k, 0), v)
        for q in leaf.ancestors():
            if q.guaranteed and any(need.get(t, 0) > 0 for t in q.guaranteed):
                return
        raise Cannot(
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
        except Cannot:
            return None

    def _reclaim_all(
        self, asks: list[Ask], leaf: Queue, extras: list[Allocation], region: str | None = None
    ) -> tuple[PreemptionPlan, Cost]:
        """Extras to take back for every ask on one what-if state, and what they cost. With
        ``region``, the asks go to nodes of that region or of none."""
        s = self.s
        undo: list[Undo] = []
        victims: list[Allocation] = []
        targets: list[tuple[Ask, Node]] = []

        def live(a: Allocation) -> bool:
            return a.id in s.allocations and not a.preempted

        def take(a: Allocation) -> None:
            undo.append(s.remove(a))
            victims.append(a)

        try:
            for ask in asks:
                node, reason = s.find_place(ask, leaf, region=region)
                if node is None and reason.code in (Code.QUEUE_QUOTA, Code.GANG_WAITING):
                    for q in leaf.ancestors():
                        over = over_max(q.allocated, ask.resources, q.max)
                        for x in extras:
                            if not over or all(v <= 0 for v in over.values()):
                                break
                            if live(x) and x.queue.is_under(q) and reduces(x.resources, over):
                                take(x)
                                for k in over:
                                    over[k] -= x.resources.get(k, 0)
                    node, reason = s.find_place(ask, leaf, region=region)
                if node is None:
                    node = self._clear_extras(ask, leaf, [x for x in extras if live(x)], take, region)
                if node is None:
                    raise Cannot("taking back elastic extra members does not make room")
                undo.append(s.assign(ask, node)[1])
                targets.append((ask, node))
        finally:
            _undo_all(undo)
        if not victims:
            raise Cannot("it fits without taking back elastic extra members")
        what = asks[0].id if len(asks) == 1 else f"gang {asks[0].app.id}"
        reason = Reason(
            Code.PREEMPTED, f"elastic extra member given back so that {what} in {leaf.path} can run"
        )
        cost = (
            sum(1 for v in victims if not v.preemptible),
            sum(1 for v in victims if v.originator),
            len(victims),
            sum((self.now - v.start) * (gpus_from_milli(gpu_milli(v.resources)) or 1) for v in victims),
        )
        return PreemptionPlan(asks, victims, targets, reason), cost

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
        allowed = {t for types in s.type_options(ask) for t in types}
        best: tuple[int, str, Node, list[Allocation]] | None = None
        for name, xs in by_node.items():
            node = s.nodes[name]
            if not node.schedulable or node.gpu_type not in allowed:
                continue
            if region is not None and not in_region(node, region):
                continue
            if not fits_capacity(ask.resources, node.capacity):
                continue
            counted = typed(ask.resources, node.gpu_type)
            if s.quota_blocker(leaf, counted) is not None:
                continue
            if ask.within_guarantee and leaf_gap(leaf, counted) is not None:
                continue
            avail = node.avail_for(ask.id)
            need = {k: v - avail.get(k, 0) for k, v in ask.resources.items() if v > avail.get(k, 0)}
            chosen: list[Allocation] = []
            for x in xs:
                if satisfied(need):
                    break
                if reduces(x.resources, need):
                    chosen.append(x)
                    for k in need:
                        need[k] -= x.resources.get(k, 0)
            if satisfied(need) and partly_used(node):
                # The GPUs one by one: a share needs one GPU with room, whole GPUs fully free ones.
                after = free_for(node, ask.id)
                for i, amount in gpus_held(chosen, node).items():
                    after[i] += amount
                rest = [x for x in xs if not any(x is c for c in chosen)]
                more = gpu_victims(
                    gpu_milli(ask.resources),
                    after,
                    rest,
                    held_by(node),
                    lambda v: (len(v),),
                )
                if more is None:
                    continue
                chosen.extend(more)
            if satisfied(need) and (best is None or (len(chosen), name) < best[:2]):
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
        if not s.has_regions:
            return None
        rule = s.region_rule(app)
        if rule is None or not (rule or len(asks) > 1):
            return None
        return rule

    def _by_region(
        self, rule: tuple[str, ...] | None, solve: Callable[[str | None], tuple[PreemptionPlan, Cost]]
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
        best: tuple[Cost, int, PreemptionPlan] | None = None
        for i, region in enumerate([regions[0], *self.s.other_regions(regions[0])]):
            try:
                plan, cost = solve(region)
            except Cannot:
                continue
            if best is None or (cost, i) < best[:2]:
                best = (cost, i, plan)
        if best is None:
            raise Cannot("the room it would make spans regions and the members must share one")
        return best[2]

    # --------------------------------------------------------------- what-if over all members

    def _solve_all(
        self, asks: list[Ask], leaf: Queue, region: str | None = None
    ) -> tuple[PreemptionPlan, Cost]:
        """Victims for every ask on one what-if state, and what they cost. With ``region``, the
        asks go to nodes of that region or of none."""
        s = self.s
        undo: list[Undo] = []
        victims: list[Allocation] = []
        targets: list[tuple[Ask, Node]] = []
        cost = FREE
        owed = Owed.of(s, leaf, [a.id for a in asks])
        try:
            for ask in asks:
                blocked = s.limit_blocking(ask.app, ask.resources)
                if blocked is not None:
                    raise Cannot(f"{blocked}: a user or group limit is not restored by preemption")
                node, _ = s.find_place(ask, leaf, region=region)
                if node is None:
                    if ask.required_node is not None and len(asks) == 1:
                        node, chosen = self._search.solve_required(ask, leaf, region)
                    else:
                        node, chosen, spent = self._search.solve(ask, leaf, owed, region)
                        owed = owed.after(chosen)
                        cost = (
                            cost[0] + spent[0],
                            cost[1] + spent[1],
                            cost[2] + spent[2],
                            cost[3] + spent[3],
                        )
                    for v in chosen:
                        undo.append(s.remove(v))
                    victims.extend(chosen)
                undo.append(s.assign(ask, node)[1])
                targets.append((ask, node))
        finally:
            _undo_all(undo)
        if not victims:
            raise Cannot("it fits without preemption")
        what = asks[0].id if len(asks) == 1 else f"gang {asks[0].app.id} ({len(asks)} members)"
        queues = sorted({v.queue.path for v in victims})
        reason = Reason(
            Code.PREEMPTED,
            f"preempted so that {what} in {leaf.path} gets its guarantee; "
            f"{', '.join(queues)} above its guarantee",
        )
        return PreemptionPlan(asks, victims, targets, reason), cost

    # --------------------------------------------------------------- one ask, one node


def regions_of(plan: PreemptionPlan) -> list[str]:
    """The regions of the nodes a plan places its asks on, in the order of the asks."""
    return regions_of_nodes(node for _, node in plan.targets)


def _undo_all(undo: list[Undo]) -> None:
    """Reverse a what-if, last edit first."""
    for back in reversed(undo):
        back()
