"""The autoscaler in the driver loop, with the simulated cloud as node provider."""

from __future__ import annotations

from gpupool.adapters.simcloud import SimCloud, Stockout
from gpupool.core.capacity import POOL_LABEL, REGION_LABEL
from gpupool.core.config import InstanceType, NodePool
from gpupool.core.configparse import parse_config
from gpupool.core.scheduler import Scheduler
from gpupool.engine.autoscaler import Autoscaler
from gpupool.engine.driver import Driver
from gpupool.engine.model import Disruption, TaskGroup, WorkloadSpec, WorkloadState
from test_engine import CONFIG, StepExecutor

EAST = InstanceType("h100-east", "H100", 8, 96_000, 2**40, region="east", hourly_cost=90, boot_time=100)
WEST = InstanceType("h100-west", "H100", 8, 96_000, 2**40, region="west", hourly_cost=95, boot_time=120)


def make(cloud: SimCloud, **pool_kw) -> tuple[Driver, StepExecutor, Autoscaler]:
    pool = NodePool("gpu", (EAST, WEST), **{"max": 6, "idle_timeout": 300, **pool_kw})
    scaler = Autoscaler((pool,), cloud, block_seconds=600)
    ex = StepExecutor()
    return Driver(Scheduler(parse_config(CONFIG).partition("default")), ex, autoscaler=scaler), ex, scaler


def job(gpus: int, members: int = 1, queue: str = "root.a", **kw) -> WorkloadSpec:
    return WorkloadSpec(name="job", queue=queue, task_groups=(TaskGroup("w", members, {"gpu": gpus}),), **kw)


def run_until(d: Driver, cloud: SimCloud, until: float, step: float = 10.0) -> None:
    t = 0.0
    while t <= until:
        d.tick(t)
        t += step


def test_scale_up_for_a_gang_then_scale_down_when_idle():
    cloud = SimCloud(seed=1)
    d, ex, scaler = make(cloud)
    w = d.submit(job(8, members=2), now=0)
    d.tick(0)
    assert sum(1 for n in scaler.nodes.values() if n.state == "booting") == 2
    assert all(n.instance_type is EAST for n in scaler.nodes.values())  # cheapest region, one region
    run_until(d, cloud, 110)
    assert w.state == WorkloadState.RUNNING
    nodes = {d.core.nodes[n] for n in w.placement.values()}
    assert all(n.labels[POOL_LABEL] == "gpu" and n.labels[REGION_LABEL] == "east" for n in nodes)
    ex.finish(w.id)
    d.tick(120)
    d.tick(500)  # idle past the timeout
    d.tick(510)
    assert not d.core.nodes and not scaler.nodes
    assert scaler.gpu_seconds > 0 and scaler.cost > 0


def test_stockout_falls_back_to_the_next_region_and_why_shows_the_attempts():
    cloud = SimCloud(seed=1, stockouts=(Stockout("h100-east", "east"),))
    d, _, scaler = make(cloud)
    w = d.submit(job(8), now=0)
    run_until(d, cloud, 200)
    assert w.state == WorkloadState.RUNNING
    assert {a.outcome for a in scaler.history(w.id)} >= {"launching", "stockout", "booted"}
    d2, _, _ = make(
        SimCloud(seed=1, stockouts=(Stockout("h100-east", "east"), Stockout("h100-west", "west")))
    )
    w2 = d2.submit(job(8), now=0)
    run_until(d2, cloud, 100)
    lines = "\n".join(d2.why(w2.id))
    assert "stockout" in lines and "failed lately" in lines


def test_headroom_is_refilled_after_a_burst_uses_it():
    cloud = SimCloud(seed=2)
    d, _, scaler = make(cloud, headroom_nodes=1)
    run_until(d, cloud, 110)
    assert len(d.core.nodes) == 1  # one warm node
    w = d.submit(job(8), now=120)
    d.tick(120)
    assert w.state == WorkloadState.ADMITTED  # started at once on the warm node
    assert sum(1 for n in scaler.nodes.values() if n.state == "booting") == 1  # headroom refilled
    run_until(d, cloud, 250)
    assert len(d.core.nodes) == 2


def test_never_workload_keeps_its_node():
    cloud = SimCloud(seed=3)
    d, _, _ = make(cloud, idle_timeout=60)
    w = d.submit(job(4, disruption=Disruption("never")), now=0)
    run_until(d, cloud, 2000, step=50)
    assert w.state == WorkloadState.RUNNING
    assert set(w.placement.values()) <= set(d.core.nodes)


def test_boot_failures_are_retried():
    cloud = SimCloud(seed=4, boot_failure_rate=0.5)
    d, _, scaler = make(cloud)
    w = d.submit(job(8), now=0)
    run_until(d, cloud, 3000, step=20)
    assert w.state == WorkloadState.RUNNING
    outcomes = [a.outcome for a in scaler.attempts]
    assert "booted" in outcomes


def test_compaction_frees_a_node_for_a_waiting_gang():
    cloud = SimCloud(seed=5)
    pool = NodePool("gpu", (EAST,), min=2, max=2, idle_timeout=10_000)
    scaler = Autoscaler((pool,), cloud, compaction_budget=2, compaction_interval=30)
    ex = StepExecutor()
    d = Driver(Scheduler(parse_config(CONFIG).partition("default")), ex, autoscaler=scaler)
    run_until(d, cloud, 110)  # two empty nodes up (pool min)
    small = [d.submit(job(4, disruption=Disruption("checkpoint", grace=5)), now=120) for _ in range(2)]
    d.tick(120)
    d.tick(121)
    nodes_used = {n for w in small for n in w.placement.values()}
    assert all(w.state == WorkloadState.RUNNING for w in small)
    assert len(nodes_used) == 2  # the default `fair` node order spread them: no node is whole
    big = d.submit(job(8), now=130)
    run_until(d, cloud, 400)
    assert scaler.moves >= 1
    assert big.state == WorkloadState.RUNNING
    assert all(w.state in (WorkloadState.RUNNING, WorkloadState.ADMITTED) for w in small)


def test_compaction_empties_a_light_node_for_scale_down_but_never_moves_never_workloads():
    cloud = SimCloud(seed=6)
    pool = NodePool("gpu", (EAST,), max=3, idle_timeout=10_000)
    scaler = Autoscaler((pool,), cloud, compaction_budget=2, compaction_interval=30)
    ex = StepExecutor()
    d = Driver(Scheduler(parse_config(CONFIG).partition("default")), ex, autoscaler=scaler)
    ckpt = Disruption("checkpoint", grace=5)
    big = [d.submit(job(6, queue=q, disruption=ckpt), now=0) for q in ("root.a", "root.a", "root.b")]
    run_until(d, cloud, 130)
    small = [d.submit(job(2, queue=q, disruption=ckpt), now=140) for q in ("root.a", "root.b")]
    keep = d.submit(job(2, queue="root.b", disruption=Disruption("never")), now=140)
    run_until(d, cloud, 160)
    assert all(w.state == WorkloadState.RUNNING for w in [*big, *small, keep])
    assert len(d.core.nodes) == 3
    keep_node = keep.placement[next(iter(keep.placement))]
    for w in big:  # the big jobs finish, except the one beside the never workload
        if keep_node not in w.placement.values():
            ex.finish(w.id)
    run_until(d, cloud, 700)
    assert keep.state == WorkloadState.RUNNING and keep.attempt == 1  # never moved
    assert scaler.moves >= 1
    assert len(d.core.nodes) == 2  # one light node was emptied and went away
    assert all(w.state == WorkloadState.RUNNING for w in small)
