"""The autoscaler: grows and shrinks node pools through a node provider, every driver tick.

It keeps the pool nodes (booting, ready), asks the pure planner (``gpupool.core.capacity``) what
to launch and what may go, and carries that out through a ``NodeProvider`` (the simulated cloud,
or local Ray nodes). A node that finished booting joins the scheduler with its pool, instance
type and region as labels; a node scaled down leaves it after it is cordoned.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gpupool.core.capacity import (
    INSTANCE_LABEL,
    POOL_LABEL,
    REGION_LABEL,
    Arrival,
    BurstMemory,
    CapacityPlan,
    Demand,
    PoolNode,
    plan_capacity,
)
from gpupool.core.compaction import CompactionPlan, plan_compaction
from gpupool.core.config import InstanceType, NodePool
from gpupool.core.decisions import Code
from gpupool.core.model import Ask, NodeSpec
from gpupool.core.queues import Queue
from gpupool.core.resources import GPU_TYPE_LABEL, Resources, gpu_count, within_max

if TYPE_CHECKING:
    from gpupool.engine.driver import Driver
    from gpupool.engine.model import Workload

# Asks waiting for these reasons would run on a new node; quota-blocked ones would not.
_NEEDS_NODE = frozenset({Code.NO_NODE, Code.GANG_WAITING})


@dataclass(frozen=True, slots=True)
class Booted:
    """A launched node is up and can take work."""

    name: str


@dataclass(frozen=True, slots=True)
class LaunchFailed:
    """A launch did not give a node: ``kind`` is ``stockout`` or ``boot-failure``."""

    name: str
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Terminated:
    name: str


ProviderEvent = Booted | LaunchFailed | Terminated


@dataclass(frozen=True, slots=True)
class ProviderNode:
    """A node the provider launched and has not terminated, as its ``inventory`` lists it."""

    name: str
    pool: str
    instance_type: str  # the instance type's name
    state: str  # "booting" (no Booted reported yet) | "ready"
    launched_at: float


class NodeProvider(Protocol):
    """Launches and terminates machines of a pool. Calls return fast; outcomes come from poll."""

    def launch(self, pool: str, itype: InstanceType, name: str, now: float) -> None: ...

    def terminate(self, name: str, now: float) -> None: ...

    def poll(self, now: float) -> list[ProviderEvent]: ...

    def next_time(self) -> float | None:
        """When the next event is due (the simulator ticks then); None if none is pending."""

    def inventory(self) -> list[ProviderNode]:
        """The nodes launched and not terminated (a restarted control plane adopts them)."""


@dataclass(frozen=True, slots=True)
class Attempt:
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
    _rates: tuple[int, int, int, float] = (0, 0, 0, 0.0)  # nodes, GPUs, idle GPUs, cost/h
    # Compaction: every ``compaction_interval`` seconds, move at most ``compaction_budget``
    # checkpointable workloads to free whole nodes (0 = off).
    compaction_budget: int = 0
    compaction_interval: float = 300.0
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
                max(p.headroom_window for p in series), max(p.headroom_memory for p in series)
            )

    def peaks(self, now: float) -> dict[tuple[str, tuple[str, ...]], int]:
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
        gpus = sum(gpu_count(g.resources) for _, g in members)
        if queue is not None and any(
            q.max and not within_max(q.allocated, q.pending, q.max) for q in queue.ancestors()
        ):
            gpus = 0  # its queue's pending asks (its own included) are beyond the max
        if gpus > 0:
            types = next((g.gpu_types for _, g in members if g.gpu_types), ())
            arrival = Arrival(now, gpus, tuple(types), queue.path if queue is not None else "")
            self.arrivals.append(arrival)
            if self.bursts is not None:
                self.bursts.add(arrival)
        while self.arrivals and self.arrivals[0].at < now - window:
            self.arrivals.popleft()

    def observe(self, driver: Driver, now: float) -> None:
        """Before the scheduling cycles: nodes that booted join, failed launches are recorded."""
        self._account(driver, now)
        for event in self.provider.poll(now):
            self._observe(driver, event, now)

    def act(self, driver: Driver, now: float) -> CapacityPlan:
        """After the scheduling cycles: plan with the demand they left, and carry it out."""
        self._refresh(driver, now)
        self._drained(driver, now)
        if self.compaction_budget and now >= self._next_compaction:
            self._next_compaction = now + self.compaction_interval
            self._compact(driver, now)
        blocked = {k for k, until in self.blocked.items() if until > now}
        plan = plan_capacity(
            self.pools,
            self.nodes.values(),
            self._demand(driver),
            blocked,
            now,
            ready_room=self.demand == "all",
            arrivals=tuple(self.arrivals),
            peaks=self.peaks(now),
        )
        self.last_plan = plan
        for up in plan.scale_up:
            for _ in range(up.count):
                self._start(up.pool, up.instance_type, up.for_workloads, now)
        for down in plan.scale_down:
            node = self.nodes.get(down.node)
            if node is None or node.state != "ready":
                continue
            core_node = driver.core.nodes.get(down.node)
            if core_node is not None and core_node.allocations:
                continue  # something landed on it since the plan
            if core_node is not None:
                driver.core.set_schedulable(down.node, False)  # cordon, then terminate
            node.state = "terminating"
            driver.journal.event(None, now, "scale-down", f"{down.node}: {down.reason}")
            self.provider.terminate(down.node, now)
        self._snapshot(driver)
        return plan

    def adopt(self, driver: Driver, now: float) -> list[str]:
        """Take back the nodes the provider still runs (after a control-plane restart).

        Called once, before the first tick and before workloads are restored onto their nodes.
        A ready node joins the scheduler as a booted one does (idle since ``now``); a booting one
        stays booting until its ``Booted``. Each is recorded in ``attempts`` as ``adopted``. A
        node of a pool or instance type not configured is left alone, with a journal event.
        Returns the names adopted.
        """
        self._account(driver, now)
        adopted: list[str] = []
        for found in sorted(self.provider.inventory(), key=lambda n: n.name):
            self._seq = max(self._seq, _seq_of(found.name))  # never launch under its name again
            known = self.nodes.get(found.name)
            if known is not None:  # adopted already: only make sure the core has it
                if known.state == "ready" and found.name not in driver.core.nodes:
                    self._join(driver, known, now)
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
                driver.journal.event(
                    None,
                    now,
                    "not-adopted",
                    f"{found.name} (pool {found.pool}) not adopted: {why}; left alone",
                )
                continue
            node = PoolNode(
                found.name, found.pool, itype, "booting", itype.capacity(), launched_at=found.launched_at
            )
            self.nodes[found.name] = node
            if found.state == "ready":
                self._join(driver, node, now)
            message = f"{found.state} after a control-plane restart (launched at {found.launched_at:g})"
            self.attempts.append(
                Attempt(now, found.pool, itype.name, itype.region, found.name, "adopted", message=message)
            )
            adopted.append(found.name)
        driver.journal.event(None, now, "adopted", f"adopted {len(adopted)} pool nodes")
        self._snapshot(driver)
        return adopted

    # ------------------------------------------------------------------ events

    def _start(self, pool: str, itype: InstanceType, workloads: tuple[str, ...], now: float) -> None:
        self._seq += 1
        name = f"{pool}-{itype.name}-{self._seq:04d}"
        self.nodes[name] = PoolNode(name, pool, itype, "booting", itype.capacity(), launched_at=now)
        attempt = Attempt(now, pool, itype.name, itype.region, name, "launching", workloads)
        self._launch[name] = attempt
        self.attempts.append(attempt)
        self.provider.launch(pool, itype, name, now)

    def _observe(self, driver: Driver, event: ProviderEvent, now: float) -> None:
        node = self.nodes.get(event.name)
        if node is None:
            return
        attempt = self._launch.pop(event.name, None)
        if isinstance(event, Booted):
            self._join(driver, node, now)
            if attempt is not None:
                self.attempts.append(_with(attempt, now, "booted", f"up after {now - attempt.at:g}s"))
        elif isinstance(event, LaunchFailed):
            del self.nodes[event.name]
            itype = node.instance_type
            self.blocked[(node.pool, itype.name, itype.region)] = now + self.block_seconds
            if attempt is not None:
                self.attempts.append(_with(attempt, now, event.kind, event.message))
            driver.journal.event(None, now, event.kind, f"{itype.name} in {itype.region}: {event.message}")
        elif isinstance(event, Terminated):
            del self.nodes[event.name]
            if event.name in driver.core.nodes:
                driver.observe_node_gone(event.name, now)

    @staticmethod
    def _join(driver: Driver, node: PoolNode, now: float) -> None:
        """A node that is up joins the scheduler, labelled with its pool, instance type, region
        and GPU type; it is ready and idle from ``now``."""
        node.state = "ready"
        node.idle_since = now
        itype = node.instance_type
        labels = {POOL_LABEL: node.pool, INSTANCE_LABEL: itype.name, REGION_LABEL: itype.region}
        if itype.gpu_type:
            labels[GPU_TYPE_LABEL] = itype.gpu_type
        driver.observe_node_up(NodeSpec(node.name, itype.capacity(), labels), now)

    def _refresh(self, driver: Driver, now: float) -> None:
        """Free room and idle time of ready nodes, from the scheduler's view."""
        for node in self.nodes.values():
            if node.state != "ready":
                continue
            core_node = driver.core.nodes.get(node.name)
            if core_node is None:
                continue
            node.free = {k: max(0, v) for k, v in core_node.avail.items()}
            if core_node.allocations or core_node.held:
                node.idle_since = None
            elif node.idle_since is None:
                node.idle_since = now

    def _demand(self, driver: Driver) -> list[Demand]:
        """Waiting workloads that a new node would let run (with ``demand="all"``: every waiting
        workload), in the order they were submitted."""
        by_app: dict[str, list[Ask]] = {}
        every = self.demand == "all"
        for ask in driver.core.asks.values():
            if ask.reserved_node is not None:
                continue
            if not every and (ask.reason is None or ask.reason.code not in _NEEDS_NODE):
                continue
            by_app.setdefault(ask.app.id, []).append(ask)
        out: list[Demand] = []
        # Quota-aware: a queue's demand counts only up to what its max (and its parents') still
        # allows, so asks submitted together beyond a team's max never launch nodes.
        planned: dict[str, dict[str, int]] = {}
        for app_id in sorted(by_app, key=lambda a: driver.core.apps[a].seq):
            asks = by_app[app_id]
            members = tuple(a.resources for a in asks)
            types = asks[0].gpu_types
            app = driver.core.apps[app_id]
            if not every and app.queue is not None and not self._within_quota(app.queue, members, planned):
                continue
            # A standard size's further shapes, the whole gang at once (as the core places it).
            rounds = max(len(a.shapes) for a in asks)
            alternatives = tuple(
                (
                    tuple(a.shapes[min(i, len(a.shapes) - 1)][0] for a in asks),
                    asks[0].shapes[min(i, len(asks[0].shapes) - 1)][1],
                )
                for i in range(1, rounds)
            )
            span = app.gang is not None and app.gang.span_regions
            out.append(Demand(app_id, members, types, alternatives=alternatives, span_regions=span))
        return out

    @staticmethod
    def _within_quota(
        leaf: Queue, members: tuple[Resources, ...], planned: dict[str, dict[str, int]]
    ) -> bool:
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

    def _account(self, driver: Driver, now: float) -> None:
        """Add the time since the last tick at the rates in force since then: the pool as the last
        ``act`` left it (nodes, GPUs, idle GPUs, cost), not as this tick's observations left it
        (a job that finished at ``now`` held its GPUs until ``now``)."""
        if self._last is not None and now > self._last:
            dt = now - self._last
            nodes, gpus, idle, cost = self._rates
            self.node_seconds += dt * nodes
            self.gpu_seconds += dt * gpus
            self.idle_gpu_seconds += dt * idle
            self.cost += dt / 3600.0 * cost
        self._last = now

    def _snapshot(self, driver: Driver) -> None:
        """The accounting rates from now until the next tick: every node launched and not yet
        gone counts (booting ones too); a GPU is idle when nothing is allocated on it (every GPU
        of a booting node is)."""
        nodes = gpus = idle = 0
        cost = 0.0
        for node in self.nodes.values():
            itype = node.instance_type
            nodes += 1
            gpus += itype.gpus
            cost += itype.hourly_cost
            core_node = driver.core.nodes.get(node.name)
            idle += itype.gpus if core_node is None else max(0, core_node.free_gpus())
        self._rates = (nodes, gpus, idle, cost)

    # ------------------------------------------------------------------ compaction

    def _compact(self, driver: Driver, now: float) -> CompactionPlan:
        core = driver.core
        movable = {
            w.id
            for w in driver.workloads.values()
            if w.state.value == "running" and w.spec.disruption.policy != "never"
        }
        wanted: list[tuple[str, dict[str, int], tuple[str, ...]]] = []
        for app in core.apps.values():
            if not app.asks or app.gang is None:
                continue
            ask = next(iter(app.asks.values()))
            if ask.reason is None or ask.reason.code not in _NEEDS_NODE or ask.reserved_node is not None:
                continue
            wanted.append((app.id, ask.resources, ask.gpu_types))
        candidates = []
        for node in self.nodes.values():
            core_node = core.nodes.get(node.name)
            if node.state != "ready" or core_node is None or not core_node.allocations:
                continue
            if node.name in self.draining:
                continue
            cap = node.instance_type.gpus
            if cap and core_node.free_gpus() * 2 >= cap:  # at most half used: worth emptying
                candidates.append(node.name)
        pool_nodes = [
            n
            for n in core.nodes.values()
            if n.schedulable and (self.compact_onto_empty or n.allocations or n.held)
        ]
        plan = plan_compaction(
            pool_nodes,
            budget=self.compaction_budget,
            wanted_gangs=wanted,
            scale_down_candidates=candidates if not wanted else (),
            movable=movable,
        )
        for free in plan.frees:
            core.set_schedulable(free.node, False)  # cordon: nothing lands back on it
            self.draining[free.node] = (free.purpose, free.for_app)
            driver.journal.event(None, now, "compaction", f"cordon {free.node} to {free.moves[0].reason}")
            for move in free.moves:
                self.moves += 1
                driver.move(move.app, now, f"moved by compaction: {move.reason}")
        return plan

    def _drained(self, driver: Driver, now: float) -> None:
        """Cordoned nodes that are empty now: give them to their gang, or let them go."""
        core = driver.core
        for name, (purpose, app_id) in list(self.draining.items()):
            core_node = core.nodes.get(name)
            if core_node is None:
                del self.draining[name]
                continue
            if core_node.allocations:
                continue
            del self.draining[name]
            if purpose == "gang" and app_id is not None and app_id in core.apps:
                core.set_schedulable(name, True)
                core.reserve_for(app_id, name)
                driver.journal.event(app_id, now, "compaction", f"{name} is free and held for {app_id}")
            elif name in self.nodes:
                node = self.nodes[name]
                node.state = "terminating"
                driver.journal.event(None, now, "scale-down", f"{name}: emptied by compaction")
                self.provider.terminate(name, now)
            else:
                core.set_schedulable(name, True)

    def history(self, workload_id: str) -> list[Attempt]:
        return [a for a in self.attempts if workload_id in a.for_workloads]


def _seq_of(name: str) -> int:
    """The launch number at the end of a node name (``gpu-h100-east-0007`` -> 7); 0 if none."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _with(a: Attempt, at: float, outcome: str, message: str) -> Attempt:
    return Attempt(at, a.pool, a.instance_type, a.region, a.node, outcome, a.for_workloads, message)
