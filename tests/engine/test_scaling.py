"""The autoscaling loop of model deployments (``engine.deployments``) driven through the driver:
load asks for extras after the upscale delay and within max, the queue's max holds them (and the
deployment says so), a scale-down drains a replica before its room is freed, a replica the
scheduler takes back drains the same way, and the wanted count and its reasons are recorded."""

from __future__ import annotations

import dataclasses

from gpupool.config import parse_config
from gpupool.core.model import NodeSpec
from gpupool.core.scheduler import Scheduler
from gpupool.engine.driver import Driver
from gpupool.engine.model import DeploymentSpec, ServingSpec, TaskGroup, Workload, WorkloadState

from .test_deployments import ServingExecutor
from .test_engine import CONFIG, spec


def setup(
    min_replicas: int = 1,
    max_replicas: int = 4,
    *,
    up: float = 10,
    down: float = 30,
    gpus: int = 4000,
    hold_drains: bool = False,
    queue: str = "root.a",
) -> tuple[Driver, ServingExecutor, Workload]:
    ex = ServingExecutor(hold_drains=hold_drains)
    sched = Scheduler(parse_config(CONFIG).partition("default"))
    for i in range(2):
        sched.add_node(NodeSpec(f"n{i}", {"gpu": 8000, "vcore": 64000}))
    d = Driver(sched, ex)
    serving = ServingSpec(
        "m:app", target_ongoing_requests=2, upscale_delay=up, downscale_delay=down, look_back=5
    )
    dep = DeploymentSpec("chat", queue, TaskGroup("r", 1, {"gpu": gpus}), serving, min_replicas, max_replicas)
    w = d.submit(dep.workload(), now=0)
    d.tick(0)
    d.tick(1)
    assert w.state == WorkloadState.RUNNING
    return d, ex, w


def asked(d: Driver, w: Workload) -> list[str]:
    return sorted(a.split("/")[1] for a in d.core.asks if a.startswith(f"{w.id}/"))


def test_without_load_a_deployment_asks_for_its_min_replicas_only() -> None:
    d, _ex, w = setup(min_replicas=2)
    for t in range(2, 60):
        d.tick(t)
    assert sorted(w.placement) == ["replica-0", "replica-1"]
    assert asked(d, w) == []
    assert d.scaling.tracks[w.id].desired == 2


def test_load_grows_replicas_after_the_upscale_delay_and_never_above_max() -> None:
    d, ex, w = setup(max_replicas=3, up=10)
    ex.load = 20.0  # wants 10 at a target of 2
    d.tick(2)
    d.tick(11)
    assert sorted(w.placement) == ["replica-0"], "grew before the upscale delay was over"
    d.tick(12)
    d.tick(12.5)
    assert sorted(w.placement) == ["replica-0", "replica-1", "replica-2"]
    track = d.scaling.tracks[w.id]
    assert track.desired == 3
    (decision,) = track.decisions
    assert (decision.old, decision.new) == (1, 3)
    assert "capped at max_replicas 3" in decision.reason


def test_the_queue_max_holds_growth_and_the_status_says_which_limit() -> None:
    # root.a's max is 16 GPUs; replicas of 8 GPUs: two fit the max, the third waits for it.
    d, ex, w = setup(max_replicas=4, up=0, gpus=8000)
    d.core.add_node(NodeSpec("n2", {"gpu": 8000, "vcore": 64000}))
    ex.load = 8.0  # wants 4
    d.tick(2)
    d.tick(2.5)
    assert len(w.placement) == 2
    waiting = asked(d, w)
    assert waiting, "the replicas above the queue's max should wait, asked"
    why = str(d.core.explain(f"{w.id}/{waiting[0]}"))
    assert "root.a" in why and "max" in why, why
    # ``gpupool why`` on the running deployment says the same of its waiting replicas.
    lines = d.why(w.id)
    assert lines[0].startswith(f"{w.id} (chat) is running") and any(why in line for line in lines[1:]), lines


def test_a_scale_down_drains_a_replica_before_its_room_is_freed() -> None:
    d, ex, w = setup(max_replicas=3, up=0, down=30, hold_drains=True)
    ex.load = 6.0
    d.tick(2)
    d.tick(2.5)
    assert len(w.placement) == 3
    ex.load = 0.0
    d.tick(10)
    d.tick(39)
    assert len(w.placement) == 3, "shrank before the downscale delay was over"
    d.tick(41)
    assert sorted(w.placement) == ["replica-0"]
    draining = sorted(ex.draining)
    assert draining == ["replica-1", "replica-2"]
    # Until they stop, their GPUs stay held (marked preempting): nobody else gets them.
    for member in draining:
        alloc = d.core.allocations[f"{w.id}/{member}"]
        assert alloc.preempted
    ex.stop("replica-2")
    d.tick(42)
    assert f"{w.id}/replica-2" not in d.core.allocations
    assert f"{w.id}/replica-1" in d.core.allocations
    ex.stop("replica-1")
    d.tick(43)
    assert [a for a in d.core.allocations if a.startswith(f"{w.id}/")] == [f"{w.id}/replica-0"]
    assert [x.new for x in d.scaling.tracks[w.id].decisions] == [3, 1]


