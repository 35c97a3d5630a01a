"""The packing registry: the core's scoring policies built from a pod list; the bench-only
``random``; pods as ask shapes. (Each core policy's choices: tests/core/test_scoring.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from gpupool.core.scorers import Fgd, Gpupool
from gpupool.core.scoring import AskShape, BestFit, DotProduct, GpuPacking, NodeView, fits
from gpupool.packing.alibaba import PodTable
from gpupool.packing.policies import (
    PolicyContext,
    RandomPolicy,
    UnknownPolicyError,
    make_policy,
    pod_asks,
    policy_names,
    workload_stats,
)

MODELS = ("P100", "T4")


def pod_table(rows: list[tuple[int, int, int, int, str]]) -> PodTable:
    """(cpu, mem, num_gpu, gpu_milli, spec) rows."""
    return PodTable(
        file="test",
        names=tuple(f"p{i}" for i in range(len(rows))),
        cpu_milli=np.array([r[0] for r in rows], dtype=np.int64),
        memory_mib=np.array([r[1] for r in rows], dtype=np.int64),
        num_gpu=np.array([r[2] for r in rows], dtype=np.int64),
        gpu_milli=np.array([r[3] for r in rows], dtype=np.int64),
        gpu_spec=tuple(r[4] for r in rows),
    )


def view(gpu_free: tuple[int, ...], cpu: int = 8000) -> NodeView:
    return NodeView(gpu_free, cpu, 1 << 20, cpu, 1 << 20, "T4")


REALISTIC = (
    [(3152, 16000, 1, 810, "")] * 35 + [(8000, 16000, 1, 470, "")] * 25 + [(4000, 8000, 1, 320, "")] * 11
)
REALISTIC += [(11000, 40000, 1, 1000, "")] * 48 + [(2000, 4000, 0, 0, "")] * 5


def _ctx(rows: list[tuple[int, int, int, int, str]], seed: int = 0) -> PolicyContext:
    return PolicyContext(MODELS, np.array([0, 4]), pod_table(rows), np.random.default_rng(seed))


def test_pods_become_ask_shapes() -> None:
    asks = pod_asks(
        pod_table([(1000, 10, 1, 500, "P100|T4"), (2000, 20, 2, 1000, ""), (1000, 10, 1, 500, "P100|T4")])
    )
    assert asks[0] == AskShape(1000, 10, 1, 500, ("P100", "T4"))
    assert asks[1] == AskShape(2000, 20, 2, 1000)
    assert asks[2] is asks[0]  # equal shapes share one object (and one score cache)


def test_the_registry_builds_the_cores_policies() -> None:
    ctx = _ctx(REALISTIC)
    expected = {
        "bestfit": BestFit,
        "dotprod": DotProduct,
        "gpupacking": GpuPacking,
        "fgd": Fgd,
        "gpupool": Gpupool,
    }
    for name, cls in expected.items():
        policy = make_policy(name, ctx)
        assert isinstance(policy, cls)
        assert policy.name == name
    assert isinstance(make_policy("random", ctx), RandomPolicy)


def test_workload_aware_policies_learn_from_the_pod_list() -> None:
    ctx = _ctx(REALISTIC)
    stats = workload_stats(ctx)
    assert sum(stats.shapes.values()) == len(REALISTIC)
    assert stats.shared_milli == {810: 35, 470: 25, 320: 11}
    policy = make_policy("gpupool", ctx)
    assert isinstance(policy, Gpupool)
    assert policy.model == stats.model()
    assert policy.model.cpu_per_milli == pytest.approx(
        (35 * 3152 + 25 * 8000 + 11 * 4000 + 48 * 11000) / (35 * 810 + 25 * 470 + 11 * 320 + 48 * 1000)
    )
    fgd = make_policy("fgd", ctx)
    assert isinstance(fgd, Fgd)
    assert fgd.frag.typical == stats.typical()


def test_random_is_seeded_and_picks_fitting_gpus() -> None:
    nodes = [view((1000, 200)), view((300, 700))]

    def choose(seed: int) -> tuple[int, int]:
        policy = RandomPolicy(np.random.default_rng(seed))
        node = policy.choose_node(2)
        return node, policy.choose_gpu(2, node, nodes[node].gpu_free, 500, 3)

    picks = set()
    for seed in range(20):
        first = choose(seed)
        assert first == choose(seed)
        node, gpu = first
        assert gpu == (0 if node == 0 else 1)  # the only GPU that fits on each node
        picks.add(node)
    assert picks == {0, 1}


def test_every_policy_scores_every_candidate() -> None:
    ctx = _ctx(REALISTIC, seed=1)
    nodes = [view((1000, 1000), 64000), view((530, 1000), 64000), view((190, 0), 64000)]
    for name in policy_names():
        policy = make_policy(name, ctx)
        assert policy.name == name
        if isinstance(policy, RandomPolicy):
            continue
        for request in (AskShape(1000, 1024, 1, 100), AskShape(1000, 1024, 1, 1000), AskShape(1000, 1024)):
            for node in nodes:
                if not fits(node, request):
                    continue
                result = policy.score(node, request)
                assert np.isfinite(result.score)
                if request.shares_gpu:
                    assert result.gpu is not None and node.gpu_free[result.gpu] >= 100


def test_registry_names_and_unknown_policy() -> None:
    assert policy_names() == ["bestfit", "dotprod", "fgd", "gpupacking", "gpupool", "random"]
    ctx = _ctx([(1, 1, 0, 0, "")])
    with pytest.raises(UnknownPolicyError) as caught:
        make_policy("tetris", ctx)
    message = str(caught.value)
    assert "'tetris'" in message
    for name in policy_names():
        assert name in message
