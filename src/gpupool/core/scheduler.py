"""The scheduler of one partition: state, the scheduling cycle, and its bookkeeping.

``Scheduler`` owns the partition's state (queue tree, nodes, applications, asks, allocations)
and every index over it. The outside world changes that state only through its methods
(``add_node``, ``submit``, ``add_ask``, ``restore``, ``release`` ...) and asks for decisions
with ``schedule(now)``. Nothing here reads a clock, does I/O or draws random numbers: the same
state and the same ``now`` give the same decisions, in the same order.

One cycle, in numbered phases:

1. Gang timeouts: a waiting gang past its timeout falls back to one-by-one (``soft``) or fails
   (``hard``).
2. Reserved asks first: asks for which preemption made room are placed as soon as it is free.
3. Allocation: descend the queue tree in fair-share order to the neediest leaf, take its next
   application (``fifo`` or ``fair``, priority first) and place its next ask on the best node
   (gangs all at once, in one region unless they allow ``span_regions``), then descend
   again. A queue, application or ask that cannot place anything is skipped for the rest of
   the cycle, so each cycle costs about one pass over the pending asks plus a short descent
   per allocation.
4. Preemption: for asks that failed for want of quota or room, in the order they were tried,
   look for victims (``gpupool.core.preemption``; for a gang that must stay in one region,
   victims in one region). Victims are decisions; the room they leave is held for the ask,
   which phase 2 places once the victims are released.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import replace

from gpupool.core.admission import gang_over_max
from gpupool.core.capacity import REGION_LABEL
from gpupool.core.config import ChildTemplate, PartitionConfig, QueueConfig
from gpupool.core.decisions import Code, CycleResult, Decision, Fail, Place, Preempt, Reason, Reject
from gpupool.core.limits import Applied, LimitTracker, applicable
from gpupool.core.model import APP_TRANSITIONS, Allocation, App, AppState, Ask, GangSpec, Node, NodeSpec
from gpupool.core.nodes import NodeIndex, NodeScorer, make_scorer
from gpupool.core.placement import Placer, Request
from gpupool.core.preemption import (
    CANNOT_HELP,
    PreemptionPlan,
    Preemptor,
    cannot_help,
    in_region,
    regions_of,
    within,
)
from gpupool.core.queues import (
    RECOVERY_QUEUE,
    Queue,
    QueueSettings,
    build_tree,
    settings_from_config,
    settings_from_template,
)
from gpupool.core.resources import (
    Resources,
    add_into,
    fits,
    format_resources,
    gpu_count,
    ordered_key,
    sub_into,
    total,
    typed,
    within_max,
)

MAX_PREEMPTION_ATTEMPTS_PER_LEAF = 10
PREEMPTION_CHECK_INTERVAL = 15.0
# A gang that does not fit in the region its first choice gave is tried in at most this many
# other regions (those with the most schedulable nodes first).
MAX_REGION_RETRIES = 8

# Which failures preemption may cure.
_PREEMPTABLE = frozenset({Code.QUEUE_QUOTA, Code.NO_NODE, Code.GANG_WAITING})


class SchedulerError(ValueError):
    """A call that does not make sense for the current state (unknown id, duplicate id ...)."""


class Scheduler:
    def __init__(self, partition: PartitionConfig, *, scorer: NodeScorer | None = None) -> None:
        self.partition = partition
        self.queues: dict[str, Queue] = build_tree(partition.root, partition.limits)
        self.root = self.queues["root"]
        policy = partition.node_sort_policy
        self._policy = policy
        self.index = NodeIndex(scorer or make_scorer(policy.type, policy.resource_weights))
        self.preemption_enabled = partition.preemption_enabled
        self._observe = getattr(self.index.scorer, "observe", None)  # workload-aware policies
        self.placer = Placer(partition.placement_rules, self.queues.get)
        self.nodes: dict[str, Node] = {}
        self.capacity: Resources = {}
        # Schedulable nodes per region (the ``gpupool/region`` label); empty when no node has one,
        # and then the region rule for gangs costs nothing.
        self._regions: dict[str, int] = {}
        self.apps: dict[str, App] = {}
        self.asks: dict[str, Ask] = {}
        self.allocations: dict[str, Allocation] = {}
        self.elastic: dict[str, Allocation] = {}  # extra members of elastic workloads, by id
        self._elastic_asks: dict[str, Ask] = {}  # pending extra members, for phase 5
        self.limits = LimitTracker()
        self._app_limits: dict[str, tuple[Applied, ...]] = {}
        self._ask_order: dict[str, list[Ask]] = {}
        self._waiting_gangs: dict[str, App] = {}
        self._reserved: dict[str, Ask] = {}
        self._assigned: dict[str, Ask] = {}  # what-if placements not committed yet
        self._seq = 0
        self._cycle = 0
        self._nofit: dict[tuple[object, ...], Reason] = {}
        # Within the allocation phase usage only grows: a shape that failed in a leaf (for a
        # user) fails again. Keyed by (leaf, user if limited, the asks' shapes).
        self._shape_failed: dict[tuple[object, ...], Reason] = {}
        self._run_limits: dict[str, bool] = {}
        # Bumped whenever room may have appeared (a release, a node, a dropped hold, a new
        # config): leaves skipped as quiet are looked at again.
        self._epoch = 0
        self._quiet: dict[str, tuple[int, int, list[tuple[App, list[Ask]]]]] = {}

    # ------------------------------------------------------------------ configuration

    def update_config(self, partition: PartitionConfig) -> list[str]:
        """Take a new configuration of this partition without losing any state.

        Existing queues take their new settings, new static queues appear, and queues the new
        config no longer lists are kept (as dynamic queues) while they still hold applications,
        so nothing running or waiting is lost. Returns a line per change, for the audit log.
        """
        changes: list[str] = []
        fresh = _configured(partition)
        for path, (name, settings) in fresh.items():
            old = self.queues.get(path)
            if old is None:
                parent = self.queues[path.rpartition(".")[0]]
                q = Queue(name, parent, settings)
                parent.children[name] = q
                parent.is_leaf = False
                self.queues[path] = q
                changes.append(f"added queue {path}")
            else:
                old.apply(settings)
                old.dynamic = False
        for path, q in list(self.queues.items()):
            if path in fresh or q.dynamic:
                continue
            q.dynamic = True
            changes.append(f"queue {path} is no longer configured; kept while it holds applications")
        for q in self.root.walk():  # inherited properties follow the new parents, top down
            if q.path in fresh:
                q.apply(fresh[q.path][1])
        self.partition = partition
        self.preemption_enabled = partition.preemption_enabled
        self.placer = Placer(partition.placement_rules, self.queues.get)
        policy = partition.node_sort_policy
        if policy != self._policy:
            self._policy = policy
            self._reindex(make_scorer(policy.type, policy.resource_weights))
            changes.append(f"node sort policy {policy.type}")
        for app in self.apps.values():
            if app.queue is not None:
                self._app_limits[app.id] = applicable(app.queue, app.user, app.groups)
        self._run_limits.clear()
        self._epoch += 1
        return changes

    def _reindex(self, scorer: NodeScorer) -> None:
        self.index = NodeIndex(scorer)
        for node in self.nodes.values():
            if node.schedulable:
                self.index.add(node)
        self._observe = getattr(scorer, "observe", None)

    # ------------------------------------------------------------------ nodes

    def add_node(self, spec: NodeSpec) -> Node:
        if spec.name in self.nodes:
            raise SchedulerError(f"node {spec.name!r} is already registered")
        node = Node(spec.name, spec.capacity, spec.labels, spec.schedulable)
        self.nodes[node.name] = node
        self._epoch += 1
        if node.schedulable:
            add_into(self.capacity, node.capacity)
            self.index.add(node)
            self._count_region(node, 1)
        return node

    def set_schedulable(self, name: str, schedulable: bool) -> None:
        node = self._node(name)
        if node.schedulable == schedulable:
            return
        node.schedulable = schedulable
        self._epoch += 1
        if schedulable:
            add_into(self.capacity, node.capacity)
            self.index.add(node)
        else:
            sub_into(self.capacity, node.capacity)
            self.index.remove(node)
        self._count_region(node, 1 if schedulable else -1)

    def _count_region(self, node: Node, delta: int) -> None:
        region = node.labels.get(REGION_LABEL)
        if region is None:
            return
        n = self._regions.get(region, 0) + delta
        if n > 0:
            self._regions[region] = n
        else:
            self._regions.pop(region, None)

    def remove_node(self, name: str) -> list[Allocation]:
        """Forget a node (it died or left); returns the allocations it held, now released."""
        node = self._node(name)
        lost = list(node.allocations.values())
        for alloc in lost:
            self.release(alloc.id)
        for ask_id in list(node.held):
            self._drop_reservation(self.asks[ask_id])
        self.set_schedulable(name, False)
        del self.nodes[name]
        return lost

    def _node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise SchedulerError(f"unknown node {name!r}") from None

    # ------------------------------------------------------------------ applications

    def submit(
        self,
        app_id: str,
        *,
        queue: str | None = None,
        user: str = "anonymous",
        groups: Iterable[str] = (),
        tags: dict[str, str] | None = None,
        gang: GangSpec | None = None,
        forced: bool = False,
    ) -> Reject | None:
        """Accept an application into a queue by the placement rules and ACLs.

        ``forced`` is for recovery: an application that is already running goes to its queue
        (or the recovery queue) whatever the rules and ACLs say. Returns a ``Reject`` decision
        if the application can never run here.
        """
        if app_id in self.apps:
            raise SchedulerError(f"application {app_id!r} is already submitted")
        self._seq += 1
        app = App(app_id, user=user, groups=tuple(groups), tags=tags or {}, gang=gang, seq=self._seq)
        self.apps[app_id] = app
        if forced:
            leaf = self.queues.get((queue or "").lower())
            if leaf is None or not leaf.is_leaf:
                leaf = self._recovery_queue()
            self._join(app, leaf)
            return None
        path, create, why = self.placer.place(
            Request(user=user, groups=app.groups, queue=queue, tags=app.tags)
        )
        if path is None:
            return self._reject(app, Reason(Code.REJECTED, why, "check the queue name and the submit ACLs"))
        leaf = self._create_queues(path) if create else self.queues[path]
        self._join(app, leaf)
        return None

    def _join(self, app: App, leaf: Queue) -> None:
        app.queue = leaf
        leaf.apps[app.id] = app
        self._app_limits[app.id] = applicable(leaf, app.user, app.groups)

    def _reject(self, app: App, reason: Reason) -> Reject:
        for ask in list(app.asks.values()):
            self.remove_ask(ask.id)
        app.state = AppState.REJECTED
        app.reason = reason
        if app.queue is not None:
            app.queue.apps.pop(app.id, None)
        self._waiting_gangs.pop(app.id, None)
        return Reject(app.id, reason)

    def _recovery_queue(self) -> Queue:
        path = f"root.{RECOVERY_QUEUE}"
        q = self.queues.get(path)
        if q is None:
            q = Queue(RECOVERY_QUEUE, self.root, QueueSettings(), dynamic=True)
            self.root.children[RECOVERY_QUEUE] = q
            self.queues[path] = q
        return q

    def _create_queues(self, path: str) -> Queue:
        parts = path.split(".")
        parent = self.root
        for i in range(1, len(parts)):
            sub_path = ".".join(parts[: i + 1])
            existing = self.queues.get(sub_path)
            if existing is None:
                template = _nearest_template(parent)
                leaf = i == len(parts) - 1
                q = Queue(
                    parts[i], parent, settings_from_template(template, is_parent=not leaf), dynamic=True
                )
                parent.children[parts[i]] = q
                self.queues[sub_path] = q
                existing = q
            parent = existing
        return parent

    def remove_app(self, app_id: str) -> None:
        """Forget an application that has nothing left (the driver released its allocations)."""
        app = self._app(app_id)
        for ask in list(app.asks.values()):
            self.remove_ask(ask.id)
        if app.allocations:
            raise SchedulerError(f"application {app_id!r} still holds allocations; release them first")
        if app.queue is not None:
            app.queue.apps.pop(app_id, None)
        self._set_running(app, False)
        self._waiting_gangs.pop(app_id, None)
        self._app_limits.pop(app_id, None)
        del self.apps[app_id]

    def _app(self, app_id: str) -> App:
        try:
            return self.apps[app_id]
        except KeyError:
            raise SchedulerError(f"unknown application {app_id!r}") from None

    # ------------------------------------------------------------------ asks

    def add_ask(
        self,
        app_id: str,
        ask_id: str,
        resources: Resources,
        *,
        created: float,
        priority: int = 0,
        gpu_types: Iterable[str] = (),
        preempt_others: bool = True,
        required_node: str | None = None,
        preemptible: bool = True,
        originator: bool = False,
        disruptible: bool = True,
        alternatives: Iterable[tuple[Resources, Iterable[str]]] = (),
        elastic: bool = False,
        check_gang_max: bool = True,
    ) -> Reject | None:
        """Add an ask. ``alternatives`` are further (resources, GPU types) shapes to fall back
        through, in order, when the first (``resources``, ``gpu_types``) does not fit.

        ``check_gang_max=False`` while adding the members of a gang but the last: the gang's
        total is checked against its queues' max once, on the last (linear in its members)."""
        app = self._app(app_id)
        if ask_id in self.asks or ask_id in self.allocations:
            raise SchedulerError(f"ask {ask_id!r} already exists")
        if app.state in (AppState.REJECTED, AppState.FAILED):
            return None
        assert app.queue is not None
        self._seq += 1
        ask = Ask(
            ask_id,
            app,
            resources,
            created=created,
            seq=self._seq,
            priority=priority,
            gpu_types=tuple(gpu_types),
            preempt_others=preempt_others,
            required_node=required_node,
            preemptible=preemptible,
            originator=originator,
            disruptible=disruptible,
            alternatives=tuple((dict(r), tuple(t)) for r, t in alternatives),
            elastic=elastic,
        )
        ask.reason = Reason(Code.NOT_TRIED, "submitted; not considered by a scheduling cycle yet")
        app.asks[ask_id] = ask
        self.asks[ask_id] = ask
        if elastic:
            self._elastic_asks[ask_id] = ask
        app.top_priority = None
        if self._observe is not None:
            self._observe(ask.resources)
        app.submitted = min(app.submitted, created)
        self._ask_order.pop(app_id, None)
        app.queue.add_pending(ask.resources, ask.priority)
        if app.state == AppState.COMPLETED:
            self._transition(app, AppState.WAITING)
        if app.gang is not None and not app.gang_released and not elastic:
            too_big = self._gang_above_max(app) if check_gang_max else None
            if too_big is not None:
                return self._reject(app, too_big)
            if not app.allocations:
                self._waiting_gangs[app.id] = app
        return None

    def remove_ask(self, ask_id: str) -> None:
        """Withdraw a pending ask (cancelled, or its workload left)."""
        ask = self.asks.pop(ask_id, None)
        if ask is None:
            raise SchedulerError(f"unknown pending ask {ask_id!r}")
        self._elastic_asks.pop(ask_id, None)
        self._epoch += 1  # a withdrawn ask may unblock others (maxapplications, gang order)
        self._drop_reservation(ask)
        app = ask.app
        del app.asks[ask_id]
        app.top_priority = None
        self._ask_order.pop(app.id, None)
        assert app.queue is not None
        app.queue.remove_pending(ask.resources, ask.priority)
        self._maybe_complete(app)

    def _gang_above_max(self, app: App) -> Reason | None:
        assert app.queue is not None
        need = total(
            [a.resources for a in app.asks.values() if not a.elastic]
            + [a.resources for a in app.allocations.values() if not a.elastic]
        )
        return gang_over_max(app.queue, need)

    # ------------------------------------------------------------------ allocations

    def restore(
        self,
        alloc_id: str,
        app_id: str,
        node: str,
        resources: Resources,
        *,
        start: float,
        priority: int = 0,
        preemptible: bool = True,
        originator: bool = False,
        disruptible: bool = True,
        elastic: bool = False,
    ) -> Allocation:
        """Record an allocation that already runs (recovery): no quota or fit checks."""
        app = self._app(app_id)
        if alloc_id in self.allocations or alloc_id in self.asks:
            raise SchedulerError(f"allocation {alloc_id!r} already exists")
        n = self._node(node)
        assert app.queue is not None
        self._seq += 1
        alloc = Allocation(
            alloc_id,
            app,
            app.queue,
            n,
            resources,
            typed(resources, n.gpu_type),
            start=start,
            seq=self._seq,
            priority=priority,
            preemptible=preemptible,
            originator=originator,
            disruptible=disruptible,
            elastic=elastic,
        )
        self._attach(alloc)
        app.submitted = min(app.submitted, start)
        self._waiting_gangs.pop(app.id, None)
        self._set_running(app, True)
        return alloc

    def mark_preempting(self, alloc_id: str) -> None:
        """Recovery: this allocation was already chosen as a victim and is stopping."""
        alloc = self.allocations.get(alloc_id)
        if alloc is None:
            raise SchedulerError(f"unknown allocation {alloc_id!r}")
        if not alloc.preempted:
            alloc.preempted = True
            alloc.queue.add_preempting(alloc.counted)

    def release(self, alloc_id: str) -> Allocation:
        """The allocation's workload stopped (finished, preempted, lost): free its resources."""
        alloc = self.allocations.get(alloc_id)
        if alloc is None:
            raise SchedulerError(f"unknown allocation {alloc_id!r}")
        self._epoch += 1
        self._detach(alloc)
        if alloc.preempted:
            alloc.queue.remove_preempting(alloc.counted)
            alloc.preempted = False
        self._maybe_complete(alloc.app)
        return alloc

    def _attach(self, alloc: Allocation) -> None:
        self.allocations[alloc.id] = alloc
        if alloc.elastic:
            self.elastic[alloc.id] = alloc
        alloc.app.allocations[alloc.id] = alloc
        node = alloc.node
        node.allocations[alloc.id] = alloc
        node.take(alloc.resources)
        self.index.update(node)
        alloc.queue.add_allocated(alloc.counted)
        self.limits.add(self._app_limits.get(alloc.app.id, ()), alloc.counted)

    def _detach(self, alloc: Allocation) -> None:
        del self.allocations[alloc.id]
        self.elastic.pop(alloc.id, None)
        del alloc.app.allocations[alloc.id]
        node = alloc.node
        del node.allocations[alloc.id]
        node.give(alloc.resources)
        self.index.update(node)
        alloc.queue.remove_allocated(alloc.counted)
        self.limits.remove(self._app_limits.get(alloc.app.id, ()), alloc.counted)

    def _set_running(self, app: App, running: bool) -> None:
        if running and app.state != AppState.RUNNING:
            self._transition(app, AppState.RUNNING)
        if app.running == running or app.queue is None:
            return
        app.running = running
        delta = 1 if running else -1
        app.queue.set_running(delta)
        self.limits.set_running(self._app_limits.get(app.id, ()), delta)

    def _maybe_complete(self, app: App) -> None:
        if app.asks or app.allocations:
            return
        self._waiting_gangs.pop(app.id, None)
        if app.state in (AppState.RUNNING, AppState.WAITING):
            self._set_running(app, False)
            self._transition(app, AppState.COMPLETED)

    def _transition(self, app: App, to: AppState) -> None:
        if to == app.state:
            return
        if to not in APP_TRANSITIONS[app.state] and not (
            app.state == AppState.COMPLETED and to == AppState.WAITING
        ):
            raise SchedulerError(f"application {app.id!r} cannot go from {app.state.value} to {to.value}")
        app.state = to

    # ------------------------------------------------------------------ the cycle

    def schedule(self, now: float) -> CycleResult:
        """Run one scheduling cycle at time ``now`` (seconds) and return its decisions."""
        self._cycle += 1
        self._nofit = {}
        result = CycleResult(now)
        tried: dict[str, Ask] = {}
        self._phase_gang_timeouts(now, result)  # 1
        self._phase_reserved(now, result, tried)  # 2
        failed: list[tuple[App, list[Ask]]] = []
        self._phase_allocate(now, result, tried, failed)  # 3
        self._phase_preempt(now, result, failed)  # 4
        self._phase_grow(now, result, tried)  # 5
        for ask in tried.values():
            if ask.id in self.asks and ask.reason is not None:
                result.pending[ask.id] = ask.reason
        return result

    # 1. gang timeouts --------------------------------------------------------------------

    def _phase_gang_timeouts(self, now: float, result: CycleResult) -> None:
        for app in list(self._waiting_gangs.values()):
            assert app.gang is not None
            if not app.asks or app.allocations:
                self._waiting_gangs.pop(app.id, None)
                continue
            required = app.required_asks()
            if not required:
                continue
            # From the earliest pending ask: its submission, or its requeue after a preemption.
            deadline = min(a.created for a in required) + app.gang.timeout
            if now < deadline:
                continue
            self._waiting_gangs.pop(app.id, None)
            if app.gang.style == "hard":
                reason = Reason(
                    Code.FAILED,
                    f"hard gang could not be placed whole within its timeout of {app.gang.timeout:g}s",
                    "ask for fewer or smaller members, or use a soft gang",
                )
                for ask in list(app.asks.values()):
                    self.remove_ask(ask.id)
                app.reason = reason
                app.state = AppState.FAILED
                self._set_running(app, False)
                result.decisions.append(Fail(app.id, reason))
            else:
                app.gang_released = True
                self._ask_order.pop(app.id, None)
                if app.queue is not None:
                    app.queue.version += 1

    # 2. reserved asks --------------------------------------------------------------------

    def _phase_reserved(self, now: float, result: CycleResult, tried: dict[str, Ask]) -> None:
        by_app: dict[str, list[Ask]] = {}
        for ask in self._reserved.values():
            by_app.setdefault(ask.app.id, []).append(ask)
        for app_id in sorted(by_app, key=lambda a: self.apps[a].seq):
            asks = sorted(by_app[app_id], key=Ask.sort_key)
            app = self.apps[app_id]
            leaf = app.queue
            assert leaf is not None
            for ask in asks:
                tried[ask.id] = ask
            placements = self._try_place_all(app, asks, leaf, prefer_reserved=True)
            if placements is not None:
                for ask in asks:
                    self._drop_reservation(ask)
                self._commit(placements, result, "placed on the room its preemption made")
                continue
            stopping = [v for ask in asks for v in ask.victims if v in self.allocations]
            if stopping:
                for ask in asks:
                    ask.reason = Reason(
                        Code.RESERVED,
                        f"preemption made room on {ask.reserved_node}; waiting for "
                        f"{len(stopping)} preempted allocation(s) to stop",
                    )
                continue
            # The victims are gone and it still does not fit: let it compete (and preempt) again.
            for ask in asks:
                self._drop_reservation(ask)

    def _drop_reservation(self, ask: Ask) -> None:
        if ask.reserved_node is not None:
            self._epoch += 1
            node = self.nodes.get(ask.reserved_node)
            if node is not None:
                node.unhold(ask.id)
                self.index.update(node)
        ask.reserved_node = None
        ask.victims = ()
        self._reserved.pop(ask.id, None)

    # 3. allocation ----------------------------------------------------------------------

    def _phase_allocate(
        self, now: float, result: CycleResult, tried: dict[str, Ask], failed: list[tuple[App, list[Ask]]]
    ) -> None:
        exhausted: set[str] = set()
        heaps: dict[str, list[tuple[tuple[object, ...], int, App]]] = {}
        self._shape_failed = {}
        # A leaf that placed nothing last time, with nothing freed and nothing new since, would
        # place nothing again: skip it (its asks keep their reasons) but let its failures try
        # preemption, which time alone can make possible.
        for path, (epoch, version, units) in list(self._quiet.items()):
            leaf = self.queues.get(path)
            if leaf is None or epoch != self._epoch or version != leaf.version:
                del self._quiet[path]
                continue
            exhausted.add(path)
            failed.extend(units)
        placed_in: set[str] = set()
        while True:
            leaf = self._next_leaf(self.root, exhausted)
            if leaf is None:
                return
            before = len(failed)
            if self._allocate_leaf(leaf, heaps, now, result, tried, failed):
                placed_in.add(leaf.path)
            else:
                exhausted.add(leaf.path)
                if leaf.path not in placed_in:
                    self._quiet[leaf.path] = (self._epoch, leaf.version, failed[before:])

    def _next_leaf(self, q: Queue, exhausted: set[str]) -> Queue | None:
        if q.pending_asks <= 0 or q.path in exhausted:
            return None
        if q.is_leaf:
            return q
        candidates = [c for c in q.children.values() if c.pending_asks > 0 and c.path not in exhausted]
        if len(candidates) > 1:
            capacity = self.capacity
            if q.sort_priority:
                candidates.sort(
                    key=lambda c: (-c.priority(), c.fair_share(capacity), -c.pending_share(capacity), c.name)
                )
            else:
                candidates.sort(
                    key=lambda c: (c.fair_share(capacity), -c.priority(), -c.pending_share(capacity), c.name)
                )
        for child in candidates:
            leaf = self._next_leaf(child, exhausted)
            if leaf is not None:
                return leaf
        exhausted.add(q.path)
        return None

    def _app_key(self, leaf: Queue, app: App) -> tuple[object, ...]:
        prio = -app.max_priority()
        if leaf.sort_policy == "fair":
            shares = self._app_shares(leaf, app)
            if leaf.sort_priority:
                return (prio, shares, app.submission_time())
            return (shares, prio, app.submission_time())
        if leaf.sort_priority:
            return (prio, app.submission_time())
        return (app.submission_time(), prio)

    def _app_shares(self, leaf: Queue, app: App) -> tuple[float, ...]:
        """DRF share vector of the app over its queue's guarantee, largest share first."""
        used = total(a.counted for a in app.allocations.values())
        guaranteed = leaf.guaranteed or {}
        shares = []
        for t, v in used.items():
            if v <= 0:
                continue
            g = guaranteed.get(t)
            shares.append(v / g if g else float(v))
        return tuple(sorted(shares, reverse=True))

    def _allocate_leaf(
        self,
        leaf: Queue,
        heaps: dict[str, list[tuple[tuple[object, ...], int, App]]],
        now: float,
        result: CycleResult,
        tried: dict[str, Ask],
        failed: list[tuple[App, list[Ask]]],
    ) -> bool:
        heap = heaps.get(leaf.path)
        if heap is None:
            heap = [(self._app_key(leaf, app), app.seq, app) for app in leaf.apps.values() if app.asks]
            heapq.heapify(heap)
            heaps[leaf.path] = heap
        shape_failed = self._shape_failed
        while heap:
            app = heap[0][2]
            if len(app.asks) == 1 and not app.is_gang() and (app.running or not self._run_limited(leaf)):
                # Fast path: a one-ask app whose shape already failed in this leaf this cycle.
                ask = next(iter(app.asks.values()))
                known = shape_failed.get(
                    (leaf.path, app.user if self._app_limits.get(app.id) else "", ask.shape)
                )
                if ask.elastic:
                    heapq.heappop(heap)  # extra members grow in phase 5, into what is left
                    continue
                if known is not None and ask.reserved_node is None:
                    ask.reason = known
                    ask.failed_cycle = self._cycle
                    tried[ask.id] = ask
                    if known.code in _PREEMPTABLE:
                        failed.append((app, [ask]))
                    heapq.heappop(heap)
                    continue
            if self._allocate_app(app, leaf, now, result, tried, failed):
                if app.asks:
                    heapq.heapreplace(heap, (self._app_key(leaf, app), app.seq, app))
                else:
                    heapq.heappop(heap)
                return True
            heapq.heappop(heap)
        return False

    def _ordered_asks(self, app: App) -> list[Ask]:
        order = self._ask_order.get(app.id)
        if order is None:
            order = sorted(app.asks.values(), key=Ask.sort_key)
            self._ask_order[app.id] = order
        return order

    def _allocate_app(
        self,
        app: App,
        leaf: Queue,
        now: float,
        result: CycleResult,
        tried: dict[str, Ask],
        failed: list[tuple[App, list[Ask]]],
    ) -> bool:
        if not app.asks:
            return False
        if not app.running:
            blocked = self._run_blocker(app, leaf)
            if blocked is not None:
                for ask in app.asks.values():
                    ask.reason = blocked
                    tried[ask.id] = ask
                return False
        who = app.user if self._app_limits.get(app.id) else ""
        if app.is_gang():
            asks = [
                a
                for a in self._ordered_asks(app)
                if a.id in app.asks and a.reserved_node is None and not a.elastic
            ]
            if not asks or any(a.failed_cycle == self._cycle for a in asks):
                return False
            for a in asks:
                tried[a.id] = a
            # Gangs bound to one region fail differently from gangs that may span regions.
            rule = self._region_rule(app) if self._regions else None
            key = (leaf.path, who, tuple(_shape(a) for a in asks), rule)
            known = self._shape_failed.get(key)
            if known is None:
                placements = self._try_place_all(app, asks, leaf)
                if placements is not None:
                    self._commit(placements, result, f"gang of {len(asks)} placed whole")
                    return True
                self._shape_failed[key] = asks[0].reason or Reason(Code.GANG_WAITING, "gang waits")
            for a in asks:
                a.failed_cycle = self._cycle
                if known is not None:
                    a.reason = known
            if asks[0].reason is not None and asks[0].reason.code in _PREEMPTABLE:
                failed.append((app, asks))
            return False
        for ask in self._ordered_asks(app):
            if ask.id not in app.asks or ask.failed_cycle == self._cycle or ask.reserved_node is not None:
                continue
            if ask.elastic:
                continue  # extra members grow in phase 5, into what is left
            tried[ask.id] = ask
            one: tuple[object, ...] = (leaf.path, who, _shape(ask))
            if app.gang is not None and self._regions:
                rule = self._region_rule(app)
                if rule:  # a member that must join its gang's region: not the same failure
                    one = (*one, rule)
            known = self._shape_failed.get(one)
            if known is None:
                placements = self._try_place_all(app, [ask], leaf)
                if placements is not None:
                    self._commit(placements, result, "placed")
                    return True
                if ask.reason is not None:
                    self._shape_failed[one] = ask.reason
            else:
                ask.reason = known
            ask.failed_cycle = self._cycle
            if ask.reason is not None and ask.reason.code in _PREEMPTABLE:
                failed.append((app, [ask]))
        return False

    def _run_limited(self, leaf: Queue) -> bool:
        """Whether anything on the leaf's path limits running applications (cached)."""
        known = self._run_limits.get(leaf.path)
        if known is None:
            known = any(
                q.max_applications is not None or any(lim.max_applications is not None for lim in q.limits)
                for q in leaf.ancestors()
            )
            self._run_limits[leaf.path] = known
        return known

    def _run_blocker(self, app: App, leaf: Queue) -> Reason | None:
        for q in leaf.ancestors():
            if q.max_applications is not None and q.running_apps >= q.max_applications:
                return Reason(
                    Code.MAX_APPS,
                    f"{q.path} already runs {q.running_apps} application(s), its maxapplications",
                    "wait for one to finish, or raise maxapplications",
                )
        blocked = self.limits.blocking_run(self._app_limits.get(app.id, ()))
        if blocked is not None:
            return Reason(Code.MAX_APPS, blocked, "wait for one of your applications to finish")
        return None

    # placement of one or more asks (a gang) -----------------------------------------------

    def _type_options(self, ask: Ask, gpu_types: tuple[str, ...] | None = None) -> list[list[str | None]]:
        """Node GPU types to try, in order of preference; each entry is one round."""
        types = ask.gpu_types if gpu_types is None else gpu_types
        if types:
            return [[t] for t in types]
        return [list(self.index.types())]

    def _quota_blocker(self, leaf: Queue, counted: Resources) -> Queue | None:
        for q in leaf.ancestors():
            if q.max is not None and not within_max(q.allocated, counted, q.max):
                return q
        return None

    def _fits_node(self, ask: Ask, node: Node, res: Resources | None = None) -> bool:
        need = ask.resources if res is None else res
        return fits(need, node.avail_for(ask.id) if node.held else node.avail)

    def _find_place(
        self,
        ask: Ask,
        leaf: Queue,
        prefer_reserved: bool = False,
        shape: int = 0,
        region: str | None = None,
    ) -> tuple[Node | None, Reason]:
        """Best node for shape ``shape`` of ``ask`` within quota and limits, or why there is none.

        With ``region``, only nodes of that region or of none (no region label) are used.
        """
        app = ask.app
        res, gpu_types = ask.shapes[shape]
        blocked = self.limits.blocking(self._app_limits.get(app.id, ()), res)
        if blocked is not None:
            return None, Reason(Code.USER_LIMIT, f"{blocked} leaves no room for {format_resources(res)}")
        gpus = gpu_count(res)
        if prefer_reserved and ask.reserved_node is not None:
            node = self.nodes.get(ask.reserved_node)
            type_ok = node is not None and (not gpu_types or node.gpu_type in gpu_types)
            if region is not None and node is not None and not in_region(node, region):
                type_ok = False
            if node is not None and type_ok and node.schedulable and self._fits_node(ask, node, res):
                counted = typed(res, node.gpu_type)
                if self._quota_blocker(leaf, counted) is None:
                    return node, Reason(Code.PLACED, "placed")
        quota_block: tuple[Queue, Resources] | None = None
        no_node_types: list[str | None] = []
        for types in self._type_options(ask, gpu_types):
            allowed: list[str | None] = []
            for t in types:
                counted = typed(res, t)
                q = self._quota_blocker(leaf, counted)
                if q is None:
                    allowed.append(t)
                elif quota_block is None:
                    quota_block = (q, counted)
            if not allowed:
                continue
            if ask.required_node is not None:
                node = self.nodes.get(ask.required_node)
                ok = (
                    node is not None
                    and node.schedulable
                    and node.gpu_type in allowed
                    and (region is None or in_region(node, region))
                    and self._fits_node(ask, node, res)
                )
                if ok:
                    return node, Reason(Code.PLACED, "placed")
                no_node_types.extend(allowed)
                continue
            key: tuple[object, ...] = (ordered_key(res), tuple(allowed))
            if key in self._nofit:  # no fit anywhere: no fit in one region either
                no_node_types.extend(allowed)
                continue
            if region is not None:
                key = (*key, region)
                if key in self._nofit:
                    no_node_types.extend(allowed)
                    continue
            node = self.index.best(gpus, allowed, within(region, lambda n: self._fits_node(ask, n, res)), res)
            if node is not None:
                return node, Reason(Code.PLACED, "placed")
            if not self._assigned:
                # Only a failure on the committed state is memoised: one that follows what-if
                # placements of other gang members may succeed once they are undone.
                self._nofit[key] = Reason(Code.NO_NODE, "")
            no_node_types.extend(allowed)
        if not no_node_types and quota_block is not None:
            q, counted = quota_block
            return None, Reason(
                Code.QUEUE_QUOTA,
                f"queue {q.path} is at its max: {format_resources(q.max or {})} with "
                f"{format_resources(_on(q.allocated, counted))} in use; the ask needs "
                f"{format_resources(counted)}",
                "wait for running work in that queue to finish, or ask an admin to raise its max",
            )
        return None, self._no_node_reason(ask, no_node_types, res, gpu_types)

    def _no_node_reason(
        self, ask: Ask, types: list[str | None], res: Resources, gpu_types: tuple[str, ...]
    ) -> Reason:
        gpus = gpu_count(res)
        if ask.required_node is not None:
            return Reason(
                Code.NO_NODE,
                f"required node {ask.required_node} has no room for {format_resources(res)}",
            )
        named = [t for t in types if t]
        type_text = f" of type {'/'.join(named)}" if gpu_types and named else ""
        if gpus:
            most = self.index.max_free_gpus(types) if types else 0
            return Reason(
                Code.NO_NODE,
                f"no node has {gpus} free GPU(s){type_text} with room for {format_resources(res)} "
                f"(the most free on one node is {most})",
                "wait for GPUs to free up, allow more GPU types, or ask for fewer GPUs per member",
            )
        return Reason(
            Code.NO_NODE,
            f"no schedulable node has room for {format_resources(res)}",
            "wait for running work to finish, or ask for less",
        )

    def _try_place_all(
        self, app: App, asks: list[Ask], leaf: Queue, prefer_reserved: bool = False
    ) -> list[Allocation] | None:
        """Place every ask or none (what-if with undo); sets each ask's reason on failure.

        Asks with alternative shapes (standard sizes) fall back through them in order; the
        members of a gang fall back together, so a gang never mixes shapes. The members of a
        gang that does not allow ``span_regions`` share one region (``_try_place_in_region``).
        """
        rounds = max(len(a.shapes) for a in asks)
        if self._regions:
            rule = self._region_rule(app)
            if rule is not None and (rule or len(asks) > 1):
                return self._try_placein_region(app, asks, leaf, prefer_reserved, rounds, rule)
        first: tuple[Ask, Reason] | None = None
        for i in range(rounds):
            placed, failed, _ = self._place_round(asks, leaf, prefer_reserved, i)
            if placed is not None:
                return placed
            if first is None:
                first = failed
        assert first is not None
        self._set_failure(asks, first, rounds)
        return None

    def _place_round(
        self,
        asks: list[Ask],
        leaf: Queue,
        prefer_reserved: bool,
        i: int,
        region: str | None = None,
        bind: bool = False,
    ) -> tuple[list[Allocation] | None, tuple[Ask, Reason] | None, str | None]:
        """Place every ask in its shape ``i`` (what-if), or undo and say which failed and why.

        Only nodes of ``region`` (or of none) are used; with ``bind``, the region of the first
        labelled node a member takes binds the members after it. Returns the placements, the
        failure and the region in force at the end.
        """
        placed: list[Allocation] = []
        for ask in asks:
            shape = min(i, len(ask.shapes) - 1)
            node, reason = self._find_place(ask, leaf, prefer_reserved, shape, region)
            if node is None:
                for alloc in reversed(placed):
                    self._unassign(alloc)
                return None, (ask, reason), region
            placed.append(self._assign(ask, node, ask.shapes[shape][0]))
            if bind and region is None:
                region = node.labels.get(REGION_LABEL)
        return placed, None, region

    def _set_failure(self, asks: list[Ask], first: tuple[Ask, Reason], rounds: int) -> None:
        ask, reason = first
        if rounds > 1:
            reason = Reason(
                reason.code,
                f"{reason.message}; its {rounds - 1} other shape(s) did not fit either",
                reason.hint,
            )
        if len(asks) > 1:
            reason = Reason(
                Code.GANG_WAITING if reason.code in (Code.NO_NODE, Code.QUEUE_QUOTA) else reason.code,
                f"gang of {len(asks)} waits: member {ask.id} cannot be placed ({reason.message}); "
                "nothing is held while it waits",
                reason.hint,
            )
        for a in asks:
            a.reason = reason

    def _region_rule(self, app: App) -> tuple[str, ...] | None:
        """Whether ``app``'s members must share a region: None if not (no gang, ``span_regions``,
        or its running members already spread over regions), else the region its running
        members use (``()`` while none runs on a node with a region)."""
        gang = app.gang
        if gang is None or gang.span_regions:
            return None
        homes: set[str] = set()
        for alloc in app.allocations.values():
            region = alloc.node.labels.get(REGION_LABEL)
            if region is not None:
                homes.add(region)
        if len(homes) > 1:
            return None
        return tuple(homes)

    def _other_regions(self, tried: str | None) -> list[str]:
        """Regions to try a gang in after ``tried``: those with the most schedulable nodes first,
        at most ``MAX_REGION_RETRIES`` (placement and preemption alike)."""
        others = sorted(self._regions, key=lambda r: (-self._regions[r], r))
        return [r for r in others if r != tried][:MAX_REGION_RETRIES]

    def _try_placein_region(
        self,
        app: App,
        asks: list[Ask],
        leaf: Queue,
        prefer_reserved: bool,
        rounds: int,
        home: tuple[str, ...],
    ) -> list[Allocation] | None:
        """``_try_place_all`` for members that must share one region.

        Members already running fix the region. Otherwise the first member's best node picks
        it (nodes without a region go with any); if the gang does not fit there, it is tried
        whole in each other region, those with the most schedulable nodes first, at most
        ``MAX_REGION_RETRIES`` of them. Each shape is tried in every region before the next.
        """
        first: tuple[Ask, Reason] | None = None  # the first failure the region rule did not cause
        restricted = False  # some shape failed for want of room in one region, maybe
        for i in range(rounds):
            if home:
                placed, failed, bound = self._place_round(asks, leaf, prefer_reserved, i, home[0])
            else:
                placed, failed, bound = self._place_round(asks, leaf, prefer_reserved, i, None, True)
            if placed is not None:
                return placed
            assert failed is not None
            # Not for want of room (quota, limits), or the pass never got bound to a region and
            # nothing on a node without one could have been placed otherwise: as without the rule.
            unbound = bound is None and (
                failed[0] is asks[0] or len(self.index) == sum(self._regions.values())
            )
            if failed[1].code != Code.NO_NODE or unbound:
                if first is None:
                    first = failed
                continue
            restricted = True
            if home:
                continue
            for region in self._other_regions(bound):
                placed, _, _ = self._place_round(asks, leaf, prefer_reserved, i, region)
                if placed is not None:
                    return placed
        if restricted:
            # No region has room: say whether spreading over regions would have helped.
            first = None
            for i in range(rounds):
                placed, failed, _ = self._place_round(asks, leaf, prefer_reserved, i)
                if placed is not None:
                    for alloc in reversed(placed):
                        self._unassign(alloc)
                    reason = _region_reason(asks, home[0] if home else None)
                    for a in asks:
                        a.reason = reason
                    return None
                if first is None:
                    first = failed
        assert first is not None
        self._set_failure(asks, first, rounds)
        return None

    def _assign(self, ask: Ask, node: Node, res: Resources | None = None) -> Allocation:
        app = ask.app
        assert app.queue is not None
        used = ask.resources if res is None else res
        alloc = Allocation(
            ask.id,
            app,
            app.queue,
            node,
            used,
            typed(used, node.gpu_type),
            start=0.0,
            seq=ask.seq,
            priority=ask.priority,
            preemptible=ask.preemptible,
            originator=ask.originator,
            disruptible=ask.disruptible,
            elastic=ask.elastic,
            required_node=ask.required_node,
        )
        del self.asks[ask.id]
        del app.asks[ask.id]
        self._elastic_asks.pop(ask.id, None)
        app.top_priority = None
        app.queue.remove_pending(ask.resources, ask.priority)
        self._attach(alloc)
        self._assigned[alloc.id] = ask
        return alloc

    def _unassign(self, alloc: Allocation) -> None:
        """Undo ``_assign`` (what-if only: the ask goes back exactly as it was)."""
        self._detach(alloc)
        ask = self._assigned.pop(alloc.id)
        app = ask.app
        self.asks[ask.id] = ask
        app.asks[ask.id] = ask
        if ask.elastic:
            self._elastic_asks[ask.id] = ask
        app.top_priority = None
        assert app.queue is not None
        app.queue.add_pending(ask.resources, ask.priority)

    def _commit(self, placements: list[Allocation], result: CycleResult, why: str) -> None:
        for alloc in placements:
            alloc.start = result.now
            app = alloc.app
            self._assigned.pop(alloc.id, None)
            self._waiting_gangs.pop(app.id, None)
            self._set_running(app, True)
            result.decisions.append(
                Place(
                    alloc.id,
                    app.id,
                    alloc.queue.path,
                    alloc.node.name,
                    dict(alloc.resources),
                    alloc.node.gpu_type,
                    Reason(Code.PLACED, f"{why} on {alloc.node.name}"),
                )
            )

    # 4. preemption ---------------------------------------------------------------------

    def _phase_preempt(self, now: float, result: CycleResult, failed: list[tuple[App, list[Ask]]]) -> None:
        if not failed:
            return
        if not self.preemption_enabled and not self.elastic:
            # Say so on each waiting ask, cheaply: one annotated reason per distinct reason.
            noted: dict[int, Reason] = {}
            for _, asks in failed:
                for ask in asks:
                    r = ask.reason
                    if r is None or CANNOT_HELP in r.message:
                        continue
                    if id(r) not in noted:
                        noted[id(r)] = cannot_help(r, "preemption is disabled in this partition")
                    ask.reason = noted[id(r)]
            return
        preemptor = Preemptor(self, now)
        attempts: dict[str, int] = {}
        for app, asks in failed:
            leaf = app.queue
            assert leaf is not None
            if any(a.id not in self.asks or a.reserved_node is not None for a in asks):
                continue
            if attempts.get(leaf.path, 0) >= MAX_PREEMPTION_ATTEMPTS_PER_LEAF:
                continue
            # Extra members of elastic workloads are given back first, whatever their queue
            # (in one region for a gang that must stay in one).
            plan = preemptor.reclaim(app, asks, leaf)
            if plan is not None and not self._plan_in_one_region(app, plan):
                plan = None
            if plan is None:
                attempts[leaf.path] = attempts.get(leaf.path, 0) + 1
                plan = preemptor.attempt(app, asks, leaf)
                if plan is not None and not self._plan_in_one_region(app, plan):
                    plan = None
                    for ask in asks:
                        r = ask.reason or Reason(Code.GANG_WAITING, "gang waits")
                        ask.reason = cannot_help(
                            r, "the room it would make spans regions and the members must share one"
                        )
            if plan is not None:
                self._apply_preemption(plan, result)

    def _plan_in_one_region(self, app: App, plan: PreemptionPlan) -> bool:
        """Whether a preemption plan keeps a gang's members in one region (when they must be).

        Preemption itself looks for room in one region for such a gang; this is the safety net:
        a plan that would spread a gang bound to one region is not applied (its room could
        never be used together).
        """
        if not self._regions:
            return True
        rule = self._region_rule(app)
        if rule is None:
            return True
        return len(set(rule).union(regions_of(plan))) <= 1

    # 5. elastic growth -----------------------------------------------------------------

    def _phase_grow(self, now: float, result: CycleResult, tried: dict[str, Ask]) -> None:
        """Extra members of running elastic workloads take idle GPUs, the neediest queue first."""
        extras: list[tuple[tuple[object, ...], Ask]] = []
        for ask in self._elastic_asks.values():
            app = ask.app
            if ask.reserved_node is not None or not app.allocations:
                continue
            if any(not a.elastic for a in app.asks.values()):
                continue  # its required members first
            assert app.queue is not None
            extras.append(((app.queue.fair_share(self.capacity), app.seq, ask.sort_key()), ask))
        extras.sort(key=lambda e: e[0])
        for _, ask in extras:
            if ask.id not in self.asks:
                continue
            app = ask.app
            assert app.queue is not None
            placements = self._try_place_all(app, [ask], app.queue)
            if placements is not None:
                self._commit(placements, result, "elastic member grew into idle GPUs")
            else:
                tried[ask.id] = ask
                why = ask.reason.message if ask.reason else "no room"
                ask.reason = Reason(
                    ask.reason.code if ask.reason else Code.NO_NODE,
                    f"elastic extra member: runs only on idle GPUs ({why})",
                )

    def _apply_preemption(self, plan: PreemptionPlan, result: CycleResult) -> None:
        for alloc in plan.victims:
            alloc.preempted = True
            alloc.queue.add_preempting(alloc.counted)
            result.decisions.append(
                Preempt(
                    alloc.id, alloc.app.id, alloc.queue.path, alloc.node.name, plan.asks[0].id, plan.reason
                )
            )
        victim_ids = tuple(v.id for v in plan.victims)
        for ask, node in plan.targets:
            ask.victims = victim_ids
            ask.reserved_node = node.name
            node.hold(ask.id, ask.resources)
            self.index.update(node)
            self._reserved[ask.id] = ask
            ask.reason = Reason(
                Code.RESERVED,
                f"preempting {len(victim_ids)} allocation(s) to make room on {node.name}",
            )

    def reserve_for(self, app_id: str, node_name: str) -> bool:
        """Hold ``node_name`` for the first pending ask of ``app_id`` that fits it (compaction
        freed it for that gang); phase 2 places the app's reserved asks first."""
        app = self._app(app_id)
        node = self._node(node_name)
        for ask in self._ordered_asks(app):
            if ask.id in app.asks and ask.reserved_node is None and fits(ask.resources, node.avail):
                ask.reserved_node = node.name
                node.hold(ask.id, ask.resources)
                self.index.update(node)
                self._reserved[ask.id] = ask
                ask.reason = Reason(Code.RESERVED, f"{node.name} was freed and is held for it")
                return True
        return False

    # ------------------------------------------------------------------ queries

    def explain(self, ask_id: str) -> Reason:
        ask = self.asks.get(ask_id)
        if ask is None:
            if ask_id in self.allocations:
                return Reason(Code.PLACED, f"running on {self.allocations[ask_id].node.name}")
            raise SchedulerError(f"unknown ask {ask_id!r}")
        return ask.reason or Reason(Code.NOT_TRIED, "not considered yet")

    def queue_of(self, app_id: str) -> str | None:
        app = self._app(app_id)
        return app.queue.path if app.queue is not None else None


