"""The packing experiment on small hand-checked cases; determinism; inflation; bucketing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gpupool.core.scoring import NodeView, fits, tightest_gpu, whole_gpus
from gpupool.packing.alibaba import load_nodes, load_pods
from gpupool.packing.experiment import (
    alloc_at,
    cluster_in_order,
    run_pack,
    run_seed,
    schedule,
    workload_order,
)
from gpupool.packing.policies import PolicyContext, make_policy, pod_asks

from .conftest import Writer, pod_row


def _policy(name: str, nodes_path, pods_path):  # type: ignore[no-untyped-def]
    nodes, pods = load_nodes(nodes_path), load_pods(pods_path)
    cluster = cluster_in_order(nodes)
    ctx = PolicyContext(cluster.models, cluster.model_gpus, pods, np.random.default_rng(0))
    return cluster, pods, make_policy(name, ctx)


def test_hand_checked_schedule(write_nodes: Writer, write_pods: Writer) -> None:
    # node-a: 2 GPUs, 8 CPUs; node-b: 1 GPU, 2 CPUs. Capacity 3000 milli-GPU.
    nodes = write_nodes(["node-a,8000,16000,2,T4", "node-b,2000,4000,1,T4"])
    pods = write_pods(
        [
            pod_row("p1", 1000, 100, 1, 600),  # bestfit: node-b (tighter) -> b: 400 free, 1000 CPU
            pod_row("p2", 1000, 100, 1, 1000),  # whole GPU: only node-a has one -> a: [0, 1000]
            pod_row("p3", 500, 100, 1, 500),  # a's GPU 1 (b has 400) -> a: [0, 500]
            pod_row("p4", 500, 100, 1, 900),  # fits nowhere: fails
            pod_row("p5", 2000, 100, 1, 400),  # b lacks CPU -> a: [0, 100]
            pod_row("p6", 4000, 100, 0, 0),  # CPU-only: a has 4500 CPU left
            pod_row("p7", 100, 20000, 0, 0),  # 20000 MiB fits nowhere: fails
        ]
    )
    cluster, workload, policy = _policy("bestfit", nodes, pods)
    trace = schedule(cluster, workload, policy)
    names = [cluster.names[n] if n >= 0 else None for n in trace.node]
    assert names == ["node-b", "node-a", "node-a", None, "node-a", "node-a", None]
    assert trace.failed == 2
    assert trace.arrived_milli.tolist() == [600, 1600, 2100, 3000, 3400, 3400, 3400]
    assert trace.used_milli.tolist() == [600, 1600, 2100, 2100, 2500, 2500, 2500]
    a = cluster.names.index("node-a")
    assert trace.gpu_free[a].tolist() == [0, 100]
    assert trace.cpu_free[a] == 8000 - 1000 - 500 - 2000 - 4000
    # Arrived 100% happens once (p4, allocated 70%); 113% three times (83.33%).
    assert alloc_at(trace.arrived_pct, trace.alloc_pct, 100) == pytest.approx(70.0)
    assert alloc_at(trace.arrived_pct, trace.alloc_pct, 113) == pytest.approx(2500 / 30)
    assert alloc_at(trace.arrived_pct, trace.alloc_pct, 112) == pytest.approx(2500 / 30)  # neighbour
    assert alloc_at(trace.arrived_pct, trace.alloc_pct, 130) is None


def test_gpu_model_constraint(write_nodes: Writer, write_pods: Writer) -> None:
    nodes = write_nodes(["node-a,8000,16000,1,T4", "node-b,8000,16000,1,P100"])
    pods = write_pods(
        [
            pod_row("p1", 1000, 100, 1, 300, "P100"),
            pod_row("p2", 1000, 100, 1, 300, "P100|V100M16"),
            pod_row("p3", 1000, 100, 1, 1000, "A100"),  # no such model: fails
            pod_row("p4", 1000, 100, 1, 500, "P100"),  # P100 has 400 left: fails
        ]
    )
    cluster, workload, policy = _policy("bestfit", nodes, pods)
    trace = schedule(cluster, workload, policy)
    names = [cluster.names[n] if n >= 0 else None for n in trace.node]
    assert names == ["node-b", "node-b", None, None]


def test_ties_go_to_the_first_node_in_order(write_nodes: Writer, write_pods: Writer) -> None:
    nodes = load_nodes(write_nodes([f"n{i},8000,16000,1,T4" for i in range(4)]))
    pods = load_pods(write_pods([pod_row("p", 1000, 100, 1, 1000)]))
    for order in ([2, 0, 3, 1], [3, 1, 0, 2]):
        cluster = cluster_in_order(nodes, np.array(order))
        ctx = PolicyContext(cluster.models, cluster.model_gpus, pods, np.random.default_rng(0))
        trace = schedule(cluster, pods, make_policy("bestfit", ctx))
        assert cluster.names[trace.node[0]] == f"n{order[0]}"


def test_run_seed_hand_checked(write_nodes: Writer, write_pods: Writer) -> None:
    # 10 GPUs; 10 whole-GPU pods = 100% of capacity. Inflated to 130%: 3 more copies, which fail.
    nodes = load_nodes(write_nodes(["big,128000,1048576,10,G2"]))
    pods = load_pods(write_pods([pod_row(f"p{i}", 1000, 1000, 1, 1000) for i in range(10)]))
    for policy in ("random", "bestfit", "dotprod", "gpupacking", "fgd", "gpupool"):
        result = run_seed(nodes, pods, policy, seed=7, ratio=1.3)
        assert result.pods == 13
        assert result.failed_pods == 3
        assert result.alloc_pct_at_100 == pytest.approx(100.0)
        assert result.alloc_pct_at_130 == pytest.approx(100.0)
        assert result.arrived_pct.tolist() == pytest.approx([10.0 * i for i in range(1, 14)])


def test_inflation_and_thinning(write_nodes: Writer, write_pods: Writer) -> None:
    rows = [pod_row(f"p{i:02d}", 1000, 1000, 1, m) for i, m in enumerate([100, 200, 300, 400, 500] * 4)]
    rows += [pod_row(f"c{i}", 1000, 1000, 0, 0) for i in range(3)]
    pods = load_pods(write_pods(rows))  # 6000 milli-GPU in all
    capacity = 5000
    for ratio in (1.3, 2.0, 0.5):
        order = workload_order(pods, np.random.default_rng(3), ratio, capacity)
        total = int(pods.gpu_milli_total[order].sum())
        assert total <= ratio * capacity
        if ratio * capacity >= 6000:
            assert order[: len(pods)].tolist() != list(range(len(pods)))  # shuffled
            assert sorted(order[: len(pods)].tolist()) == list(range(len(pods)))  # originals kept
            assert total > ratio * capacity - 500  # stopped by a pod that would overshoot
        else:
            assert len(set(order.tolist())) == len(order)  # thinned: no copies
            assert total > ratio * capacity - 500


def test_same_seed_same_result(small_trace) -> None:  # type: ignore[no-untyped-def]
    nodes_path, pods_path = small_trace
    nodes, pods = load_nodes(nodes_path), load_pods(pods_path)
    for policy in ("random", "fgd", "gpupool"):
        first = run_seed(nodes, pods, policy, seed=11)
        again = run_seed(nodes, pods, policy, seed=11)
        assert first.alloc_pct.tolist() == again.alloc_pct.tolist()
        assert first.arrived_pct.tolist() == again.arrived_pct.tolist()
        assert first.failed_pods == again.failed_pods


def test_run_pack_means_and_json(write_nodes: Writer, write_pods: Writer) -> None:
    # Steps of 5% of capacity, so every seed has events at 100% and 130% arrived.
    nodes = load_nodes(write_nodes(["n1,64000,65536,1,T4", "n2,64000,65536,1,T4"]))
    pods = load_pods(write_pods([pod_row(f"p{i:02d}", 1000, 1000, 1, 100) for i in range(40)]))
    result = run_pack(nodes, pods, "bestfit", seeds=[1, 2, 3])
    assert result.seeds == (1, 2, 3)
    assert [s.pods for s in result.per_seed] == [26, 26, 26]  # thinned to 130%
    assert [s.failed_pods for s in result.per_seed] == [6, 6, 6]
    assert result.alloc_pct_at_130 == pytest.approx(100.0)
    assert result.alloc_pct_at_100 == pytest.approx(100.0)
    payload = result.to_json()
    assert set(payload) == {
        "policy",
        "pods_file",
        "seeds",
        "alloc_pct_at_100",
        "alloc_pct_at_130",
        "per_seed",
        "seconds",
    }
    assert payload["policy"] == "bestfit"
    assert payload["seeds"] == [1, 2, 3]
    assert set(payload["per_seed"][0]) == {"seed", "alloc_pct_at_100", "alloc_pct_at_130", "failed_pods"}


def test_mean_skips_seeds_without_the_point(write_nodes: Writer, write_pods: Writer) -> None:
    nodes = load_nodes(write_nodes(["n1,64000,65536,1,T4", "n2,64000,65536,1,T4"]))
    pods = load_pods(write_pods([pod_row(f"p{i:02d}", 1000, 1000, 1, 100) for i in range(40)]))
    result = run_pack(nodes, pods, "fgd", seeds=[4], ratio=0.5)
    assert result.per_seed[0].alloc_pct_at_130 is None
    assert result.alloc_pct_at_130 is None
    assert result.to_json()["alloc_pct_at_130"] is None


def test_allocation_never_exceeds_capacity(small_trace) -> None:  # type: ignore[no-untyped-def]
    nodes_path, pods_path = small_trace
    nodes, pods = load_nodes(nodes_path), load_pods(pods_path)
    for policy in ("random", "bestfit", "dotprod", "gpupacking", "fgd", "gpupool"):
        result = run_seed(nodes, pods, policy, seed=5, ratio=2.0)
        assert result.alloc_pct.max() <= 100.0
        assert np.all(np.diff(result.alloc_pct) >= 0)
        assert result.alloc_pct[-1] <= result.arrived_pct[-1]


def test_cpu_only_pods_are_not_inflated(write_nodes: Writer, write_pods: Writer) -> None:
    nodes = load_nodes(write_nodes(["n1,64000,65536,1,T4"]))
    pods = load_pods(write_pods([pod_row(f"c{i}", 1000, 1000, 0, 0) for i in range(5)]))
    result = run_seed(nodes, pods, "gpupool", seed=1)
    assert result.pods == 5
    assert result.alloc_pct_at_100 is None and result.alloc_pct_at_130 is None


def _brute_force(cluster, pods, policy) -> list[int]:  # type: ignore[no-untyped-def]
    """Every pod scored against every node it fits, afresh: the best score, the first node on ties."""
    views = [
        NodeView((1000,) * int(g), int(c), int(m), int(c), int(m), cluster.models[k])
        for g, c, m, k in zip(cluster.gpu_count, cluster.cpu_cap, cluster.mem_cap, cluster.model, strict=True)
    ]
    chosen = []
    for ask in pod_asks(pods):
        best = None
        for n, v in enumerate(views):
            if fits(v, ask):
                result = policy.score(v, ask)
                if best is None or result.score > best[0]:
                    best = (result.score, n, result.gpu)
        if best is None:
            chosen.append(-1)
            continue
        _, n, gpu = best
        v = views[n]
        free = list(v.gpu_free)
        if ask.shares_gpu:
            free[gpu if gpu is not None else tightest_gpu(v.gpu_free, ask.gpu_milli)] -= ask.gpu_milli
        elif ask.gpus:
            for g in whole_gpus(v.gpu_free, ask.gpus):
                free[g] = 0
        views[n] = replace(
            v, gpu_free=tuple(free), cpu_free=v.cpu_free - ask.cpu, mem_free=v.mem_free - ask.mem
        )
        chosen.append(n)
    return chosen


def test_cached_scores_choose_as_a_full_rescan_does(small_trace) -> None:  # type: ignore[no-untyped-def]
    nodes_path, pods_path = small_trace
    nodes, pods = load_nodes(nodes_path), load_pods(pods_path)
    rng = np.random.default_rng(8)
    cluster = cluster_in_order(nodes, rng.permutation(len(nodes)))
    workload = pods.take(workload_order(pods, rng, 2.0, cluster.capacity_milli))
    for name in ("bestfit", "dotprod", "gpupacking", "fgd", "gpupool"):
        ctx = PolicyContext(cluster.models, cluster.model_gpus, pods, np.random.default_rng(0))
        trace = schedule(cluster, workload, make_policy(name, ctx))
        reference = _brute_force(cluster, workload, make_policy(name, ctx))
        assert trace.node.tolist() == reference, name
        assert 0 < trace.failed < len(workload)
