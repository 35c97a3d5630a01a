"""Small builders for driving the real scheduling core in tests: no mocks, just a partition and a clock.

``partition(...)`` turns a compact queue description into a validated ``PartitionConfig`` through
``parse_config`` (the same path a queues.yaml takes). ``World`` wraps a ``Scheduler`` with short
helpers and a ``settle`` loop that runs cycles the way the scenario runner does: at one instant
until nothing changes, releasing preempted allocations at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gpupool.config import parse_config
from gpupool.core.config import PartitionConfig
from gpupool.core.decisions import CycleResult, Decision, Fail, Place, Preempt, Reason, Reject
from gpupool.core.model import Allocation, GangSpec, NodeSpec
from gpupool.core.resources import from_gpus
from gpupool.core.scheduler import Scheduler

MAX_CYCLES = 10_000
GPU8 = {"gpu": 8}  # in GPUs, as the World helpers take them


def core_units(res: dict[str, Any]) -> dict[str, int]:
    """``res`` with its GPU quantities written as people write them (``2``, ``0.25``) turned into
    the core's milli-GPU; every other quantity is already in the core's unit."""
    return from_gpus(res)


def config_dict(
    queues: list[dict[str, Any]], *, root: dict[str, Any] | None = None, **partition_keys: Any
) -> dict[str, Any]:
    """A one-partition YuniKorn config whose root (submitacl '*' unless given) has ``queues`` as children."""
    root_queue: dict[str, Any] = {"name": "root", "submitacl": "*", **(root or {})}
    if queues:
        root_queue["queues"] = queues
    return {"partitions": [{"name": "default", "queues": [root_queue], **partition_keys}]}


def partition(
    queues: list[dict[str, Any]], *, root: dict[str, Any] | None = None, **partition_keys: Any
) -> PartitionConfig:
    return parse_config(config_dict(queues, root=root, **partition_keys), "test").partition()


def q(name: str, *children: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """One queue: ``q("team", guaranteed={"gpu": 4}, max={"gpu": 8}, properties={...})``."""
    out: dict[str, Any] = {"name": name}
    resources = {k: keys.pop(k) for k in ("guaranteed", "max") if k in keys}
    if resources:
        out["resources"] = resources
    out.update(keys)
    if children:
        out["queues"] = list(children)
    return out


class World:
    """A scheduler plus helpers; every helper returns what the scheduler returned."""

    def __init__(self, *queues: dict[str, Any], root: dict[str, Any] | None = None, **partition_keys: Any):
        self.config = partition(list(queues), root=root, **partition_keys)
        self.s = Scheduler(self.config)
        self.preempted: list[str] = []
        self.decisions: list[Decision] = []

    # ---- setup -----------------------------------------------------------------------------

    def node(
        self, name: str, labels: dict[str, str] | None = None, schedulable: bool = True, **cap: float
    ) -> World:
        """Add a node; ``gpu`` in GPUs, the rest in the core's units."""
        self.s.add_node(NodeSpec(name, core_units(cap), dict(labels or {}), schedulable))
        return self

    def nodes(self, count: int, prefix: str = "node", gpu_type: str | None = None, **cap: int) -> World:
        labels = {"gpu-type": gpu_type} if gpu_type else None
        for i in range(1, count + 1):
            self.node(f"{prefix}-{i}", labels, True, **cap)
        return self

    def app(
        self,
        app_id: str,
        queue: str | None = None,
        *,
        user: str = "anonymous",
        groups: Iterable[str] = (),
        tags: dict[str, str] | None = None,
        gang: GangSpec | None = None,
        forced: bool = False,
    ) -> Reject | None:
        return self.s.submit(
            app_id, queue=queue, user=user, groups=groups, tags=tags, gang=gang, forced=forced
        )

    def ask(self, ask_id: str, app_id: str, *, created: float = 0.0, **kwargs: Any) -> Reject | None:
        """Add an ask; ``res`` (and ``alternatives``) with GPUs in GPUs (``0.25`` is a share)."""
        resources = core_units(kwargs.pop("res"))
        if "alternatives" in kwargs:
            kwargs["alternatives"] = [(core_units(r), t) for r, t in kwargs["alternatives"]]
        return self.s.add_ask(app_id, ask_id, resources, created=created, **kwargs)

    def running(
        self,
        alloc_id: str,
        app_id: str,
        node: str,
        res: dict[str, int],
        *,
        queue: str | None = None,
        start: float = -600.0,
        **kwargs: Any,
    ) -> Allocation:
        if app_id not in self.s.apps:
            self.s.submit(app_id, queue=queue, forced=True)
        return self.s.restore(alloc_id, app_id, node, core_units(res), start=start, **kwargs)

    # ---- running ---------------------------------------------------------------------------

    def cycle(self, now: float = 0.0) -> CycleResult:
        result = self.s.schedule(now)
        self.decisions.extend(result.decisions)
        return result

    def settle(self, now: float = 0.0, *, release_preempted: bool = True) -> list[Decision]:
        """Cycles at ``now`` until one changes nothing; returns every decision taken."""
        out: list[Decision] = []
        for _ in range(MAX_CYCLES):
            result = self.cycle(now)
            if not result.changed:
                return out
            out.extend(result.decisions)
            for d in result.decisions:
                if isinstance(d, Preempt):
                    self.preempted.append(d.alloc_id)
                    if release_preempted:
                        self.s.release(d.alloc_id)
        raise AssertionError(f"no steady state after {MAX_CYCLES} cycles at t={now}")

    def run_until(self, end: float, start: float = 0.0) -> list[Decision]:
        out: list[Decision] = []
        t = start
        while t <= end:
            out.extend(self.settle(t))
            t += 1.0
        return out

    # ---- looking -----------------------------------------------------------------------------

    def placed(self) -> dict[str, str]:
        return {
            d.ask_id: d.node
            for d in self.decisions
            if isinstance(d, Place) and d.ask_id in self.s.allocations
        }

    def node_of(self, alloc_id: str) -> str:
        return self.s.allocations[alloc_id].node.name

    def why(self, ask_id: str) -> Reason:
        return self.s.explain(ask_id)

    def state(self, app_id: str) -> str:
        return self.s.apps[app_id].state.value

    def usage(self, queue: str) -> dict[str, int]:
        return {k: v for k, v in self.s.queues[queue].allocated.items() if v}


def places(decisions: Iterable[Decision]) -> list[Place]:
    return [d for d in decisions if isinstance(d, Place)]


def preempts(decisions: Iterable[Decision]) -> list[Preempt]:
    return [d for d in decisions if isinstance(d, Preempt)]


def fails(decisions: Iterable[Decision]) -> list[Fail]:
    return [d for d in decisions if isinstance(d, Fail)]


def two_teams(**partition_keys: Any) -> World:
    """research (guaranteed 8) and batch (no guarantee) on two 8-GPU nodes, both held by batch."""
    w = World(q("research", guaranteed={"gpu": 8}), q("batch"), **partition_keys)
    w.nodes(2, gpu=8)
    w.running("b1", "app-batch", "node-1", GPU8, queue="root.batch", start=-600)
    w.running("b2", "app-batch", "node-2", GPU8, start=-300)
    w.app("app-train", "root.research")
    return w