def _configured(partition: PartitionConfig) -> dict[str, tuple[str, QueueSettings]]:
    """Every configured queue's path -> (name, settings), parents before children."""
    out: dict[str, tuple[str, QueueSettings]] = {}

    def walk(cfg: QueueConfig, prefix: str) -> None:
        path = f"{prefix}.{cfg.name}" if prefix else cfg.name
        settings = settings_from_config(cfg)
        if not prefix:
            settings = replace(settings, limits=settings.limits or partition.limits, is_parent=True)
        out[path] = (cfg.name, settings)
        for child in cfg.queues:
            walk(child, path)

    walk(partition.root, "")
    return out


def _shape(ask: Ask) -> tuple[object, ...]:
    return ask.shape


def _region_reason(asks: list[Ask], home: str | None) -> Reason:
    """Why members that would fit across regions wait: they must share one."""
    hint = "wait for room in one region, or submit with span_regions to let the members spread over regions"
    n = len(asks)
    if home is not None:
        what = asks[0].id if n == 1 else f"{n} more members"
        return Reason(
            Code.NO_NODE if n == 1 else Code.GANG_WAITING,
            f"its gang runs in region {home}, which has no room for {what}; the members must "
            "share a region (allow span_regions to spread them)",
            hint,
        )
    return Reason(
        Code.GANG_WAITING,
        f"gang of {n} waits: its members must share a region and no region has room for all {n}; "
        "allow span_regions to spread them; nothing is held while it waits",
        hint,
    )


def _on(used: Resources, counted: Resources) -> Resources:
    return {k: used.get(k, 0) for k in counted}


def _nearest_template(parent: Queue) -> ChildTemplate | None:
    q: Queue | None = parent
    while q is not None:
        if q.child_template is not None:
            return q.child_template
        q = q.parent
    return None


__all__ = ["Decision", "Scheduler", "SchedulerError"]
