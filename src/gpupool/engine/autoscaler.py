"""The autoscaler: grows and shrinks node pools through a node provider, every driver tick.

Request in, reply out: the driver hands it a ``PoolView`` (the scheduler's nodes, asks and
applications, read only) and gets back actions as data (``JoinNode``, ``Cordon``, ``HoldFor``,
``MoveWorkload``, ``Launch``, ``Terminate``, ``Note``...) that the driver carries out in order.
The autoscaler never calls the driver nor changes the scheduler; it keeps only its own state:
the pool nodes (booting, ready), launch attempts and blocked offers, and the accounting.

Each tick the driver asks ``observe`` (before the scheduling cycles: what the provider
reported), then ``drain`` and ``plan`` (after them). The demand comes from the core
(``gpupool.core.demand``), the plan from the pure planners (``gpupool.core.capacity``,
``gpupool.core.compaction``). A node that finished booting joins the scheduler with its pool,
instance type and region as labels; a node scaled down leaves it after it is cordoned.

Every launch is an attempt with an outcome. A stockout or a boot failure blocks that offer
(pool, instance type, region) for ``block_seconds`` so the next plan falls back to the next
offer, and the history is what ``gpupool why`` shows for the workloads the launch was for.

After a control-plane restart the machines launched before it still run: ``adopt`` (called
once, before the first tick and before workloads are restored) takes them back from the
provider's ``inventory``. A ready node joins the scheduler as a booted one does; a booting one
waits for its ``Booted``; a node of a pool or instance type no longer configured is left alone.
Adopted nodes count against their pool's max and scale down like any other, and new launches
never reuse their names.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gpupool.core.capacity import (
    INSTANCE_LABEL,
    POOL_LABEL,
    REGION_LABEL,
    Arrival,
    BurstMemory,
    CapacityPlan,
    PoolNode,
    plan_capacity,
    series_window,
)
from gpupool.core.compaction import CompactionPlan, plan_compaction
from gpupool.core.config import DEFAULT_COMPACTION_INTERVAL, InstanceType, NodePool
from gpupool.core.demand import beyond_max, waiting_demand, wanted_gangs
from gpupool.core.model import App, Ask, Node, NodeSpec
from gpupool.core.queues import Queue
from gpupool.core.resources import GPU_MILLI, GPU_TYPE_LABEL, gpu_milli, gpus_from_milli
from gpupool.engine.model import Workload
from gpupool.engine.ports import (
    Booted,
    LaunchFailed,
    NodeProvider,
    ProviderEvent,
    ProviderNode,
    Terminated,
)

__all__ = [  # the provider's types are re-exported: they used to live here
    "Action",
    "Adoption",
    "Attempt",
    "Autoscaler",
    "Booted",
    "Cordon",
    "HoldFor",
    "JoinNode",
    "Launch",
    "LaunchFailed",
    "MoveWorkload",
    "NodeProvider",
    "Note",
    "PoolView",
    "ProviderEvent",
    "ProviderNode",
    "RemoveNode",
    "Terminate",
    "Terminated",
]


@dataclass(frozen=True, slots=True)
class PoolView:
    """What the autoscaler reads of the scheduler at one instant (the request).

    The mappings are the scheduler's own, read only: the autoscaler never changes them, it
    replies with actions. ``movable`` lists the running workloads compaction may move; it is a
    function because only a compaction round needs it.
    """

    now: float
    nodes: Mapping[str, Node]
    asks: Mapping[str, Ask]
    apps: Mapping[str, App]
    movable: Callable[[], set[str]] = set


@dataclass(frozen=True, slots=True)
class JoinNode:
    """A pool node is up: it joins the scheduler (``NodeUp``)."""

    spec: NodeSpec


@dataclass(frozen=True, slots=True)
class RemoveNode:
    """A pool node was terminated: it leaves the scheduler, if it is there (not a loss)."""

    name: str


@dataclass(frozen=True, slots=True)
class Cordon:
    """Take ``node`` out of scheduling (``schedulable=False``) or put it back (``True``)."""

    node: str
    schedulable: bool = False


@dataclass(frozen=True, slots=True)
class HoldFor:
    """Hold the freed ``node`` for the waiting gang ``app``."""

    app: str
    node: str


@dataclass(frozen=True, slots=True)
class MoveWorkload:
    """Checkpoint, stop and requeue the running ``workload`` so it is placed elsewhere."""

    workload: str
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """A journal event."""

    workload: str | None
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Launch:
    """Ask the node provider for a machine of ``itype`` in ``pool``, named ``name``."""

    pool: str
    itype: InstanceType
    name: str


@dataclass(frozen=True, slots=True)
class Terminate:
    """Ask the node provider to let ``name`` go."""

    name: str


Action = JoinNode | RemoveNode | Cordon | HoldFor | MoveWorkload | Note | Launch | Terminate


@dataclass(frozen=True, slots=True)
class Adoption:
    """The reply to ``adopt``: the node names taken back, and the actions that carry it out."""

    adopted: list[str]
    actions: list[Action]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One launch and what came of it (what ``gpupool why`` shows for its workloads)."""

    at: float
    pool: str
    instance_type: str
    region: str
    node: str
    outcome: str  # launching | booted | stockout | boot-failure | adopted (after a restart)
    for_workloads: tuple[str, ...] = ()
    message: str = ""


