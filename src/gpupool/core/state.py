"""The registry of one partition: queues, nodes, applications, asks, allocations and their indexes.

``State`` holds everything a scheduling cycle reads and the primitive edits that keep its
indexes consistent with each other (queue usage, node order, user and group limits, running
applications, held room). It makes no decision: ``gpupool.core.scheduler.Scheduler`` turns
calls from outside into these edits, ``gpupool.core.snapshot.Snapshot`` makes what-if edits on
it, and ``gpupool.core.cycle`` decides.
"""

from __future__ import annotations

from collections.abc import Callable

from gpupool.core.capacity import REGION_LABEL
from gpupool.core.config import PartitionConfig
from gpupool.core.decisions import Code, Reason
from gpupool.core.limits import Applied, LimitTracker
from gpupool.core.model import APP_TRANSITIONS, Allocation, App, AppState, Ask, Node, per_gpu, pick_gpus
from gpupool.core.nodes import NodeIndex, NodeScorer, make_scorer
from gpupool.core.placement_rules import PlacementRules
from gpupool.core.queues import Queue, build_tree
from gpupool.core.resources import Resources, add_into, gpu_milli, sub_into, typed

_NO_APPS: dict[str, App] = {}


class SchedulerError(ValueError):
    """A call that does not make sense for the current state (unknown id, duplicate id ...)."""


