"""``gpupool bench throughput``: how fast the scheduling core allocates, at production scale.

A seeded synthetic cluster (8-GPU nodes of three GPU models), a three-level queue tree with
guarantees and maxes, and asks of 1, 2, 4 and 8 GPUs, a quarter of them in gangs of 2-8
members; preemption is on. The run has two parts, both timed only inside ``schedule()``:

1. fill: every ask is pending at t=0 (old enough to preempt); cycles run until nothing changes;
2. churn: each simulated second a few percent of the running allocations finish, and one cycle
   runs; preempted allocations are released at once.

``allocations_per_sec`` is the number of placements divided by the time spent in cycles. The
objects the process holds before the run (imported modules) are frozen out of the garbage
collector for its duration (``gc.freeze``), so that the figure does not depend on what else the
command imported; what the scheduler makes is collected as usual.
"""

from __future__ import annotations

import gc
import random
import resource
import time
from dataclasses import dataclass
from typing import Any

from gpupool.config.queues import DEFAULT_PARTITION
from gpupool.core.config import (
    DEFAULT_NODE_SORT_POLICY,
    NODE_SORT_POLICIES,
    NodeSortPolicy,
    PartitionConfig,
    QueueConfig,
)
from gpupool.core.decisions import Place, Preempt
from gpupool.core.model import GangSpec, NodeSpec
from gpupool.core.nodes import make_scorer
from gpupool.core.resources import GPU_MILLI
from gpupool.core.scheduler import Scheduler

GPU_MODELS = ("H100", "A100", "L40S")
ASK_GPUS = (1, 2, 4, 8)
ASK_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
SHARE_MILLI = 250  # the GPU share of a fractional ask (--fractional)


@dataclass(frozen=True, slots=True)
class ThroughputConfig:
    """The size and shape of one `bench throughput` run (nodes, asks, queues, policy, churn)."""

    nodes: int = 5000
    asks: int = 50_000
    queues: int = 100
    policy: str = DEFAULT_NODE_SORT_POLICY  # the core's default node sort policy
    seed: int = 42
    churn_steps: int = 60
    churn_fraction: float = 0.02
    fractional: float = 0.0  # share of the applications whose asks are 250 milli-GPU of one GPU


