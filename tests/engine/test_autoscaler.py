"""The autoscaler in the driver loop, with the simulated cloud as node provider."""

from __future__ import annotations

import copy

from engine.test_engine import CONFIG, StepExecutor
from gpupool.adapters.simcloud import SimCloud, Stockout
from gpupool.config import parse_config
from gpupool.core.capacity import INSTANCE_LABEL, POOL_LABEL, REGION_LABEL
from gpupool.core.config import InstanceType, NodePool
from gpupool.core.demand import waiting_demand
from gpupool.core.resources import GPU_TYPE_LABEL
from gpupool.core.scheduler import Scheduler
from gpupool.engine.autoscaler import Autoscaler, JoinNode, Launch
from gpupool.engine.driver import Driver
from gpupool.engine.model import Disruption, TaskGroup, Workload, WorkloadSpec, WorkloadState
from gpupool.engine.ports import Adoptable, MemoryJournal

EAST = InstanceType("h100-east", "H100", 8, 96_000, 2**40, region="east", hourly_cost=90, boot_time=100)
WEST = InstanceType("h100-west", "H100", 8, 96_000, 2**40, region="west", hourly_cost=95, boot_time=120)


class LastingExecutor(StepExecutor, Adoptable):
    """The step executor as a cluster that outlives the control plane: a new driver re-attaches
    to the jobs it still runs (``Driver.restore`` calls ``adopt``)."""

    def adopt(self, workload: Workload) -> bool:
        return self.running.get(workload.id) == workload.attempt


def make(
    cloud: SimCloud, ex: StepExecutor | None = None, **pool_kw
) -> tuple[Driver, StepExecutor, Autoscaler]:
    pool = NodePool("gpu", (EAST, WEST), **{"max": 6, "idle_timeout": 300, **pool_kw})
    scaler = Autoscaler((pool,), cloud, block_seconds=600)
    ex = ex if ex is not None else StepExecutor()
    return Driver(Scheduler(parse_config(CONFIG).partition("default")), ex, autoscaler=scaler), ex, scaler


def restart(
    cloud: SimCloud, old: Driver, ex: StepExecutor, now: float, **pool_kw
) -> tuple[Driver, Autoscaler, list[str], dict[str, str]]:
    """A new control plane over the same cloud and cluster, recovering as ``ControlPlane._recover``
    does: a new driver and autoscaler, the pool nodes adopted, then the workloads restored from
    (copies of) what the old one had journalled."""
    d, _, scaler = make(cloud, ex, **pool_kw)
    adopted = d.adopt_pool_nodes(now)
    restored = {wid: d.restore(copy.deepcopy(w), now) for wid, w in old.workloads.items()}
    return d, scaler, adopted, restored


def job(gpus: int, members: int = 1, queue: str = "root.a", **kw) -> WorkloadSpec:
    return WorkloadSpec(
        name="job", queue=queue, task_groups=(TaskGroup("w", members, {"gpu": gpus * 1000}),), **kw
    )


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
    # YuniKorn's `fair` node order spreads the two small jobs, so that no node is whole (the
    # default `gpupool` order would pack them onto one node and leave nothing to compact).
    config = copy.deepcopy(CONFIG)
    config["partitions"][0]["nodesortpolicy"] = {"type": "fair"}
    d = Driver(Scheduler(parse_config(config).partition("default")), ex, autoscaler=scaler)
    run_until(d, cloud, 110)  # two empty nodes up (pool min)
    small = [d.submit(job(4, disruption=Disruption("checkpoint", grace=5)), now=120) for _ in range(2)]
    d.tick(120)
    d.tick(121)
    nodes_used = {n for w in small for n in w.placement.values()}
    assert all(w.state == WorkloadState.RUNNING for w in small)
    assert len(nodes_used) == 2  # the `fair` node order spread them: no node is whole
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