class State:
    """One partition's state and every index over it, changed only through consistent edits."""

    def __init__(self, partition: PartitionConfig, scorer: NodeScorer | None = None) -> None:
        self.partition = partition
        self.queues: dict[str, Queue] = build_tree(partition.root, partition.limits)
        self.root = self.queues["root"]
        policy = partition.node_sort_policy
        self.policy = policy
        self.index = NodeIndex(scorer or make_scorer(policy.type, policy.resource_weights))
        self.preemption_enabled = partition.preemption_enabled
        # Workload-aware node policies learn the asks' shapes.
        self.observe: Callable[[Resources, tuple[str, ...]], None] | None = getattr(
            self.index.scorer, "observe", None
        )
        self.placer = PlacementRules(partition.placement_rules, self.queues.get)
        self.nodes: dict[str, Node] = {}
        self.capacity: Resources = {}
        # Schedulable nodes per region (the ``gpupool/region`` label); empty when no node has one,
        # and then the region rule for gangs costs nothing.
        self.regions: dict[str, int] = {}
        self.apps: dict[str, App] = {}
        # Each leaf's applications, by leaf path (a queue knows nothing of applications).
        self.by_leaf: dict[str, dict[str, App]] = {}
        self.asks: dict[str, Ask] = {}
        self.allocations: dict[str, Allocation] = {}
        self.elastic: dict[str, Allocation] = {}  # extra members of elastic workloads, by id
        self.elastic_asks: dict[str, Ask] = {}  # pending extra members, for phase 5
        self.limits = LimitTracker()
        self.app_limits: dict[str, tuple[Applied, ...]] = {}
        self.ask_order: dict[str, list[Ask]] = {}
        self.waiting_gangs: dict[str, App] = {}
        self.reserved: dict[str, Ask] = {}
        # A small number per distinct ask shape (``Ask.shape``), for the cycle's memos: an int
        # hashes at once where the nested shape tuple is hashed anew at every lookup.
        self.shape_ids: dict[tuple[object, ...], int] = {}
        # Rooms held for asks after preemption, as the allocations they become would count: per
        # ask (its leaf, its counted resources) and summed per queue path (the leaf and up).
        self.held: dict[str, tuple[Queue, Resources]] = {}
        self.held_by_queue: dict[str, Resources] = {}
        self.seq = 0
        # Bumped whenever room may have appeared (a release, a node, a dropped hold, a new
        # config): leaves skipped as quiet are looked at again.
        self.epoch = 0

    # ------------------------------------------------------------------ lookups

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise SchedulerError(f"unknown node {name!r}") from None

    def app(self, app_id: str) -> App:
        try:
            return self.apps[app_id]
        except KeyError:
            raise SchedulerError(f"unknown application {app_id!r}") from None

    def apps_in(self, leaf: Queue) -> dict[str, App]:
        """The applications in a leaf queue, by id (do not edit the dict returned)."""
        return self.by_leaf.get(leaf.path, _NO_APPS)

    def limits_of(self, app: App) -> tuple[Applied, ...]:
        """The user and group limits an application counts against (none if unlimited)."""
        return self.app_limits.get(app.id, ())

    def shape_id(self, ask: Ask) -> int:
        """The number of the ask's shape (equal shapes, equal numbers), kept on the ask."""
        sid = ask.shape_id
        if sid < 0:
            sid = ask.shape_id = self.shape_ids.setdefault(ask.shape, len(self.shape_ids))
        return sid

    def ordered_asks(self, app: App) -> list[Ask]:
        """The app's asks in placement order (cached until they change; may list placed asks)."""
        order = self.ask_order.get(app.id)
        if order is None:
            order = sorted(app.asks.values(), key=Ask.sort_key)
            self.ask_order[app.id] = order
        return order

    # ------------------------------------------------------------------ nodes

    def reindex(self, scorer: NodeScorer) -> None:
        self.index = NodeIndex(scorer)
        for node in self.nodes.values():
            if node.schedulable:
                self.index.add(node)
        self.observe = getattr(scorer, "observe", None)
        if self.observe is not None:  # a new learning policy learns the asks still pending
            for ask in self.asks.values():
                self.observe(ask.resources, ask.gpu_types)

    def count_region(self, node: Node, delta: int) -> None:
        region = node.labels.get(REGION_LABEL)
        if region is None:
            return
        n = self.regions.get(region, 0) + delta
        if n > 0:
            self.regions[region] = n
        else:
            self.regions.pop(region, None)

    def drop_reservation(self, ask: Ask) -> None:
        """Give up the room held for ``ask`` (if any)."""
        if ask.reserved_node is not None:
            self.epoch += 1
            node = self.nodes.get(ask.reserved_node)
            if node is not None:
                node.unhold(ask.id)
                self.index.update(node)
        ask.reserved_node = None
        ask.victims = ()
        self.reserved.pop(ask.id, None)
        self._count_held(ask.id, None)

    def hold(self, ask: Ask, node: Node, why: str) -> None:
        """Hold room on ``node`` for ``ask`` (phase 2 places it there first)."""
        ask.reserved_node = node.name
        node.hold(ask.id, ask.resources, self.room_gpus(ask, node))
        self.index.update(node)
        self.reserved[ask.id] = ask
        if ask.app.queue is not None:
            self._count_held(ask.id, (ask.app.queue, typed(ask.resources, node.gpu_type)))
        ask.reason = Reason(Code.RESERVED, why)

    def _count_held(self, ask_id: str, held: tuple[Queue, Resources] | None) -> None:
        """Keep ``held_by_queue`` (what rooms held for asks count, per queue and its ancestors) as
        ask ``ask_id`` holds ``held`` (its leaf and counted resources) or nothing (None)."""
        before = self.held.pop(ask_id, None)
        if before is not None:
            for q in before[0].ancestors():
                sub_into(self.held_by_queue[q.path], before[1])
        if held is not None:
            self.held[ask_id] = held
            for q in held[0].ancestors():
                add_into(self.held_by_queue.setdefault(q.path, {}), held[1])

    def room_gpus(self, ask: Ask, node: Node) -> tuple[int, ...]:
        """The GPUs of ``node`` to hold for ``ask``: those free once its victims there stop."""
        milli = gpu_milli(ask.resources)
        if not milli:
            return ()
        free = list(node.gpu_free)
        for victim_id in ask.victims:
            victim = self.allocations.get(victim_id)
            if victim is not None and victim.node is node and victim.gpu_ids:
                per = per_gpu(gpu_milli(victim.resources))
                for i in victim.gpu_ids:
                    free[i] += per
        chosen = pick_gpus(free, milli)
        return chosen if chosen is not None else node.place_gpus(milli)

    # ------------------------------------------------------------------ asks and allocations

    def remove_ask(self, ask_id: str) -> None:
        """Withdraw a pending ask (cancelled, or its workload left)."""
        ask = self.asks.pop(ask_id, None)
        if ask is None:
            raise SchedulerError(f"unknown pending ask {ask_id!r}")
        self.elastic_asks.pop(ask_id, None)
        self.epoch += 1  # a withdrawn ask may unblock others (maxapplications, gang order)
        self.drop_reservation(ask)
        app = ask.app
        del app.asks[ask_id]
        app.top_priority = None
        self.ask_order.pop(app.id, None)
        assert app.queue is not None
        app.queue.remove_pending(ask.resources, ask.priority)
        self.maybe_complete(app)

    def attach(self, alloc: Allocation) -> None:
        """Count an allocation everywhere: its app, node, node order, queues and limits."""
        self.allocations[alloc.id] = alloc
        if alloc.elastic:
            self.elastic[alloc.id] = alloc
        alloc.app.allocations[alloc.id] = alloc
        node = alloc.node
        node.allocations[alloc.id] = alloc
        node.victims_version += 1
        node.take(alloc.resources, alloc.gpu_ids)
        self.index.update(node)
        alloc.queue.add_allocated(alloc.counted)
        self.limits.add(self.app_limits.get(alloc.app.id, ()), alloc.counted)

    def detach(self, alloc: Allocation) -> None:
        """Undo ``attach``."""
        del self.allocations[alloc.id]
        self.elastic.pop(alloc.id, None)
        del alloc.app.allocations[alloc.id]
        node = alloc.node
        del node.allocations[alloc.id]
        node.victims_version += 1
        node.give(alloc.resources, alloc.gpu_ids)
        self.index.update(node)
        alloc.queue.remove_allocated(alloc.counted)
        self.limits.remove(self.app_limits.get(alloc.app.id, ()), alloc.counted)

    # ------------------------------------------------------------------ application lifecycle

    def set_running(self, app: App, running: bool) -> None:
        if running and app.state != AppState.RUNNING:
            self.transition(app, AppState.RUNNING)
        if app.running == running or app.queue is None:
            return
        app.running = running
        delta = 1 if running else -1
        app.queue.set_running(delta)
        self.limits.set_running(self.app_limits.get(app.id, ()), delta)

    def maybe_complete(self, app: App) -> None:
        if app.asks or app.allocations:
            return
        self.waiting_gangs.pop(app.id, None)
        if app.state in (AppState.RUNNING, AppState.WAITING):
            self.set_running(app, False)
            self.transition(app, AppState.COMPLETED)

    def transition(self, app: App, to: AppState) -> None:
        if to == app.state:
            return
        if to not in APP_TRANSITIONS[app.state] and not (
            app.state == AppState.COMPLETED and to == AppState.WAITING
        ):
            raise SchedulerError(f"application {app.id!r} cannot go from {app.state.value} to {to.value}")
        app.state = to