def build_queues(n_leaves: int, cluster_gpus: int, rng: random.Random) -> QueueConfig:
    """A three-level tree (root -> departments -> teams) with ``n_leaves`` leaf queues."""
    departments = max(1, round(n_leaves**0.5))
    per_dept = [
        n_leaves // departments + (1 if i < n_leaves % departments else 0) for i in range(departments)
    ]
    dept_cfgs = []
    for d, teams in enumerate(per_dept):
        dept_gpus = cluster_gpus // departments
        team_cfgs = []
        for t in range(teams):
            guaranteed = max(1, dept_gpus // max(1, teams) // 2)
            team_cfgs.append(
                QueueConfig(
                    name=f"team{t}",
                    guaranteed={"gpu": guaranteed * GPU_MILLI},
                    max={"gpu": max(guaranteed, int(dept_gpus * rng.uniform(0.3, 0.8))) * GPU_MILLI},
                )
            )
        dept_cfgs.append(
            QueueConfig(
                name=f"dept{d}",
                guaranteed={"gpu": dept_gpus * 3 // 4 * GPU_MILLI},
                max={"gpu": int(cluster_gpus * 0.6) * GPU_MILLI},
                queues=tuple(team_cfgs),
            )
        )
    return QueueConfig(name="root", submit_acl="*", queues=tuple(dept_cfgs), parent=True)


@dataclass(frozen=True, slots=True)
class _AppPlan:
    app_id: str
    leaf: str
    gang: bool
    priority: int
    types: tuple[str, ...]
    asks: tuple[tuple[str, dict[str, int]], ...]


def build(cfg: ThroughputConfig) -> tuple[Scheduler, list[_AppPlan]]:
    """The cluster and queues, and the workload: a list of applications in arrival order."""
    rng = random.Random(cfg.seed)
    root = build_queues(cfg.queues, cfg.nodes * 8, rng)
    partition = PartitionConfig(
        name=DEFAULT_PARTITION,
        root=root,
        node_sort_policy=NodeSortPolicy(type=cfg.policy),
        preemption_enabled=True,
    )
    sched = Scheduler(partition, scorer=scorer_for(cfg.policy))
    for i in range(cfg.nodes):
        model = GPU_MODELS[i % len(GPU_MODELS)]
        sched.add_node(
            NodeSpec(
                f"node-{i:05d}",
                {"gpu": 8 * GPU_MILLI, "vcore": 96_000, "memory": 1024 * 2**30},
                {"gpu-type": model},
            )
        )
    leaves = [q.path for q in sched.root.leaves()]
    # Skewed demand: a few teams submit most of the work, so they borrow beyond their guarantee
    # and later arrivals of the other teams preempt them back.
    popularity = [1.0 / (i + 1) for i in range(len(leaves))]
    plans: list[_AppPlan] = []
    made = 0
    # Its own random stream, so that --fractional 0 gives the same workload as before.
    shares = random.Random(cfg.seed + 7)
    while made < cfg.asks:
        leaf = rng.choices(leaves, popularity)[0]
        gpus = rng.choices(ASK_GPUS, ASK_WEIGHTS)[0]
        gang = rng.random() < 0.25
        members = min(rng.randint(2, 8), cfg.asks - made) if gang else 1
        app_id = f"app-{len(plans)}"
        types = () if rng.random() < 0.6 else (rng.choice(GPU_MODELS),)
        res = {"gpu": gpus * GPU_MILLI, "vcore": gpus * 8000, "memory": gpus * 64 * 2**30}
        if cfg.fractional and shares.random() < cfg.fractional:
            res = {"gpu": SHARE_MILLI, "vcore": 2000, "memory": 16 * 2**30}
        asks = tuple((f"{app_id}-{m}", res) for m in range(members))
        plans.append(_AppPlan(app_id, leaf, gang, rng.choice((0, 0, 0, 10)), types, asks))
        made += members
    return sched, plans


def _submit(sched: Scheduler, plan: _AppPlan, created: float) -> None:
    sched.submit(
        plan.app_id,
        queue=plan.leaf,
        user=f"user-{plan.leaf}",
        gang=GangSpec("soft") if plan.gang else None,
    )
    for ask_id, res in plan.asks:
        sched.add_ask(plan.app_id, ask_id, res, created=created, priority=plan.priority, gpu_types=plan.types)


POLICIES = NODE_SORT_POLICIES


def scorer_for(policy: str) -> Any:
    """The core's node scorer of ``policy`` with its default weights."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (expected one of {', '.join(POLICIES)})")
    return make_scorer(policy, None)


def run(
    cfg: ThroughputConfig, progress: Any = None, series: list[tuple[float, float, int]] | None = None
) -> dict[str, Any]:
    """Run the benchmark; ``series`` (if given) collects (simulated time, cycle ms, placements)."""
    # What the process made before the run (the CLI imports the whole service) is not the core's:
    # out of the collector's way while the run lasts, its full passes scan only what the run makes.
    gc.collect()
    gc.freeze()
    try:
        return _run(cfg, progress, series)
    finally:
        gc.unfreeze()


def _run(
    cfg: ThroughputConfig, progress: Any = None, series: list[tuple[float, float, int]] | None = None
) -> dict[str, Any]:
    start_all = time.perf_counter()
    sched, plans = build(cfg)
    rng = random.Random(cfg.seed + 1)
    initial = int(len(plans) * 0.8)
    for plan in plans[:initial]:
        _submit(sched, plan, created=-60.0)
    later = plans[initial:]
    per_step = -(-len(later) // max(1, cfg.churn_steps))
    cycle_ms: list[float] = []
    allocations = preemptions = 0
    busy = 0.0

    def cycle(now: float) -> bool:
        nonlocal allocations, preemptions, busy
        t0 = time.perf_counter()
        result = sched.schedule(now)
        dt = time.perf_counter() - t0
        busy += dt
        cycle_ms.append(dt * 1000.0)
        if series is not None:
            series.append((now, dt * 1000.0, len(result.placed())))
        for d in result.decisions:
            if isinstance(d, Place):
                allocations += 1
            elif isinstance(d, Preempt):
                preemptions += 1
                sched.release(d.alloc_id)
        return result.changed

    for _ in range(10_000):
        if not cycle(0.0):
            break
    if progress:
        progress(0, cfg.churn_steps)
    for step in range(1, cfg.churn_steps + 1):
        now = float(step * 20)
        running = sorted(sched.allocations)
        for alloc_id in rng.sample(running, int(len(running) * cfg.churn_fraction)):
            sched.release(alloc_id)
        for plan in later[(step - 1) * per_step : step * per_step]:
            _submit(sched, plan, created=now - 60.0)
        cycle(now)
        if progress:
            progress(step, cfg.churn_steps)
    cycle_ms.sort()
    return {
        "nodes": cfg.nodes,
        "asks": cfg.asks,
        "queues": len(sched.root.leaves()),
        "policy": cfg.policy,
        "fractional": cfg.fractional,
        "allocations": allocations,
        "preemptions": preemptions,
        "cycles": len(cycle_ms),
        "allocations_per_sec": round(allocations / busy, 1) if busy else 0.0,
        "cycle_ms_p50": round(_pct(cycle_ms, 50), 3),
        "cycle_ms_p99": round(_pct(cycle_ms, 99), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "scheduling_seconds": round(busy, 3),
        "seconds": round(time.perf_counter() - start_all, 3),
    }


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    i = min(len(values) - 1, max(0, round(pct / 100.0 * (len(values) - 1))))
    return values[i]