def test_a_restarted_autoscaler_adopts_the_pool_nodes_the_cloud_still_runs():
    cloud = SimCloud(seed=7)
    d, ex, scaler = make(cloud, ex=LastingExecutor())
    running = [d.submit(job(8, queue=q), now=0) for q in ("root.a", "root.b")]
    run_until(d, cloud, 110)
    assert all(w.state == WorkloadState.RUNNING for w in running)
    waiting = d.submit(job(8, queue="root.b"), now=120)
    d.tick(120)  # a third node is launched for it; it boots at 220
    [booting] = [n for n, pn in scaler.nodes.items() if pn.state == "booting"]
    # A node of a pool the new config no longer has (launched before a config change).
    cloud.launch("old", EAST, "old-h100-east-0042", 125)
    launched = set(scaler.nodes) | {"old-h100-east-0042"}
    ready = sorted(n for n in scaler.nodes if n != booting)
    launches = cloud.launches

    d2, scaler2, adopted, restored = restart(cloud, d, ex, 130)
    assert adopted == sorted([*ready, booting])
    assert {n: pn.state for n, pn in scaler2.nodes.items()} == {
        **dict.fromkeys(ready, "ready"),
        booting: "booting",
    }
    assert all(scaler2.nodes[n].launched_at == 0 for n in ready) and scaler2.nodes[booting].launched_at == 120
    for name in ready:  # in the new core, labelled as a booted node is
        labels = d2.core.nodes[name].labels
        assert (labels[POOL_LABEL], labels[INSTANCE_LABEL], labels[REGION_LABEL]) == (
            "gpu",
            "h100-east",
            "east",
        )
        assert labels[GPU_TYPE_LABEL] == "H100"
    assert booting not in d2.core.nodes
    assert [(a.node, a.outcome) for a in scaler2.attempts] == [(n, "adopted") for n in adopted]
    # The running work went back onto its nodes; the waiting one waits for the booting node.
    assert {w.id: restored[w.id] for w in running} == dict.fromkeys((w.id for w in running), "adopted")
    assert restored[waiting.id] == "requeued"
    assert {n for w in running for n in d2.workloads[w.id].placement.values()} == set(ready)
    # The unknown pool's node is left alone, and said so.
    assert "old-h100-east-0042" not in scaler2.nodes and "old-h100-east-0042" not in d2.core.nodes
    assert isinstance(d2.journal, MemoryJournal)
    kinds = {(kind, msg.split(" ")[0]) for _, _, kind, msg in d2.journal.events}
    assert ("not-adopted", "old-h100-east-0042") in kinds and ("adopted", "adopted") in kinds
    assert any(msg == "adopted 3 pool nodes" for _, _, _, msg in d2.journal.events)

    t = 130.0
    while t <= 230:
        d2.tick(t)
        t += 10
    assert cloud.launches == launches  # nothing launched again for work that has its nodes
    w3 = d2.workloads[waiting.id]
    assert w3.state == WorkloadState.RUNNING and set(w3.placement.values()) == {booting}
    assert scaler2.nodes[booting].state == "ready" and d2.core.nodes[booting].labels[POOL_LABEL] == "gpu"
    assert all(
        d2.workloads[w.id].state == WorkloadState.RUNNING and d2.workloads[w.id].attempt == 1 for w in running
    )

    for w in [*running, w3]:
        ex.finish(w.id)
    while t <= 600:  # idle past the timeout: the adopted nodes go like any other
        d2.tick(t)
        t += 10
    assert not scaler2.nodes and not d2.core.nodes
    assert [n.name for n in cloud.inventory()] == ["old-h100-east-0042"]  # still left alone

    d2.submit(job(8), now=t, workload_id="w-000100")  # the plane numbers on after the restored
    d2.tick(t)
    [name] = scaler2.nodes
    assert name not in launched  # a fresh name, past every adopted one
    assert cloud.launches == launches + 1


def test_adopted_nodes_count_against_the_pool_max():
    cloud = SimCloud(seed=8)
    d, ex, _ = make(cloud, ex=LastingExecutor(), max=2)
    running = [d.submit(job(8, queue=q), now=0) for q in ("root.a", "root.b")]
    run_until(d, cloud, 110)
    assert all(w.state == WorkloadState.RUNNING for w in running)
    launches = cloud.launches
    d2, scaler2, adopted, _ = restart(cloud, d, ex, 120, max=2)
    assert len(adopted) == 2
    w = d2.submit(job(8, queue="root.b"), now=120, workload_id="w-000100")
    d2.tick(120)
    d2.tick(130)
    assert cloud.launches == launches and not [n for n in scaler2.nodes.values() if n.state == "booting"]
    assert scaler2.last_plan is not None and w.id in scaler2.last_plan.unmet


