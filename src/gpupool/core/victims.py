"""Victim search: which running allocations may stop for one ask, and the cheapest node to clear.

``VictimSearch`` holds one cycle's caches (eligible leaves, hosts of possible victims, gangs as
victim units) and answers, for one ask: the node where clearing room costs least and the
allocations to stop there (``solve``), or, for an ask pinned to a node, the allocations to
stop on it (``solve_required``). It reads the state through a ``Snapshot`` and changes
nothing; ``gpupool.core.preemption`` strings these answers together for a gang and applies
them on the snapshot. The laws it follows are listed there.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from gpupool.core.fit import in_region, within
from gpupool.core.model import Allocation, App, Ask, Node
from gpupool.core.owed import Owed, judged
from gpupool.core.queues import INT32_MAX, Queue, clamp32
from gpupool.core.resources import (
    GPU_RESOURCES,
    Resources,
    format_quantity,
    gpu_milli,
    gpus_from_milli,
    over_max,
    shares_type,
    typed,
)
from gpupool.core.sharing import free_for, gpu_victims, gpus_held, partly_used
from gpupool.core.snapshot import Snapshot
from gpupool.core.within_guarantee import leaf_gap

MAX_NODES_EVALUATED = 64  # feasible nodes collected
MAX_NODES_SOLVED = 16  # of those, solved exactly

# What a plan costs, summed over its members' nodes: protected victims, originators stopped,
# workloads stopped, work lost (age x GPUs). Lower is better; compared between regions.
Cost = tuple[int, int, int, float]
FREE: Cost = (0, 0, 0, 0.0)


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

    def lost_gpus(self) -> float:
        """GPUs whose work counts as lost when it stops (a share its part, no GPU as one)."""
        return gpus_from_milli(sum(gpu_milli(a.resources) for a in self.allocs)) or 1


class Cannot(Exception):
    """Preemption cannot help; the message says why."""


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


def reduces(res: Resources, need: Resources) -> bool:
    return any(res.get(k, 0) > 0 for k, n in need.items() if n > 0)


def _merge(a: list[_Candidate], b: list[_Candidate]) -> Iterator[_Candidate]:
    """Both lists are in victim order; yield their union in that order."""
    return heapq.merge(a, b, key=_victim_order)


def used_up(q: Queue, need: Resources) -> str | None:
    """The first type ``need`` asks for that ``q`` guarantees and already uses more than, as text."""
    if not q.guaranteed:
        return None
    for t, g in q.guaranteed.items():
        if need.get(t, 0) > 0 and q.allocated.get(t, 0) - q.preempting.get(t, 0) > g:
            return f"{format_quantity(t, g)} {t}"
    return None


def satisfied(need: Resources) -> bool:
    return all(n <= 0 for n in need.values())


class VictimSearch:
    """One cycle's search for victims over a snapshot (read only), with its caches."""

    def __init__(self, snap: Snapshot, now: float) -> None:
        self.s = snap
        self.now = now
        self._cache: dict[tuple[object, ...], dict[int, _Leaf]] = {}
        self._leaf_hosts_cache: dict[tuple[int, int], tuple[dict[str, Node], dict[str, int]]] = {}
        self._hosts_cache: dict[tuple[object, ...], tuple[list[Node], list[int]]] = {}
        self._units: dict[int, _Candidate | None] = {}
        self._qpool: dict[tuple[str, str | None], list[_Candidate]] = {}
        # One allocation as a victim unit, by id(allocation): what a unit holds never changes
        # while the search lives, so it is built once per allocation (and per set of guards).
        self._singles: dict[int, tuple[Allocation, tuple[Queue, ...], _Candidate]] = {}
        # ``_on_node`` by (node, eligible leaves, types wanted), with the node's victims_version.
        self._locals: dict[tuple[str, int, tuple[str, ...]], tuple[int, list[_Candidate]]] = {}

    def solve(
        self, ask: Ask, leaf: Queue, owed: Owed, region: str | None = None
    ) -> tuple[Node, list[Allocation], Cost]:
        """The node where clearing room for ``ask`` costs least (only nodes of ``region`` or of
        none, if given) with victims that free no more than ``owed``, the allocations to stop
        there, and what that costs."""
        s = self.s
        fence = self._fence_root(leaf, ask.resources)
        eligible = self._eligible(ask, leaf, fence)
        if not eligible:
            shared = "" if leaf.guaranteed else " (counting the guarantees it shares with them)"
            raise Cannot(
                f"no queue under {fence.path} other than {leaf.path} is above its guarantee{shared} "
                "with work of no higher priority"
            )
        best: tuple[tuple[int, int, int, float, str], Node, list[Allocation]] | None = None
        gpus = gpu_milli(ask.resources)
        for types in s.type_options(ask):
            allowed = set(types)
            ranked: list[tuple[int, str, Node, list[_Candidate]]] = []
            # Nodes holding possible victims, the most free milli-GPU first (they need the least
            # cleared), by name among equals; stop once enough are feasible. Grouped by free
            # milli-GPU (the hosts come by name) rather than sorting a (free, name, node)
            # triple per host.
            by_free: dict[int, list[Node]] = {}
            for n, victim_gpus in zip(*self._hosts(leaf, fence, ask.priority, eligible), strict=True):
                if n.gpu_type in allowed and (region is None or in_region(n, region)):
                    f = n.gpu_free_total
                    if f < 0:
                        f = 0
                    if f + victim_gpus >= gpus:
                        group = by_free.get(f)
                        if group is None:
                            by_free[f] = [n]
                        else:
                            group.append(n)
            enough = False
            for f in sorted(by_free, reverse=True):
                for node in by_free[f]:
                    if node.gpu_type not in allowed or not fits_capacity(ask.resources, node.capacity):
                        continue
                    local = self._local(ask, node, eligible)
                    if not local:
                        continue
                    gap = self._gap(ask, node, local)
                    if gap is not None:
                        ranked.append((gap, node.name, node, local))
                        if len(ranked) >= MAX_NODES_EVALUATED:
                            enough = True
                            break
                if enough:
                    break
            # The ask may already fit a node and be held back only by a queue's max.
            fitting = s.index.best(gpus, types, within(region, lambda n: s.fits_node(ask, n)))
            if fitting is not None:
                ranked.append((0, fitting.name, fitting, self._local(ask, fitting, eligible)))
            # Solve the most promising nodes: least to clear, then the newest work to clear.
            ranked.sort(key=lambda r: (r[0], -max((c.start for c in r[3]), default=0.0), r[1]))
            for _, _, node, local in ranked[:MAX_NODES_SOLVED]:
                units = self._plan_on_node(ask, leaf, node, local, eligible, owed)
                if units is None:
                    continue
                # Fewest protected victims, fewest workloads stopped, least work lost (newest first).
                score = (*self._cost(units), node.name)
                chosen = [a for u in units for a in u.allocs]
                if best is None or score < best[0]:
                    best = (score, node, chosen)
            if best is not None:
                return best[1], best[2], best[0][:4]
        raise Cannot(
            "no node can be cleared for it without taking a queue below its guarantee, "
            f"stopping higher-priority work or freeing more than {leaf.path} is still owed"
        )

    def _cost(self, units: list[_Candidate]) -> tuple[int, int, int, float]:
        """Protected victims, originators, workloads stopped, work lost (age x GPUs)."""
        return (
            sum(1 for u in units if not u.preemptible),
            sum(1 for u in units if u.originator),
            len(units),
            sum((self.now - u.start) * u.lost_gpus() for u in units),
        )

    def _hosts(
        self, leaf: Queue, fence: Queue, priority: int, eligible: dict[int, _Leaf]
    ) -> tuple[list[Node], list[int]]:
        """Schedulable nodes holding possible victims, by name, and the GPUs those victims hold
        on each (two lists, not a list of pairs: fewer objects for the garbage collector)."""
        key = (leaf.path, fence.path, priority)
        cached = self._hosts_cache.get(key)
        if cached is None:
            gpus: dict[str, int] = {}
            nodes: dict[str, Node] = {}
            for info in eligible.values():
                leaf_nodes, leaf_held = self._leaf_hosts(info)
                for name, node in leaf_nodes.items():
                    nodes[name] = node
                    gpus[name] = gpus.get(name, 0) + leaf_held[name]
            names = sorted(nodes)  # by name: ``solve`` keeps that order among equally free nodes
            cached = ([nodes[name] for name in names], [gpus[name] for name in names])
            self._hosts_cache[key] = cached
        return cached

    def _leaf_hosts(self, info: _Leaf) -> tuple[dict[str, Node], dict[str, int]]:
        """Per node (by name), the GPUs of the leaf's allocations that an ask of this limit may
        preempt: the nodes and the GPUs as two maps (no pair per node for the collector)."""
        key = (id(info.queue), info.limit)
        cached = self._leaf_hosts_cache.get(key)
        if cached is None:
            nodes: dict[str, Node] = {}
            held: dict[str, int] = {}
            for app in self.s.apps_in(info.queue).values():
                for a in app.allocations.values():
                    if a.node.schedulable and not a.preempted and a.disruptible and a.priority <= info.limit:
                        name = a.node.name
                        if name not in nodes:
                            nodes[name] = a.node
                        held[name] = held.get(name, 0) + gpu_milli(a.resources)
            cached = (nodes, held)
            self._leaf_hosts_cache[key] = cached
        return cached

    def _local(self, ask: Ask, node: Node, eligible: dict[int, _Leaf]) -> list[_Candidate]:
        """Possible victims on ``node``, in victim order."""
        # The types the ask needs: a victim must hold some of one (``shares_type``).
        wanted = tuple(k for k, v in ask.resources.items() if v > 0)
        key = (node.name, id(eligible), wanted)
        known = self._locals.get(key)
        if known is None or known[0] != node.victims_version:
            known = (node.victims_version, self._on_node(node, eligible, wanted))
            self._locals[key] = known
        out = known[1]
        ask_app = ask.app
        if ask_app.allocations and any(c.allocs[0].app is ask_app for c in out):
            return [c for c in out if c.allocs[0].app is not ask_app]
        return out

    def _on_node(self, node: Node, eligible: dict[int, _Leaf], wanted: tuple[str, ...]) -> list[_Candidate]:
        """``_local`` for any ask (its own app's allocations not left out), kept by ``_local`` until
        the node's allocations change (``Node.victims_version``): the asks of one leaf look at
        the same nodes one after another. Read only."""
        out: list[_Candidate] = []
        seen_apps: set[int] = set()
        for a in node.allocations.values():
            info = eligible.get(id(a.queue))
            if (
                info is None
                or a.preempted
                or not a.disruptible
                or a.priority > info.limit
                or a.required_node is not None
            ):
                continue
            held = a.resources
            for k in wanted:
                if held.get(k, 0) > 0:
                    break
            else:
                continue
            if a.app.gang is not None and not a.elastic:
                if id(a.app) in seen_apps:
                    continue
                seen_apps.add(id(a.app))
                unit = self._gang_unit(a.app, info)
                if unit is not None:
                    out.append(unit)
            else:
                out.append(self._single(a, info.guards))
        if len(out) > 1:
            out.sort(key=_victim_order)
        return out

    def _single(self, a: Allocation, guards: tuple[Queue, ...]) -> _Candidate:
        known = self._singles.get(id(a))
        if known is not None and known[0] is a and known[1] is guards:
            return known[2]
        unit = _Candidate((a,), guards)
        self._singles[id(a)] = (a, guards, unit)
        return unit

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
            gap += short if k in GPU_RESOURCES else 0
        return gap

    def _plan_on_node(
        self,
        ask: Ask,
        leaf: Queue,
        node: Node,
        local: list[_Candidate],
        eligible: dict[int, _Leaf],
        owed: Owed,
    ) -> list[_Candidate] | None:
        counted = typed(ask.resources, node.gpu_type)
        if ask.within_guarantee and leaf_gap(leaf, counted) is not None:
            return None  # it may not run above its queue's guarantee on this node's GPU type
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
                if not leaf.guaranteed and used_up(owner, {t: v}) is not None:
                    return None  # no inherited guarantee left for this type
                beyond = owner.allocated.get(t, 0) + v - owner.guaranteed[t]
                if beyond > 0:
                    if owner is leaf:
                        return None  # the ask alone takes its own queue above its guarantee
                    shortfalls.append((owner, {t: beyond}))
        # On a node with a partly used GPU, the GPUs themselves may need victims (sharing.py).
        forced: list[_Candidate] = []
        milli = gpu_milli(ask.resources)
        if milli and partly_used(node):
            on_gpus = gpu_victims(
                milli, free_for(node, ask.id), local, lambda c: gpus_held(c.allocs, node), self._cost
            )
            if on_gpus is None:
                return None
            forced = on_gpus
        if not need_node and not shortfalls and not forced:
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
        tally = owed.tally(counted)  # what the leaf is still owed, in the types the ask counts here

        def within_owed(c: _Candidate, here: Resources) -> bool:
            return tally.fits(judged(c.allocs, c.counted, here, node.gpu_type), c.queue)

        def take(c: _Candidate, here: Resources) -> None:
            chosen.append(c)
            if tally.bound:
                tally.spend(judged(c.allocs, c.counted, here, node.gpu_type), c.queue)
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

        for c in forced:  # the GPUs' own victims come first, whatever else is needed
            ok = (
                self._live(c, ask)
                and eligible[id(c.queue)].over_for(counted)
                and self._budget_ok(c, taken)
                and within_owed(c, c.on(node))
            )
            if not ok:
                return None
            seen.add(id(c.allocs[0]))
            take(c, c.on(node))
        queues_done = all(satisfied(o) for _, o in remaining)
        if not (queues_done and satisfied(remaining_node)):
            for c in _merge(local, qpool):
                if id(c.allocs[0]) in seen or not self._live(c, ask):
                    continue
                if not eligible[id(c.queue)].over_for(counted):
                    continue
                seen.add(id(c.allocs[0]))
                here = c.on(node)
                if queues_done and not here:
                    continue
                useful = bool(here) and reduces(here, remaining_node)
                if not useful and not queues_done:
                    useful = any(reduces(c.counted, o) and c.queue.is_under(q) for q, o in remaining)
                # A victim that would free more than the leaf is owed is passed over (yunikorn-core
                # stops at it: ``break``), so a smaller one later in the order may still serve.
                if not useful or not self._budget_ok(c, taken) or not within_owed(c, here):
                    continue
                take(c, here)
                queues_done = all(satisfied(o) for _, o in remaining)
                if queues_done and satisfied(remaining_node):
                    break
            else:
                return None
        # Reprieve: drop every victim the others make unnecessary, most protected first (the
        # GPUs' own victims stay: sharing.py already kept only those the GPUs need).
        keep = list(chosen)
        for c in reversed(chosen):
            if any(c is f for f in forced):
                continue
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
            if (
                victim_leaf is leaf
                or victim_leaf.preemption_policy == "disabled"
                or not self.s.apps_in(victim_leaf)
            ):
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
            for app in self.s.apps_in(vq).values():
                if app is ask.app:
                    continue
                if app.gang is not None and app.allocations:
                    unit = self._gang_unit(app, info)
                    if (
                        unit is not None
                        and shares_type(unit.counted, ask.resources)
                        and any(reduces(unit.counted, o) for o in under)
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
                    if any(reduces(a.counted, o) for o in under):
                        out.append(self._single(a, info.guards))
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

    def solve_required(
        self, ask: Ask, leaf: Queue, region: str | None = None
    ) -> tuple[Node, list[Allocation]]:
        """An ask pinned to a node: victims on that node only, queue guarantees aside, the ask's
        own application included; never another required-node allocation (yunikorn-core
        required_node_preemptor.go filterAllocations)."""
        node = self.s.nodes.get(ask.required_node or "")
        if node is None or not node.schedulable:
            raise Cannot(f"required node {ask.required_node} is not schedulable")
        if region is not None and not in_region(node, region):
            raise Cannot(f"required node {node.name} is not in region {region}, where its gang runs")
        if ask.gpu_types and node.gpu_type not in ask.gpu_types:
            raise Cannot(
                f"required node {node.name} has GPU type {node.gpu_type}, not {'/'.join(ask.gpu_types)}"
            )
        # As YuniKorn's checkHeadRooms before required-node preemption: room on the node does
        # not help an ask its queue's max holds back.
        blocker = self.s.quota_blocker(leaf, typed(ask.resources, node.gpu_type))
        if blocker is not None:
            raise Cannot(f"{blocker.path} is at its max, and preemption on {node.name} does not change that")
        if ask.within_guarantee:
            gap = leaf_gap(leaf, typed(ask.resources, node.gpu_type))
            if gap is not None:
                raise Cannot(gap.message())
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
            if satisfied(need):
                break
            if not reduces(a.resources, need):
                continue
            chosen.append(a)
            for k in need:
                need[k] -= a.resources.get(k, 0)
        if not satisfied(need):
            raise Cannot(f"the allocations on {node.name} that it may preempt do not make enough room")
        return node, chosen


def fits_capacity(ask: Resources, capacity: Resources) -> bool:
    return all(capacity.get(k, 0) >= v for k, v in ask.items() if v > 0)
