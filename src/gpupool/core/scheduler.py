"""The scheduler of one partition: the facade the engine, the simulator and the tests talk to.

``Scheduler`` turns calls from outside (``add_node``, ``submit``, ``add_ask``, ``restore``,
``release`` ...) into edits of the partition's ``State`` (``gpupool.core.state``) and asks for
decisions with ``schedule(now)``, which runs one ``Cycle`` (``gpupool.core.cycle``: its phases,
numbered as in ``docs/scheduling.md``). Placements and preemption are tried on a ``Snapshot``
(``gpupool.core.snapshot``) whose edits hand back an undo; where an ask fits and why it does
not is ``gpupool.core.fit``. Nothing here reads a clock, does I/O or draws random numbers: the
same state and the same ``now`` give the same decisions, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from gpupool.core.admission import gang_over_max
from gpupool.core.config import ChildTemplate, PartitionConfig, QueueConfig
from gpupool.core.cycle import Cycle
from gpupool.core.decisions import Code, CycleResult, Decision, Reason, Reject
from gpupool.core.limits import LimitTracker, applicable
from gpupool.core.model import DEFAULT_USER, Allocation, App, AppState, Ask, GangSpec, Node, NodeSpec, per_gpu
from gpupool.core.nodes import NodeIndex, NodeScorer, make_scorer
from gpupool.core.placement_rules import PlacementRules, Request
from gpupool.core.queues import (
    RECOVERY_QUEUE,
    Queue,
    QueueSettings,
    settings_from_config,
    settings_from_template,
)
from gpupool.core.resources import (
    GPU_MILLI,
    QuantityError,
    Resources,
    add_into,
    check_gpu_ask,
    fits,
    format_gpus,
    gpu_milli,
    sub_into,
    total,
    typed,
)
from gpupool.core.snapshot import Snapshot
from gpupool.core.state import SchedulerError, State


class Scheduler:
    """One partition's scheduler: its state, the calls that change it, and the cycle."""

    def __init__(self, partition: PartitionConfig, *, scorer: NodeScorer | None = None) -> None:
        self.state = State(partition, scorer)
        self.snapshot = Snapshot(self.state)
        self._cycle = Cycle(self.state, self.snapshot)

    # ------------------------------------------------------------------ the state, read only

    @property
    def partition(self) -> PartitionConfig:
        return self.state.partition

    @property
    def queues(self) -> dict[str, Queue]:
        return self.state.queues

    @property
    def root(self) -> Queue:
        return self.state.root

    @property
    def index(self) -> NodeIndex:
        return self.state.index

    @property
    def preemption_enabled(self) -> bool:
        return self.state.preemption_enabled

    @property
    def placer(self) -> PlacementRules:
        return self.state.placer

    @property
    def nodes(self) -> dict[str, Node]:
        return self.state.nodes

    @property
    def capacity(self) -> Resources:
        return self.state.capacity

    @property
    def apps(self) -> dict[str, App]:
        return self.state.apps

    @property
    def asks(self) -> dict[str, Ask]:
        return self.state.asks

    @property
    def allocations(self) -> dict[str, Allocation]:
        return self.state.allocations

    @property
    def elastic(self) -> dict[str, Allocation]:
        return self.state.elastic

    @property
    def limits(self) -> LimitTracker:
        return self.state.limits

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
            old = self.state.queues.get(path)
            if old is None:
                parent = self.state.queues[path.rpartition(".")[0]]
                q = Queue(name, parent, settings)
                parent.children[name] = q
                parent.is_leaf = False
                self.state.queues[path] = q
                changes.append(f"added queue {path}")
            else:
                old.apply(settings)
                old.dynamic = False
        for path, q in list(self.state.queues.items()):
            if path in fresh or q.dynamic:
                continue
            q.dynamic = True
            changes.append(f"queue {path} is no longer configured; kept while it holds applications")
        for q in self.state.root.walk():  # inherited properties follow the new parents, top down
            if q.path in fresh:
                q.apply(fresh[q.path][1])
        self.state.partition = partition
        self.state.preemption_enabled = partition.preemption_enabled
        self.state.placer = PlacementRules(partition.placement_rules, self.state.queues.get)
        policy = partition.node_sort_policy
        if policy != self.state.policy:
            self.state.policy = policy
            self.state.reindex(make_scorer(policy.type, policy.resource_weights))
            changes.append(f"node sort policy {policy.type}")
        for app in self.state.apps.values():
            if app.queue is not None:
                self.state.app_limits[app.id] = applicable(app.queue, app.user, app.groups)
        self._cycle.config_changed()
        self.state.epoch += 1
        return changes

    # ------------------------------------------------------------------ nodes

    def add_node(self, spec: NodeSpec) -> Node:
        if spec.name in self.state.nodes:
            raise SchedulerError(f"node {spec.name!r} is already registered")
        if gpu_milli(spec.capacity) % GPU_MILLI:
            raise SchedulerError(
                f"node {spec.name!r}: GPU capacity {format_gpus(gpu_milli(spec.capacity))} is not whole GPUs"
            )
        node = Node(spec.name, spec.capacity, spec.labels, spec.schedulable)
        self.state.nodes[node.name] = node
        self.state.epoch += 1
        if node.schedulable:
            add_into(self.state.capacity, node.capacity)
            self.state.index.add(node)
            self.state.count_region(node, 1)
        return node

    def set_schedulable(self, name: str, schedulable: bool) -> None:
        node = self.state.node(name)
        if node.schedulable == schedulable:
            return
        node.schedulable = schedulable
        self.state.epoch += 1
        if schedulable:
            add_into(self.state.capacity, node.capacity)
            self.state.index.add(node)
        else:
            sub_into(self.state.capacity, node.capacity)
            self.state.index.remove(node)
        self.state.count_region(node, 1 if schedulable else -1)

    def remove_node(self, name: str) -> list[Allocation]:
        """Forget a node (it died or left); returns the allocations it held, now released."""
        node = self.state.node(name)
        lost = list(node.allocations.values())
        for alloc in lost:
            self.release(alloc.id)
        for ask_id in list(node.held):
            self.state.drop_reservation(self.state.asks[ask_id])
        self.set_schedulable(name, False)
        del self.state.nodes[name]
        return lost

    # ------------------------------------------------------------------ applications

    def submit(
        self,
        app_id: str,
        *,
        queue: str | None = None,
        user: str = DEFAULT_USER,
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
        if app_id in self.state.apps:
            raise SchedulerError(f"application {app_id!r} is already submitted")
        self.state.seq += 1
        app = App(app_id, user=user, groups=tuple(groups), tags=tags or {}, gang=gang, seq=self.state.seq)
        self.state.apps[app_id] = app
        if forced:
            leaf = self.state.queues.get((queue or "").lower())
            if leaf is None or not leaf.is_leaf:
                leaf = self._recovery_queue()
            self._join(app, leaf)
            return None
        path, create, why = self.state.placer.place(
            Request(user=user, groups=app.groups, queue=queue, tags=app.tags)
        )
        if path is None:
            return self._reject(app, Reason(Code.REJECTED, why, "check the queue name and the submit ACLs"))
        leaf = self._create_queues(path) if create else self.state.queues[path]
        self._join(app, leaf)
        return None

    def _join(self, app: App, leaf: Queue) -> None:
        app.queue = leaf
        self.state.by_leaf.setdefault(leaf.path, {})[app.id] = app
        self.state.app_limits[app.id] = applicable(leaf, app.user, app.groups)

    def _reject(self, app: App, reason: Reason) -> Reject:
        for ask in list(app.asks.values()):
            self.state.remove_ask(ask.id)
        app.state = AppState.REJECTED
        app.reason = reason
        if app.queue is not None:
            self.state.by_leaf.get(app.queue.path, {}).pop(app.id, None)
        self.state.waiting_gangs.pop(app.id, None)
        return Reject(app.id, reason)

    def _recovery_queue(self) -> Queue:
        path = f"root.{RECOVERY_QUEUE}"
        q = self.state.queues.get(path)
        if q is None:
            q = Queue(RECOVERY_QUEUE, self.state.root, QueueSettings(), dynamic=True)
            self.state.root.children[RECOVERY_QUEUE] = q
            self.state.queues[path] = q
        return q

    def _create_queues(self, path: str) -> Queue:
        parts = path.split(".")
        parent = self.state.root
        for i in range(1, len(parts)):
            sub_path = ".".join(parts[: i + 1])
            existing = self.state.queues.get(sub_path)
            if existing is None:
                template = _nearest_template(parent)
                leaf = i == len(parts) - 1
                q = Queue(
                    parts[i], parent, settings_from_template(template, is_parent=not leaf), dynamic=True
                )
                parent.children[parts[i]] = q
                self.state.queues[sub_path] = q
                existing = q
            parent = existing
        return parent

    def remove_app(self, app_id: str) -> None:
        """Forget an application that has nothing left (the driver released its allocations)."""
        app = self.state.app(app_id)
        for ask in list(app.asks.values()):
            self.state.remove_ask(ask.id)
        if app.allocations:
            raise SchedulerError(f"application {app_id!r} still holds allocations; release them first")
        if app.queue is not None:
            self.state.by_leaf.get(app.queue.path, {}).pop(app_id, None)
        self.state.set_running(app, False)
        self.state.waiting_gangs.pop(app_id, None)
        self.state.app_limits.pop(app_id, None)
        del self.state.apps[app_id]

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
        within_guarantee: bool = False,
    ) -> Reject | None:
        """Add an ask. ``alternatives`` are further (resources, GPU types) shapes to fall back
        through, in order, when the first (``resources``, ``gpu_types``) does not fit.
        ``within_guarantee``: placed only while its leaf queue stays within its guarantee with it
        (``gpupool.core.within_guarantee``; for work that may not be preempted).

        ``check_gang_max=False`` while adding the members of a gang but the last: the gang's
        total is checked against its queues' max once, on the last (linear in its members)."""
        app = self.state.app(app_id)
        if ask_id in self.state.asks or ask_id in self.state.allocations:
            raise SchedulerError(f"ask {ask_id!r} already exists")
        others = tuple((dict(r), tuple(t)) for r, t in alternatives)
        for shape in (resources, *(r for r, _ in others)):
            try:
                check_gpu_ask(shape)
            except QuantityError as exc:
                raise SchedulerError(f"ask {ask_id!r}: {exc}") from None
        if app.state in (AppState.REJECTED, AppState.FAILED):
            return None
        assert app.queue is not None
        self.state.seq += 1
        ask = Ask(
            ask_id,
            app,
            resources,
            created=created,
            seq=self.state.seq,
            priority=priority,
            gpu_types=tuple(gpu_types),
            preempt_others=preempt_others,
            required_node=required_node,
            preemptible=preemptible,
            originator=originator,
            disruptible=disruptible,
            alternatives=others,
            elastic=elastic,
            within_guarantee=within_guarantee,
        )
        ask.reason = Reason(Code.NOT_TRIED, "submitted; not considered by a scheduling cycle yet")
        self.state.shape_id(ask)
        app.asks[ask_id] = ask
        self.state.asks[ask_id] = ask
        if elastic:
            self.state.elastic_asks[ask_id] = ask
        app.top_priority = None
        if self.state.observe is not None:
            self.state.observe(ask.resources, ask.gpu_types)
        app.submitted = min(app.submitted, created)
        self.state.ask_order.pop(app_id, None)
        app.queue.add_pending(ask.resources, ask.priority)
        if app.state == AppState.COMPLETED:
            self.state.transition(app, AppState.WAITING)
        if app.gang is not None and not app.gang_released and not elastic:
            too_big = self._gang_above_max(app) if check_gang_max else None
            if too_big is not None:
                return self._reject(app, too_big)
            if not app.allocations:
                self.state.waiting_gangs[app.id] = app
        return None

    def remove_ask(self, ask_id: str) -> None:
        """Withdraw a pending ask (cancelled, or its workload left)."""
        self.state.remove_ask(ask_id)

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
        gpu_ids: tuple[int, ...] | None = None,
    ) -> Allocation:
        """Record an allocation that already runs (recovery): no quota or fit checks.

        ``gpu_ids`` are the GPUs it was given before the restart (its process sees them): the
        allocation takes exactly those, and they must exist and not be overbooked. Without them
        (unknown), GPUs are picked afresh and may go below zero if the node is over full."""
        app = self.state.app(app_id)
        if alloc_id in self.state.allocations or alloc_id in self.state.asks:
            raise SchedulerError(f"allocation {alloc_id!r} already exists")
        n = self.state.node(node)
        assert app.queue is not None
        milli = gpu_milli(resources)
        if gpu_ids is None:
            gpu_ids = n.place_gpus(milli)
        else:
            gpu_ids = tuple(gpu_ids)
            self._check_restored_gpus(alloc_id, n, milli, gpu_ids)
        self.state.seq += 1
        alloc = Allocation(
            alloc_id,
            app,
            app.queue,
            n,
            resources,
            typed(resources, n.gpu_type),
            start=start,
            seq=self.state.seq,
            priority=priority,
            preemptible=preemptible,
            originator=originator,
            disruptible=disruptible,
            elastic=elastic,
            gpu_ids=gpu_ids,
        )
        self.state.attach(alloc)
        app.submitted = min(app.submitted, start)
        self.state.waiting_gangs.pop(app.id, None)
        self.state.set_running(app, True)
        return alloc

    @staticmethod
    def _check_restored_gpus(alloc_id: str, node: Node, milli: int, gpu_ids: tuple[int, ...]) -> None:
        """Refuse GPUs a restored allocation cannot have held: wrong count, unknown or repeated
        indices, or more than one GPU's worth on a GPU (counting allocations, not held room)."""
        want = 0 if milli <= 0 else 1 if milli < GPU_MILLI else milli // GPU_MILLI
        if len(gpu_ids) != want:
            raise SchedulerError(
                f"allocation {alloc_id!r}: {len(gpu_ids)} GPU indices for {milli} milli-GPU, needs {want}"
            )
        count = len(node.gpu_free)
        bad = [i for i in gpu_ids if not 0 <= i < count]
        if bad or len(set(gpu_ids)) != len(gpu_ids):
            raise SchedulerError(
                f"allocation {alloc_id!r}: GPU indices {list(gpu_ids)} are not distinct GPUs of node "
                f"{node.name!r} (0..{count - 1})"
            )
        free = list(node.gpu_free)
        for ask_id, held in node.held_gpus.items():  # held room is soft: recovery may take it
            room = per_gpu(gpu_milli(node.held[ask_id]))
            for i in held:
                free[i] += room
        per = per_gpu(milli)
        over = [i for i in gpu_ids if free[i] < per]
        if over:
            raise SchedulerError(
                f"allocation {alloc_id!r}: GPU {over[0]} of node {node.name!r} has {max(free[over[0]], 0)} "
                f"milli-GPU free, {per} needed (it would be overbooked)"
            )

    def mark_preempting(self, alloc_id: str) -> None:
        """Recovery: this allocation was already chosen as a victim and is stopping."""
        alloc = self.state.allocations.get(alloc_id)
        if alloc is None:
            raise SchedulerError(f"unknown allocation {alloc_id!r}")
        if not alloc.preempted:
            alloc.preempted = True
            alloc.node.victims_version += 1
            alloc.queue.add_preempting(alloc.counted)

    def release(self, alloc_id: str) -> Allocation:
        """The allocation's workload stopped (finished, preempted, lost): free its resources."""
        alloc = self.state.allocations.get(alloc_id)
        if alloc is None:
            raise SchedulerError(f"unknown allocation {alloc_id!r}")
        self.state.epoch += 1
        self.state.detach(alloc)
        if alloc.preempted:
            alloc.queue.remove_preempting(alloc.counted)
            alloc.preempted = False
        self.state.maybe_complete(alloc.app)
        return alloc

    # ------------------------------------------------------------------ the cycle

    def schedule(self, now: float) -> CycleResult:
        """Run one scheduling cycle at time ``now`` (seconds) and return its decisions."""
        return self._cycle.run(now)

    def reserve_for(self, app_id: str, node_name: str) -> bool:
        """Hold ``node_name`` for the first pending ask of ``app_id`` that fits it (compaction
        freed it for that gang); phase 2 places the app's reserved asks first."""
        app = self.state.app(app_id)
        node = self.state.node(node_name)
        for ask in self.state.ordered_asks(app):
            if (
                ask.id in app.asks
                and ask.reserved_node is None
                and fits(ask.resources, node.avail)
                and node.gpus_fit(gpu_milli(ask.resources))
            ):
                self.state.hold(ask, node, f"{node.name} was freed and is held for it")
                return True
        return False

    # ------------------------------------------------------------------ queries

    def explain(self, ask_id: str) -> Reason:
        ask = self.state.asks.get(ask_id)
        if ask is None:
            if ask_id in self.state.allocations:
                return Reason(Code.PLACED, f"running on {self.state.allocations[ask_id].node.name}")
            raise SchedulerError(f"unknown ask {ask_id!r}")
        return ask.reason or Reason(Code.NOT_TRIED, "not considered yet")

    def queue_of(self, app_id: str) -> str | None:
        app = self.state.app(app_id)
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


def _nearest_template(parent: Queue) -> ChildTemplate | None:
    q: Queue | None = parent
    while q is not None:
        if q.child_template is not None:
            return q.child_template
        q = q.parent
    return None


__all__ = ["Decision", "Scheduler", "SchedulerError"]
