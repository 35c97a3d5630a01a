"""Property tests of GPU shares: random clusters of shares and whole GPUs, with quotas, gangs,
preemption and work finishing; after every step the GPUs of every node add up.

Invariants: each GPU's free milli stays within 0..1000 and equals 1000 minus what the
allocations (and held room) on it take; the shares on a GPU never exceed 1000; a node's free
GPUs (``avail``) are the sum of its GPUs; an allocation holds one GPU for a share and that many
fully free GPUs for whole GPUs, which it shares with no one; the node index files each node
under its GPU level; queue usage counts shares exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import core_units, partition, q
from gpupool.core.decisions import Preempt
from gpupool.core.model import GangSpec, NodeSpec, per_gpu
from gpupool.core.resources import GPU_MILLI, gpu_milli
from gpupool.core.scheduler import Scheduler

SHARES = (100, 250, 250, 500, 500, 750, 1000, 1000, 2000)  # milli-GPU; whole GPUs too


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, Any]:
    nodes = [draw(st.sampled_from([1, 2, 4])) for _ in range(draw(st.integers(1, 4)))]
    guarantee = draw(st.sampled_from([None, 1, 2, 2, "0.5", "1.5"]))
    apps = []
    for a in range(draw(st.integers(1, 6))):
        gang = draw(st.integers(0, 3)) == 0
        size = draw(st.sampled_from(SHARES))
        members = draw(st.integers(2, 3)) if gang else draw(st.integers(1, 3))
        apps.append(
            {
                "id": f"app-{a}",
                "queue": draw(st.sampled_from(["root.a", "root.b"])),
                "gang": gang,
                "asks": [size if gang else draw(st.sampled_from(SHARES)) for _ in range(members)],
                "created": -float(draw(st.integers(0, 100))),
            }
        )
    return {
        "nodes": nodes,
        "guarantee": guarantee,
        "max_b": draw(st.sampled_from([None, "1.5", 3])),
        "apps": apps,
        "finish": draw(st.lists(st.integers(0, 20), max_size=6)),
    }


def build(spec: dict[str, Any], first: str = "") -> Scheduler:
    """The cluster with the apps of ``spec`` submitted; with ``first``, that queue's apps only."""
    a = q("a", guaranteed={"gpu": spec["guarantee"]}) if spec["guarantee"] is not None else q("a")
    b = q("b", max={"gpu": spec["max_b"]}) if spec["max_b"] is not None else q("b")
    sched = Scheduler(partition([a, b]))
    for i, gpus in enumerate(spec["nodes"]):
        sched.add_node(NodeSpec(f"node-{i}", core_units({"gpu": gpus, "vcore": 64_000})))
    submit(sched, spec, first)
    return sched


def submit(sched: Scheduler, spec: dict[str, Any], queue: str = "", *, skip: str = "") -> None:
    for app in spec["apps"]:
        if (queue and app["queue"] != queue) or (skip and app["queue"] == skip):
            continue
        gang = GangSpec("soft", 60.0) if app["gang"] else None
        assert sched.submit(app["id"], queue=app["queue"], gang=gang) is None
        for m, milli in enumerate(app["asks"]):
            sched.add_ask(
                app["id"], f"{app['id']}-{m}", {"gpu": milli, "vcore": 1000}, created=app["created"]
            )


def settle(sched: Scheduler, now: float) -> None:
    for _ in range(1000):
        result = sched.schedule(now)
        if not result.changed:
            return
        for d in result.decisions:
            if isinstance(d, Preempt):
                sched.release(d.alloc_id)
        check_gpus(sched)
    raise AssertionError("no steady state")


def check_gpus(sched: Scheduler) -> None:
    for node in sched.nodes.values():
        taken = [0] * len(node.gpu_free)
        whole_on: dict[int, str] = {}
        holders: dict[int, list[str]] = {}
        for alloc in node.allocations.values():
            milli = gpu_milli(alloc.resources)
            ids = alloc.gpu_ids
            assert len(set(ids)) == len(ids) == (1 if 0 < milli < GPU_MILLI else milli // GPU_MILLI)
            for i in ids:
                taken[i] += per_gpu(milli)
                holders.setdefault(i, []).append(alloc.id)
                if milli >= GPU_MILLI:
                    whole_on[i] = alloc.id
        for ask_id, ids in node.held_gpus.items():
            for i in ids:
                taken[i] += per_gpu(gpu_milli(node.held[ask_id]))
        for i, free in enumerate(node.gpu_free):
            assert 0 <= free <= GPU_MILLI, f"{node.name} GPU {i} has {free} free"
            assert free == GPU_MILLI - taken[i], f"{node.name} GPU {i}: free {free}, taken {taken[i]}"
            if i in whole_on:
                assert holders[i] == [whole_on[i]], f"{node.name} GPU {i} shared by {holders[i]}"
        assert node.avail.get("gpu", 0) == sum(node.gpu_free) == node.gpu_free_total
        held_shares = sum(1 for ask_id in node.held_gpus if 0 < gpu_milli(node.held[ask_id]) < GPU_MILLI)
        alloc_shares = sum(1 for a in node.allocations.values() if 0 < gpu_milli(a.resources) < GPU_MILLI)
        assert node.shares == alloc_shares + held_shares
        if node.schedulable:
            assert sched.index.level(node.name) == node.gpu_level
    for path, queue in sched.queues.items():
        expected = sum(
            gpu_milli(a.resources)
            for a in sched.allocations.values()
            if a.queue.path == path or a.queue.path.startswith(path + ".")
        )
        assert queue.allocated.get("gpu", 0) == expected, f"{path} counts {queue.allocated} for {expected}"
        if queue.max and "gpu" in queue.max:
            assert queue.allocated.get("gpu", 0) <= queue.max["gpu"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_gpus_add_up_through_placement_preemption_and_release(spec: dict[str, Any]) -> None:
    sched = build(spec, "root.b")  # queue b borrows the cluster first
    settle(sched, 0.0)
    submit(sched, spec, skip="root.b")
    settle(sched, 0.0)
    settle(sched, 60.0)  # queue a's asks are old enough to preempt for
    for k in spec["finish"]:
        allocs = sorted(sched.allocations)
        if allocs:
            sched.release(allocs[k % len(allocs)])
            check_gpus(sched)
            settle(sched, 61.0)
    settle(sched, 200.0)  # gang timeouts
    check_gpus(sched)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_same_input_same_gpus(spec: dict[str, Any]) -> None:
    runs = []
    for _ in range(2):
        sched = build(spec)
        settle(sched, 0.0)
        settle(sched, 60.0)
        runs.append({a.id: (a.node.name, a.gpu_ids) for a in sched.allocations.values()})
    assert runs[0] == runs[1]