@dataclass(slots=True)
class Autoscaler:
    """Keeps the node pools sized for the demand: plans launches, scale-downs and compaction
    from a ``PoolView`` and replies with actions; holds the pool nodes, launch attempts, blocked
    offers and the provisioning accounting (GPU-hours, idle GPU-hours, cost)."""

    pools: tuple[NodePool, ...]
    provider: NodeProvider
    block_seconds: float = 600.0
    nodes: dict[str, PoolNode] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    blocked: dict[tuple[str, str, str], float] = field(default_factory=dict)
    last_plan: CapacityPlan | None = None
    _launch: dict[str, Attempt] = field(default_factory=dict)
    _seq: int = 0
    # GPU-hours provisioned and idle, for the benchmarks.
    node_seconds: float = 0.0
    gpu_seconds: float = 0.0
    idle_gpu_seconds: float = 0.0
    cost: float = 0.0
    _last: float | None = None
    _rates: tuple[int, int, float, float] = (0, 0, 0, 0.0)  # nodes, GPUs, idle GPUs, cost/h
    # Compaction: every ``compaction_interval`` seconds, move at most ``compaction_budget``
    # checkpointable workloads to free whole nodes (0 = off).
    compaction_budget: int = 0
    compaction_interval: float = DEFAULT_COMPACTION_INTERVAL
    draining: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # node -> (purpose, app)
    moves: int = 0
    _next_compaction: float = 0.0
    # Whether compaction may move work onto an empty node. Moving a light node's work onto an
    # empty (warm headroom) node frees nothing: one node is emptied, another filled, and the
    # headroom is then refilled by a launch. False keeps empty nodes out of the what-if targets.
    compact_onto_empty: bool = False
    # Which waiting asks count as demand: "needs-node" (default) only those a new node would let
    # run (no-node, gang-waiting); "all" every waiting ask, quota-blocked ones too, packed first
    # onto the free room of ready nodes (a Ray-autoscaler-like baseline for the benchmarks).
    demand: str = "needs-node"
    # Recent arrivals, for headroom sized by them (pools with a ``headroom_window``).
    arrivals: deque[Arrival] = field(default_factory=deque)
    # Each queue's recent burst peaks, for pools with series headroom (a ``headroom_memory``).
    bursts: BurstMemory | None = None

    def __post_init__(self) -> None:
        if self.demand not in ("needs-node", "all"):
            raise ValueError(f"unknown demand mode {self.demand!r} (expected needs-node or all)")
        series = [p for p in self.pools if p.headroom_window > 0 and p.headroom_memory > 0]
        if series and self.bursts is None:
            # One memory for all pools: the longest; each pool reads only its own GPU types.
            self.bursts = BurstMemory(
                max(series_window(p) for p in series), max(p.headroom_memory for p in series)
            )

    def peaks(self, now: float) -> dict[tuple[str, tuple[str, ...]], float]:
        """Each queue's burst peak in the series memory (empty without series headroom)."""
        return self.bursts.peaks(now) if self.bursts is not None else {}

    def arrived(self, workload: Workload, queue: Queue | None, now: float) -> None:
        """A workload was submitted to ``queue``: remember its GPUs for the pools whose headroom
        follows arrivals (kept for the longest such window). Quota-aware: a workload that its
        queue's max (or a parent's) keeps waiting behind what the queue already runs and waits
        for would not use a warm node, so it does not count."""
        window = max((p.headroom_window for p in self.pools), default=0.0)
        if window <= 0:
            return
        members = workload.spec.members()
        gpus = gpus_from_milli(sum(gpu_milli(g.resources) for _, g in members))
        if queue is not None and beyond_max(queue):
            gpus = 0  # its queue's pending asks (its own included) are beyond the max
        if gpus > 0:
            types = next((g.gpu_types for _, g in members if g.gpu_types), ())
            arrival = Arrival(now, gpus, tuple(types), queue.path if queue is not None else "")
            self.arrivals.append(arrival)
            if self.bursts is not None:
                self.bursts.add(arrival)
        while self.arrivals and self.arrivals[0].at < now - window:
            self.arrivals.popleft()

    def observe(self, now: float) -> list[Action]:
        """Before the scheduling cycles: nodes that booted join, failed launches are recorded."""
        self._account(now)
        actions: list[Action] = []
        for event in self.provider.poll(now):
            self._observe(event, now, actions)
        return actions

    def drain(self, view: PoolView) -> list[Action]:
        """After the scheduling cycles, first: note the ready nodes' free room and idle time,
        and give cordoned nodes that are empty now to their gang, or let them go. The driver
        carries this out before ``plan`` (a node held for a gang is no longer free room)."""
        self._refresh(view)
        actions: list[Action] = []
        self._drained(view, actions)
        return actions

    def plan(self, view: PoolView) -> list[Action]:
        """After ``drain``: compact if it is time, plan with the demand the cycles left, and
        reply with what to do (in the order to do it)."""
        now = view.now
        actions: list[Action] = []
        if self.compaction_budget and now >= self._next_compaction:
            self._next_compaction = now + self.compaction_interval
            self._compact(view, actions)
        blocked = {k for k, until in self.blocked.items() if until > now}
        plan = plan_capacity(
            self.pools,
            self.nodes.values(),
            waiting_demand(view.asks.values(), view.apps, every=self.demand == "all"),
            blocked,
            now,
            ready_room=self.demand == "all",
            arrivals=tuple(self.arrivals),
            peaks=self.peaks(now),
        )
        self.last_plan = plan
        for up in plan.scale_up:
            for _ in range(up.count):
                self._start(up.pool, up.instance_type, up.for_workloads, now, actions)
        for down in plan.scale_down:
            node = self.nodes.get(down.node)
            if node is None or node.state != "ready":
                continue
            core_node = view.nodes.get(down.node)
            if core_node is not None and core_node.allocations:
                continue  # something landed on it since the plan
            if core_node is not None:
                actions.append(Cordon(down.node))  # cordon, then terminate
            node.state = "terminating"
            actions.append(Note(None, "scale-down", f"{down.node}: {down.reason}"))
            actions.append(Terminate(down.node))
        self._snapshot(view)
        return actions

    def adopt(self, view: PoolView) -> Adoption:
        """Take back the nodes the provider still runs (after a control-plane restart).

        Asked once, before the first tick and before workloads are restored onto their nodes.
        A ready node joins the scheduler as a booted one does (idle since ``now``); a booting one
        stays booting until its ``Booted``. Each is recorded in ``attempts`` as ``adopted``. A
        node of a pool or instance type not configured is left alone, with a journal event.
        """
        now = view.now
        self._account(now)
        adopted: list[str] = []
        actions: list[Action] = []
        for found in sorted(self.provider.inventory(), key=lambda n: n.name):
            self._seq = max(self._seq, _seq_of(found.name))  # never launch under its name again
            known = self.nodes.get(found.name)
            if known is not None:  # adopted already: only make sure the core has it
                if known.state == "ready" and found.name not in view.nodes:
                    actions.append(self._join(known, now))
                continue
            pool = next((p for p in self.pools if p.name == found.pool), None)
            itype = None
            if pool is not None:
                itype = next((t for t in pool.instance_types if t.name == found.instance_type), None)
            if itype is None:
                why = (
                    f"pool {found.pool} is not configured"
                    if pool is None
                    else f"pool {found.pool} has no instance type {found.instance_type}"
                )
                actions.append(
                    Note(
                        None,
                        "not-adopted",
                        f"{found.name} (pool {found.pool}) not adopted: {why}; left alone",
                    )
                )
                continue
            node = PoolNode(
                found.name, found.pool, itype, "booting", itype.capacity(), launched_at=found.launched_at
            )
            self.nodes[found.name] = node
            if found.state == "ready":
                actions.append(self._join(node, now))
            message = f"{found.state} after a control-plane restart (launched at {found.launched_at:g})"
            self.attempts.append(
                Attempt(now, found.pool, itype.name, itype.region, found.name, "adopted", message=message)
            )
            adopted.append(found.name)
        actions.append(Note(None, "adopted", f"adopted {len(adopted)} pool nodes"))
        # A node joining here is empty: counted idle whether or not the scheduler has it yet.
        self._snapshot(view)
        return Adoption(adopted, actions)

    # ------------------------------------------------------------------ events

    def _start(
        self, pool: str, itype: InstanceType, workloads: tuple[str, ...], now: float, actions: list[Action]
    ) -> None:
        self._seq += 1
        name = f"{pool}-{itype.name}-{self._seq:04d}"
        self.nodes[name] = PoolNode(name, pool, itype, "booting", itype.capacity(), launched_at=now)
        attempt = Attempt(now, pool, itype.name, itype.region, name, "launching", workloads)
        self._launch[name] = attempt
        self.attempts.append(attempt)
        actions.append(Launch(pool, itype, name))

    def _observe(self, event: ProviderEvent, now: float, actions: list[Action]) -> None:
        node = self.nodes.get(event.name)
        if node is None:
            return
        attempt = self._launch.pop(event.name, None)
        if isinstance(event, Booted):
            actions.append(self._join(node, now))
            if attempt is not None:
                self.attempts.append(_with(attempt, now, "booted", f"up after {now - attempt.at:g}s"))
        elif isinstance(event, LaunchFailed):
            del self.nodes[event.name]
            itype = node.instance_type
            self.blocked[(node.pool, itype.name, itype.region)] = now + self.block_seconds
            if attempt is not None:
                self.attempts.append(_with(attempt, now, event.kind, event.message))
            actions.append(Note(None, event.kind, f"{itype.name} in {itype.region}: {event.message}"))
        elif isinstance(event, Terminated):
            del self.nodes[event.name]
            actions.append(RemoveNode(event.name))

    @staticmethod
    def _join(node: PoolNode, now: float) -> JoinNode:
        """A node that is up joins the scheduler, labelled with its pool, instance type, region
        and GPU type; it is ready and idle from ``now``."""
        node.state = "ready"
        node.idle_since = now
        itype = node.instance_type
        labels = {POOL_LABEL: node.pool, INSTANCE_LABEL: itype.name, REGION_LABEL: itype.region}
        if itype.gpu_type:
            labels[GPU_TYPE_LABEL] = itype.gpu_type
        return JoinNode(NodeSpec(node.name, itype.capacity(), labels))

    def _refresh(self, view: PoolView) -> None:
        """Free room and idle time of ready nodes, from the scheduler's view."""
        for node in self.nodes.values():
            if node.state != "ready":
                continue
            core_node = view.nodes.get(node.name)
            if core_node is None:
                continue
            node.free = {k: max(0, v) for k, v in core_node.avail.items()}
            if core_node.allocations or core_node.held:
                node.idle_since = None
            elif node.idle_since is None:
                node.idle_since = view.now

    def _account(self, now: float) -> None:
        """Add the time since the last tick at the rates in force since then: the pool as the last
        ``plan`` left it (nodes, GPUs, idle GPUs, cost), not as this tick's observations left it
        (a job that finished at ``now`` held its GPUs until ``now``)."""
        if self._last is not None and now > self._last:
            dt = now - self._last
            nodes, gpus, idle, cost = self._rates
            self.node_seconds += dt * nodes
            self.gpu_seconds += dt * gpus
            self.idle_gpu_seconds += dt * idle
            self.cost += dt / 3600.0 * cost
        self._last = now

    def _snapshot(self, view: PoolView) -> None:
        """The accounting rates from now until the next tick: every node launched and not yet
        gone counts (booting ones too); a GPU is idle when nothing is allocated on it (every GPU
        of a booting node is; free shares of a GPU count their part)."""
        nodes = gpus = 0
        idle: float = 0
        cost = 0.0
        for node in self.nodes.values():
            itype = node.instance_type
            nodes += 1
            gpus += itype.gpus
            cost += itype.hourly_cost
            core_node = view.nodes.get(node.name)
            idle += itype.gpus if core_node is None else gpus_from_milli(max(0, core_node.free_gpu_milli()))
        self._rates = (nodes, gpus, idle, cost)

    # ------------------------------------------------------------------ compaction

    def _compact(self, view: PoolView, actions: list[Action]) -> CompactionPlan:
        candidates = []
        for node in self.nodes.values():
            core_node = view.nodes.get(node.name)
            if node.state != "ready" or core_node is None or not core_node.allocations:
                continue
            if node.name in self.draining:
                continue
            cap = node.instance_type.gpus
            if cap and core_node.free_gpu_milli() * 2 >= cap * GPU_MILLI:  # at most half used: worth emptying
                candidates.append(node.name)
        pool_nodes = [
            n
            for n in view.nodes.values()
            if n.schedulable and (self.compact_onto_empty or n.allocations or n.held)
        ]
        wanted = wanted_gangs(view.apps.values())
        plan = plan_compaction(
            pool_nodes,
            budget=self.compaction_budget,
            wanted_gangs=wanted,
            scale_down_candidates=candidates if not wanted else (),
            movable=view.movable(),
        )
        for free in plan.frees:
            actions.append(Cordon(free.node))  # nothing lands back on it
            self.draining[free.node] = (free.purpose, free.for_app)
            actions.append(Note(None, "compaction", f"cordon {free.node} to {free.moves[0].reason}"))
            for move in free.moves:
                self.moves += 1
                actions.append(MoveWorkload(move.app, f"moved by compaction: {move.reason}"))
        return plan

    def _drained(self, view: PoolView, actions: list[Action]) -> None:
        """Cordoned nodes that are empty now: give them to their gang, or let them go."""
        for name, (purpose, app_id) in list(self.draining.items()):
            core_node = view.nodes.get(name)
            if core_node is None:
                del self.draining[name]
                continue
            if core_node.allocations:
                continue
            del self.draining[name]
            if purpose == "gang" and app_id is not None and app_id in view.apps:
                actions.append(Cordon(name, schedulable=True))
                actions.append(HoldFor(app_id, name))
                actions.append(Note(app_id, "compaction", f"{name} is free and held for {app_id}"))
            elif name in self.nodes:
                node = self.nodes[name]
                node.state = "terminating"
                actions.append(Note(None, "scale-down", f"{name}: emptied by compaction"))
                actions.append(Terminate(name))
            else:
                actions.append(Cordon(name, schedulable=True))

    def history(self, workload_id: str) -> list[Attempt]:
        return [a for a in self.attempts if workload_id in a.for_workloads]


def _seq_of(name: str) -> int:
    """The launch number at the end of a node name (``gpu-h100-east-0007`` -> 7); 0 if none."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _with(a: Attempt, at: float, outcome: str, message: str) -> Attempt:
    return Attempt(at, a.pool, a.instance_type, a.region, a.node, outcome, a.for_workloads, message)
