"""Each policy's choice on tiny hand-computed examples; FGD's fragmentation; the registry."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gpupool.packing.alibaba import PodTable
from gpupool.packing.policies import (
    NodeState,
    PodRequest,
    PolicyContext,
    UnknownPolicyError,
    WorkloadModel,
    bestfit_scores,
    dotprod_scores,
    fgd_scores,
    fragmentation,
    gpupacking_scores,
    gpupool_scores,
    hole_waste,
    make_policy,
    model_scarcity,
    policy_names,
    tightest_gpu,
    typical_pods_from_counts,
)

MODELS = ("P100", "T4")


def nodes(gpu_free: list[list[int]], cpu_free: list[int], *, model: list[int] | None = None) -> NodeState:
    """Candidate nodes with every GPU slot real (a 0 is a fully used GPU), 1 TiB of memory."""
    free = np.array(gpu_free, dtype=np.int64)
    rows = len(free)
    return NodeState(
        gpu_free=free,
        cpu_free=np.array(cpu_free, dtype=np.int64),
        mem_free=np.full(rows, 1 << 20, dtype=np.int64),
        cpu_cap=np.array(cpu_free, dtype=np.int64),
        mem_cap=np.full(rows, 1 << 20, dtype=np.int64),
        gpu_count=np.full(rows, free.shape[1], dtype=np.int64),
        model=np.array(model if model is not None else [1] * rows, dtype=np.int64),
    )


def pod(cpu: int, num_gpu: int, gpu_milli: int, allowed: tuple[bool, ...] = (True, True)) -> PodRequest:
    return PodRequest(cpu, 1024, num_gpu, gpu_milli, np.array(allowed))


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


def test_tightest_gpu() -> None:
    free = np.array([[1000, 300, 600], [200, 100, 0]])
    assert tightest_gpu(free, 300).tolist() == [1, -1]
    assert tightest_gpu(free, 100).tolist() == [1, 1]


def test_bestfit_prefers_least_left_after() -> None:
    state = nodes([[1000, 1000], [500, 0]], [64000, 8000])
    # 100 x (1 - (60000/128000 + 1500/8000) / 2) = 67.19; 100 x (1 - (4000/128000 + 0) / 2) = 98.44
    assert bestfit_scores(state, pod(4000, 1, 500)).tolist() == [67.0, 98.0]


def test_dotprod_prefers_smallest_alignment() -> None:
    state = nodes([[1000, 1000], [500, 0]], [64000, 8000])
    # dot = .5 x .03125 + .25 x .0625 = .03125 -> 98.4; .0625 x .03125 + .0625 x .0625 -> 99.7
    assert dotprod_scores(state, pod(4000, 1, 500)).tolist() == [98.0, 99.0]


def test_gpupacking_prefers_shared_then_used_then_empty() -> None:
    state = nodes([[1000, 1000], [500, 0], [1000, 300]], [8000, 8000, 8000])
    assert gpupacking_scores(state, pod(1000, 1, 500)).tolist() == [31.0, 95.0, 49.0]
    assert gpupacking_scores(state, pod(1000, 1, 1000))[[0, 2]].tolist() == [31.0, 49.0]
    assert gpupacking_scores(state, pod(1000, 0, 0)).tolist() == [0.0, 0.0, 0.0]


def test_random_is_seeded_and_picks_fitting_gpus() -> None:
    state = nodes([[1000, 200], [300, 700]], [8000, 8000])
    ctx = PolicyContext(MODELS, np.array([2, 2]), pod_table([(1, 1, 0, 0, "")]), np.random.default_rng(9))
    first = make_policy("random", ctx).score(state, pod(1000, 1, 500))
    ctx2 = PolicyContext(MODELS, np.array([2, 2]), pod_table([(1, 1, 0, 0, "")]), np.random.default_rng(9))
    again = make_policy("random", ctx2).score(state, pod(1000, 1, 500))
    assert first.score.tolist() == again.score.tolist()
    assert first.gpu.tolist() == [0, 1]  # the only GPU that fits on each node


def _typical():  # type: ignore[no-untyped-def]
    # 3 pods of half a GPU, 1 pod of a whole GPU: both shapes are typical (weights .75, .25).
    return typical_pods_from_counts(Counter({(1000, 500, 1, ""): 3, (1000, 1000, 1, ""): 1}), MODELS)


def test_typical_pods_cover_the_popular_shapes() -> None:
    typical = _typical()
    assert typical.gpu_milli.tolist() == [500, 1000]
    assert typical.weight.tolist() == pytest.approx([0.75, 0.25])
    counts = Counter({(1, 100, 1, ""): 96, (2, 200, 1, ""): 3, (3, 300, 1, ""): 1})
    assert typical_pods_from_counts(counts, MODELS).gpu_milli.tolist() == [100]  # 96% >= 95%
    assert len(typical_pods_from_counts(counts, MODELS, popularity=97)) == 2


def test_fragmentation_against_typical_pods() -> None:
    state = nodes([[1000, 1000], [1000, 300], [300, 0], [1000, 1000]], [8000, 8000, 8000, 500])
    # [1000, 300]: 300 milli are too small for both shapes; [300, 0]: neither shape fits at all;
    # the last node lacks CPU for both shapes, so all its free GPU is fragmented.
    assert fragmentation(state, _typical()).tolist() == pytest.approx([0.0, 300.0, 300.0, 2000.0])


def test_fragmentation_respects_gpu_models() -> None:
    typical = typical_pods_from_counts(Counter({(1000, 500, 1, "P100"): 1}), MODELS)
    state = nodes([[1000], [1000]], [8000, 8000], model=[0, 1])
    assert fragmentation(state, typical).tolist() == pytest.approx([0.0, 1000.0])


def test_fgd_picks_the_smallest_fragmentation_growth() -> None:
    state = nodes([[1000, 1000], [1000, 600]], [8000, 8000])
    scores = fgd_scores(state, pod(1000, 1, 500), _typical())
    # Node 0: fragmentation 0 -> 125 (sigmoid(-0.125) -> 46). Node 1: 150 -> 100 when the pod
    # takes GPU 1 (leaving 100), sigmoid(0.05) -> 51; via GPU 0 it would grow to 275.
    assert scores.score.tolist() == [46.0, 51.0]
    assert scores.gpu.tolist() == [0, 1]


def test_hole_waste_by_hand() -> None:
    waste = hole_waste(np.array([500, 500]), kappa=0.2)
    assert waste[0] == 0
    assert waste[499] == 499  # nothing fits
    assert waste[500] == pytest.approx(500 / 6)  # filled with probability 1 / 1.2
    assert waste[1000] == pytest.approx(1000 / 6 + 5 / 6 * 500 / 6)
    assert np.all(waste <= np.arange(1001))


def test_model_scarcity() -> None:
    pods = pod_table([(1, 1, 1, 1000, "P100"), (1, 1, 1, 500, "P100|T4"), (1, 1, 1, 1000, "")])
    # P100 (2 GPUs) gets 1000 + 500 x 2/6; T4 (4 GPUs) gets 500 x 4/6.
    scarcity = model_scarcity(pods, MODELS, np.array([2, 4]))
    assert scarcity.tolist() == pytest.approx([(1000 + 500 / 3) / 2000, (2000 / 6) / 4000])
    assert model_scarcity(pod_table([(1, 1, 1, 1000, "")]), MODELS, np.array([2, 4])).tolist() == [0, 0]


REALISTIC = (
    [(3152, 16000, 1, 810, "")] * 35 + [(8000, 16000, 1, 470, "")] * 25 + [(4000, 8000, 1, 320, "")] * 11
)
REALISTIC += [(11000, 40000, 1, 1000, "")] * 48


def test_gpupool_fills_a_hole_rather_than_a_fresh_gpu() -> None:
    model = WorkloadModel.from_pods(pod_table(REALISTIC), MODELS, np.array([0, 4]))
    state = nodes([[1000, 1000], [530, 1000]], [64000, 64000])
    scores = gpupool_scores(state, pod(8000, 1, 470), model)
    assert int(np.argmax(scores.score)) == 1
    assert scores.gpu[1] == 0  # the 530 hole, leaving 60


def test_gpupool_keeps_cpu_for_free_gpus() -> None:
    model = WorkloadModel.from_pods(pod_table(REALISTIC), MODELS, np.array([0, 4]))
    # Same GPUs; the first node would have no CPU left for its two free GPUs.
    state = nodes([[1000, 1000], [1000, 1000]], [20000, 96000])
    scores = gpupool_scores(state, pod(20000, 0, 0), model)
    assert int(np.argmax(scores.score)) == 1


def test_gpupool_spares_models_that_constrained_pods_need() -> None:
    workload = pod_table([(4000, 8000, 1, 1000, "P100")] * 3 + [(4000, 8000, 1, 1000, "")] * 3)
    model = WorkloadModel.from_pods(workload, MODELS, np.array([2, 2]))
    state = nodes([[1000, 1000], [1000, 1000]], [32000, 32000], model=[0, 1])  # P100 first
    scores = gpupool_scores(state, pod(4000, 1, 1000), model)
    assert int(np.argmax(scores.score)) == 1  # the T4 node


def test_every_policy_scores_every_candidate() -> None:
    ctx = PolicyContext(MODELS, np.array([0, 4]), pod_table(REALISTIC), np.random.default_rng(1))
    state = nodes([[1000, 1000], [530, 1000], [190, 0]], [64000, 64000, 64000])
    for name in policy_names():
        policy = make_policy(name, ctx)
        assert policy.name == name
        for request in (pod(1000, 1, 100), pod(1000, 1, 1000), pod(1000, 0, 0)):
            scores = policy.score(state, request)
            assert scores.score.shape == (3,)
            assert np.all(np.isfinite(scores.score))
            if request.shares_gpu:
                chosen = scores.gpu
                ok = (chosen < 0) | (state.gpu_free[np.arange(3), np.maximum(chosen, 0)] >= 100)
                assert ok.all()


def test_registry_names_and_unknown_policy() -> None:
    assert policy_names() == ["bestfit", "dotprod", "fgd", "gpupacking", "gpupool", "random"]
    ctx = PolicyContext(MODELS, np.array([2, 2]), pod_table([(1, 1, 0, 0, "")]), np.random.default_rng(0))
    with pytest.raises(UnknownPolicyError) as caught:
        make_policy("tetris", ctx)
    message = str(caught.value)
    assert "'tetris'" in message
    for name in policy_names():
        assert name in message