def test_a_replica_the_scheduler_takes_back_drains_and_is_asked_again_on_demand() -> None:
    d, ex, w = setup(max_replicas=4, up=0, hold_drains=True)
    ex.load = 8.0
    d.tick(2)
    d.tick(2.5)
    assert len(w.placement) == 4  # 16 GPUs: both nodes full, two of them borrowed room
    other = d.submit(spec("root.b", 8), now=3)  # within root.b's guarantee
    d.tick(3)
    d.tick(40)  # after root.b's preemption delay
    assert other.state == WorkloadState.PENDING
    assert len(w.placement) == 2
    assert w.state == WorkloadState.RUNNING and w.attempt == 1  # two replicas went, each alone
    for member in sorted(ex.draining):
        ex.stop(member)
    d.tick(41)
    d.tick(42)
    assert other.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING)
    # Still wanted: asked again, waiting for room, not placed over the other team's work.
    assert len(asked(d, w)) == 2 and len(w.placement) == 2


def test_a_requeued_deployment_starts_again_from_min_replicas() -> None:
    d, ex, w = setup(max_replicas=3, up=0)
    ex.load = 6.0
    d.tick(2)
    d.tick(2.5)
    assert len(w.placement) == 3
    d.observe_node_gone("n0", 3)
    d.observe_node_gone("n1", 3)
    assert w.state == WorkloadState.PENDING
    assert d.scaling.tracks[w.id].desired == 1
    assert asked(d, w) == ["replica-0"]


def test_cancelling_a_deployment_placed_in_part_frees_the_replicas_already_placed() -> None:
    d, _ex, w = setup(min_replicas=1, max_replicas=1)
    serving = ServingSpec("m:app")
    # Two replicas of 8 GPUs: one node is free (the other holds "chat"): one is placed, one waits.
    big = DeploymentSpec("big", "root.b", TaskGroup("r", 1, {"gpu": 8000}), serving, 2, 2)
    b = d.submit(big.workload(), now=2)
    d.tick(2)
    assert b.state == WorkloadState.PENDING and any(a.startswith(f"{b.id}/") for a in d.core.allocations)
    d.cancel(b.id, now=3)
    assert not [a for a in d.core.allocations if a.startswith(f"{b.id}/")]
    assert w.state == WorkloadState.RUNNING


def test_a_new_revision_that_runs_stops_the_one_it_replaces() -> None:
    d, _ex, w = setup(min_replicas=1, max_replicas=1, gpus=1000)
    assert w.spec.serving is not None
    serving = dataclasses.replace(w.spec.serving, revision=2, replaces=w.id, target_ongoing_requests=5)
    new = d.submit(dataclasses.replace(w.spec, serving=serving), now=2)
    d.tick(2)
    assert new.state == WorkloadState.ADMITTED and w.state == WorkloadState.RUNNING  # both, for now
    d.tick(3)
    assert new.state == WorkloadState.RUNNING
    assert w.state == WorkloadState.CANCELLED and w.reason == f"replaced by revision 2 ({new.id})"


def test_idle_past_scale_to_zero_after_it_parks_and_a_waiting_request_wakes_it() -> None:
    ex = ServingExecutor()
    sched = Scheduler(parse_config(CONFIG).partition("default"))
    sched.add_node(NodeSpec("n0", {"gpu": 8000, "vcore": 64000}))
    d = Driver(sched, ex)
    serving = ServingSpec("m:app", target_ongoing_requests=2, upscale_delay=0, scale_to_zero_after=60)
    w = d.submit(
        DeploymentSpec("chat", "root.a", TaskGroup("r", 1, {"gpu": 1000}), serving, 0, 2).workload(), 0
    )
    assert w.spec.member_count() == 1  # min 0 starts with one replica all the same
    d.tick(0)
    d.tick(1)
    assert w.state == WorkloadState.RUNNING
    d.tick(30)
    assert w.state == WorkloadState.RUNNING  # idle for less than 60 s
    d.tick(62)
    assert w.state == WorkloadState.PREEMPTING  # its replica drains (within its grace here)
    d.tick(62 + w.spec.disruption.grace)
    assert w.state == WorkloadState.PREEMPTED and w.reason.startswith("scaled to zero")
    assert w.preemptions == 0 and not [a for a in d.core.allocations if a.startswith(f"{w.id}/")]
    assert asked(d, w) == []  # not queued again: nothing waits
    for t in range(300, 500, 20):
        d.tick(t)
    assert w.state == WorkloadState.PREEMPTED
    ex.load = 3.5  # requests wait at its front
    d.tick(501)
    d.tick(502)
    d.tick(503)
    assert w.state == WorkloadState.RUNNING and w.attempt == 2
    decisions = [(x.old, x.new) for x in d.scaling.tracks[w.id].decisions]
    assert decisions[:2] == [(1, 0), (0, 2)], decisions
    assert sorted(w.placement) == ["replica-0", "replica-1"]