def test_burst_headroom_counts_arrivals_within_quota_only():
    cloud = SimCloud(seed=1)
    d, _, scaler = make(cloud, headroom_window=600, headroom_max_nodes=4, max=10)
    d.submit(job(8), now=0)  # root.a has a max of 16 GPUs
    d.submit(job(8), now=0)
    assert [a.gpus for a in scaler.arrivals] == [8, 8]
    d.submit(job(8), now=0)  # beyond the max with what waits already: it would not use a warm node
    assert [a.gpus for a in scaler.arrivals] == [8, 8]
    d.submit(job(8, queue="root.b"), now=0)
    assert [a.gpus for a in scaler.arrivals] == [8, 8, 8]
    d.tick(0)
    # Two nodes for the two jobs of a that may run and one for b's, plus the warm nodes that
    # 24 GPUs of recent arrivals fill (3); the third job of a counted would make it 4.
    assert len(scaler.nodes) == 6
    # Arrivals older than the window are forgotten; the headroom goes back to none.
    d.submit(job(1, queue="root.b"), now=700)
    assert [a.at for a in scaler.arrivals] == [700]


A100 = InstanceType("a100-east", "A100", 8, 96_000, 2**40, region="east", hourly_cost=40, boot_time=100)


def test_a_sized_workload_falls_back_to_its_next_shape_when_its_first_stocks_out():
    # Two H100 regions stocked out: the gang of two takes its size's second shape (A100) whole.
    cloud = SimCloud(seed=1, stockouts=(Stockout("h100-east", "east"), Stockout("h100-west", "west")))
    pool = NodePool("gpu", (EAST, WEST, A100), max=6, idle_timeout=300)
    scaler = Autoscaler((pool,), cloud, block_seconds=600)
    d = Driver(Scheduler(parse_config(CONFIG).partition("default")), StepExecutor(), autoscaler=scaler)
    group = TaskGroup("w", 2, {"gpu": 8000}, ("H100",), alternatives=(({"gpu": 8000}, ("A100",)),))
    w = d.submit(WorkloadSpec(name="large", queue="root.a", task_groups=(group,)), now=0)
    run_until(d, cloud, 400)
    assert w.state == WorkloadState.RUNNING
    assert {d.core.nodes[n].labels[GPU_TYPE_LABEL] for n in w.placement.values()} == {"A100"}
    tried = [(a.instance_type, a.outcome) for a in scaler.history(w.id)]
    assert ("h100-east", "stockout") in tried and ("h100-west", "stockout") in tried
    assert [t for t, o in tried if o == "booted"] == ["a100-east", "a100-east"]


def test_the_autoscaler_replies_with_actions_and_the_driver_carries_them_out():
    """Request in, reply out: the autoscaler reads a view and replies; the cloud and the scheduler
    change only when the driver carries the reply out."""
    cloud = SimCloud(seed=1)
    d, _, scaler = make(cloud)
    d.submit(job(8, members=2), now=0)
    d.core.schedule(0)  # the gang waits for nodes nobody has
    view = d.pool_view(0)
    assert scaler.drain(view) == []
    actions = scaler.plan(view)
    assert [type(a) for a in actions] == [Launch, Launch]
    assert not cloud.inventory() and len(scaler.nodes) == 2  # planned, not launched yet
    d.carry_out(actions, 0)
    assert [n.state for n in cloud.inventory()] == ["booting", "booting"]
    joins = scaler.observe(EAST.boot_time)
    assert [type(a) for a in joins] == [JoinNode, JoinNode] and not d.core.nodes
    d.carry_out(joins, EAST.boot_time)
    assert sorted(d.core.nodes) == sorted(scaler.nodes)


def test_demand_counts_a_queue_only_up_to_its_max():
    cloud = SimCloud(seed=1)
    d, _, _ = make(cloud)
    ws = [d.submit(job(8), now=0) for _ in range(3)]  # root.a's max is 16 GPUs
    d.core.schedule(0)
    view = d.pool_view(0)
    assert [x.workload for x in waiting_demand(view.asks.values(), view.apps)] == [ws[0].id, ws[1].id]
    everything = waiting_demand(view.asks.values(), view.apps, every=True)
    assert [x.workload for x in everything] == [w.id for w in ws]