def test_time_spent_starting_is_not_idle_time() -> None:
    ex = ServingExecutor()
    ex.hold_starts = True  # its replica takes long to start
    sched = Scheduler(parse_config(CONFIG).partition("default"))
    sched.add_node(NodeSpec("n0", {"gpu": 8000, "vcore": 64000}))
    d = Driver(sched, ex)
    serving = ServingSpec("m:app", scale_to_zero_after=60)
    w = d.submit(
        DeploymentSpec("chat", "root.a", TaskGroup("r", 1, {"gpu": 1000}), serving, 0, 1).workload(), 0
    )
    for t in range(0, 200, 10):
        d.tick(t)
    assert w.state == WorkloadState.ADMITTED
    ex.release_starts(200)
    d.tick(200)
    d.tick(250)
    assert w.state == WorkloadState.RUNNING  # idle for 50 s since it runs
    d.tick(261)
    assert w.state == WorkloadState.PREEMPTING


def test_a_min_replica_taken_back_stops_alone_and_waits_for_room_again() -> None:
    # root.a (guaranteed 8 GPUs) runs 3 required replicas of 4: 12 GPUs, above its guarantee.
    d, ex, w = setup(min_replicas=3, max_replicas=3, gpus=4000, hold_drains=True)
    assert len(w.placement) == 3
    other = d.submit(spec("root.b", 8), now=2)  # within root.b's guarantee: takes a replica back
    d.tick(2)
    d.tick(40)  # after root.b's preemption delay
    (taken,) = sorted(ex.draining)
    assert w.state == WorkloadState.RUNNING and w.attempt == 1  # the others go on serving
    assert taken not in w.placement and len(w.placement) == 2
    assert f"{w.id}/{taken}" in d.core.allocations  # held until it has drained
    ex.stop(taken)
    d.tick(41)
    d.tick(42)
    assert other.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING)
    assert asked(d, w) == [taken]  # wanted all the same: waits for room
    assert w.state == WorkloadState.RUNNING and w.attempt == 1
    d.cancel(other.id, now=43)
    d.tick(44)
    d.tick(45)
    assert taken in w.placement and len(w.placement) == 3  # placed again: the deployment grows back
    assert w.state == WorkloadState.RUNNING and w.attempt == 1 and ex.resized[-1][1] == sorted(w.placement)


def test_a_revision_being_replaced_gives_its_extras_back_to_make_room() -> None:
    d, ex, w = setup(min_replicas=1, max_replicas=4, up=0, gpus=4000)
    ex.load = 8.0
    d.tick(2)
    d.tick(2.5)
    assert len(w.placement) == 4  # 16 GPUs: root.a at its max
    assert w.spec.serving is not None
    serving = dataclasses.replace(w.spec.serving, revision=2, replaces=w.id, target_ongoing_requests=5)
    new = d.submit(dataclasses.replace(w.spec, serving=serving), now=3)
    d.tick(3)
    assert sorted(w.placement) == ["replica-0"]  # under load all the same: its extras drain
    assert d.scaling.tracks[w.id].reason == f"down to its min replicas (1): revision 2 ({new.id}) replaces it"
    d.tick(4)
    d.tick(5)
    assert new.state == WorkloadState.RUNNING and w.state == WorkloadState.CANCELLED


def test_below_its_guarantee_a_deployment_under_load_takes_room_back_from_batch() -> None:
    d, ex, w = setup(min_replicas=1, max_replicas=3, up=0, gpus=4000)
    batch = [d.submit(spec("root.b", 4), now=1) for _ in range(3)]  # 12 GPUs: 4 above b's guarantee
    d.tick(1)
    d.tick(1.5)
    assert all(b.state in (WorkloadState.ADMITTED, WorkloadState.RUNNING) for b in batch)
    ex.load = 6.0  # wants 3 replicas; root.a holds 4 GPUs of its 8 guaranteed
    d.tick(2)
    d.tick(8)  # a look-back of load later
    assert len(w.placement) == 1 and len(asked(d, w)) == 2
    grace = batch[0].spec.disruption.grace
    for t in (45, 46, 47 + grace, 48 + grace):  # root.a's preemption delay, then the batch job's grace
        d.tick(t)
    # Up to its guarantee (8 GPUs: 2 replicas) by preemption; the third only borrows: it waits.
    assert len(w.placement) == 2 and len(asked(d, w)) == 1
    assert sum(b.state == WorkloadState.PREEMPTED for b in batch) == 1
