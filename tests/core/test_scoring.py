"""The core's node-scoring policies on hand-built nodes: which node wins and why; the fit rule;
what the workload-aware policies learn (typical shapes, hole waste, model scarcity)."""

from __future__ import annotations

from collections import Counter

import pytest

from gpupool.core.scorers import POLICY_NAMES, Fgd, Fragmentation, Gpupool, make_scoring_policy
from gpupool.core.scoring import (
    AskShape,
    BestFit,
    DotProduct,
    GpuPacking,
    NodeView,
    fits,
    tightest_gpu,
    whole_gpus,
)
from gpupool.core.typical import TypicalShapes, WorkloadStats, hole_waste, pairwise_sum

MEM = 1 << 20


def node(gpu_free: tuple[int, ...], cpu_free: int, model: str | None = "T4", mem_free: int = MEM) -> NodeView:
    return NodeView(gpu_free, cpu_free, mem_free, max(cpu_free, 1), MEM, model)


def ask(cpu: int, gpus: int, milli: int, models: tuple[str, ...] = (), mem: int = 1024) -> AskShape:
    return AskShape(cpu, mem, gpus, milli, models)


def scores(policy, nodes: list[NodeView], shape: AskShape) -> list[float]:  # type: ignore[no-untyped-def]
    return [policy.score(n, shape).score for n in nodes]


def test_tightest_gpu_and_whole_gpus() -> None:
    assert tightest_gpu((1000, 300, 600), 300) == 1
    assert tightest_gpu((200, 100, 0), 300) is None
    assert tightest_gpu((1000, 300, 600), 100) == 1
    assert tightest_gpu((200, 100, 0), 100) == 1
    assert tightest_gpu((400, 700, 400), 400) == 0  # first on ties
    assert whole_gpus((1000, 300, 1000, 1000), 2) == (0, 2)


def test_fit_rule() -> None:
    t4 = node((1000, 300), 8000)
    assert fits(t4, ask(8000, 1, 300))
    assert not fits(t4, ask(8001, 1, 300))  # CPU
    assert not fits(node((1000,), 8000, mem_free=100), ask(1000, 0, 0))  # memory
    assert fits(t4, ask(1000, 1, 1000)) and not fits(t4, ask(1000, 2, 1000))  # whole GPUs
    assert not fits(node((300, 900), 8000), ask(1000, 1, 950))  # a share needs one GPU with enough
    assert not fits(node((600, 600), 8000), ask(1000, 1, 1000))  # a whole GPU must be fully free
    assert fits(t4, ask(1000, 1, 500, ("P100", "T4"))) and not fits(t4, ask(1000, 1, 500, ("P100",)))
    assert fits(node((), 8000, model=None), ask(1000, 0, 0))  # CPU-only on a node without GPUs
    assert not fits(node((), 8000, model=None), ask(1000, 1, 500))


def test_ask_shapes_are_validated() -> None:
    with pytest.raises(ValueError):
        AskShape(1000, 1, 2, 500)  # a share is for one GPU only
    with pytest.raises(ValueError):
        AskShape(1000, 1, 1, 0)
    with pytest.raises(ValueError):
        AskShape(1000, 1, 0, 300)
    with pytest.raises(ValueError):
        AskShape(1000, 1, 1, 1001)
    share = AskShape(1000, 1, 1, 250, ("V100M16", "T4"))
    assert share.shares_gpu and share.gpu_total == 250 and share.spec == "V100M16|T4"
    assert not AskShape(1000, 1, 2, 1000).shares_gpu


def test_bestfit_prefers_least_left_after() -> None:
    nodes = [node((1000, 1000), 64000), node((500, 0), 8000)]
    # 100 x (1 - (60000/128000 + 1500/8000) / 2) = 67.19; 100 x (1 - (4000/128000 + 0) / 2) = 98.44
    assert scores(BestFit(), nodes, ask(4000, 1, 500)) == [67.0, 98.0]
    assert BestFit().score(nodes[1], ask(4000, 1, 500)).gpu == 0  # a share goes to the tightest GPU


def test_dotprod_prefers_smallest_alignment() -> None:
    nodes = [node((1000, 1000), 64000), node((500, 0), 8000)]
    # dot = .5 x .03125 + .25 x .0625 = .03125 -> 98.4; .0625 x .03125 + .0625 x .0625 -> 99.7
    assert scores(DotProduct(), nodes, ask(4000, 1, 500)) == [98.0, 99.0]


def test_gpupacking_prefers_shared_then_used_then_empty() -> None:
    nodes = [node((1000, 1000), 8000), node((500, 0), 8000), node((1000, 300), 8000)]
    assert scores(GpuPacking(), nodes, ask(1000, 1, 500)) == [31.0, 95.0, 49.0]
    assert scores(GpuPacking(), [nodes[0], nodes[2]], ask(1000, 1, 1000)) == [31.0, 49.0]
    assert scores(GpuPacking(), nodes, ask(1000, 0, 0)) == [0.0, 0.0, 0.0]
    assert GpuPacking().score(nodes[2], ask(1000, 1, 200)).gpu == 1  # the shared GPU


def _typical() -> TypicalShapes:
    # 3 asks of half a GPU, 1 ask of a whole GPU: both shapes are typical (weights .75, .25).
    return TypicalShapes.from_counts(Counter({(1000, 500, 1, ""): 3, (1000, 1000, 1, ""): 1}))


def test_typical_shapes_cover_the_popular_shapes() -> None:
    typical = _typical()
    assert [t.gpu_milli for t in typical.shapes] == [500, 1000]
    assert [t.weight for t in typical.shapes] == pytest.approx([0.75, 0.25])
    assert typical.thresholds == (500, 1000)
    counts = Counter({(1, 100, 1, ""): 96, (2, 200, 1, ""): 3, (3, 300, 1, ""): 1})
    assert [t.gpu_milli for t in TypicalShapes.from_counts(counts).shapes] == [100]  # 96% >= 95%
    assert len(TypicalShapes.from_counts(counts, popularity=97)) == 2
    with pytest.raises(ValueError):
        TypicalShapes.from_counts(Counter())


def test_fragmentation_against_typical_shapes() -> None:
    frag = Fragmentation(_typical())
    nodes = [node((1000, 1000), 8000), node((1000, 300), 8000), node((300, 0), 8000), node((1000, 1000), 500)]
    # (1000, 300): 300 milli are too small for both shapes; (300, 0): neither shape fits at all;
    # the last node lacks CPU for both shapes, so all its free GPU is fragmented.
    assert [frag.of(n) for n in nodes] == pytest.approx([0.0, 300.0, 300.0, 2000.0])


def test_fragmentation_respects_gpu_models() -> None:
    frag = Fragmentation(TypicalShapes.from_counts(Counter({(1000, 500, 1, "P100"): 1})))
    assert frag.of(node((1000,), 8000, "P100")) == 0.0
    assert frag.of(node((1000,), 8000, "T4")) == 1000.0


def test_fgd_picks_the_smallest_fragmentation_growth() -> None:
    fgd = Fgd(_typical())
    nodes = [node((1000, 1000), 8000), node((1000, 600), 8000)]
    # Node 0: fragmentation 0 -> 125 (sigmoid(-0.125) -> 46). Node 1: 150 -> 100 when the ask
    # takes GPU 1 (leaving 100), sigmoid(0.05) -> 51; via GPU 0 it would grow to 275.
    assert scores(fgd, nodes, ask(1000, 1, 500)) == [46.0, 51.0]
    assert [fgd.score(n, ask(1000, 1, 500)).gpu for n in nodes] == [0, 1]
    # A whole GPU changes neither node's fragmentation (node 1's 600 stays too small for the
    # whole-GPU shape, 150 before and after): a tie at sigmoid(0), which the first node wins.
    assert scores(fgd, nodes, ask(1000, 1, 1000)) == [50.0, 50.0]
    # A node left with 500 milli-CPU can feed no typical shape: its other GPU becomes a fragment
    # (0 -> 1000, sigmoid(-1) -> 26), so the CPU-rich node wins.
    cpu_poor = node((1000, 1000), 1500)
    assert scores(fgd, [cpu_poor, nodes[0]], ask(1000, 1, 1000)) == [26.0, 50.0]


def test_hole_waste_by_hand() -> None:
    waste = hole_waste({500: 2}, kappa=0.2)
    assert waste[0] == 0
    assert waste[499] == 499  # nothing fits
    assert waste[500] == pytest.approx(500 / 6)  # filled with probability 1 / 1.2
    assert waste[1000] == pytest.approx(1000 / 6 + 5 / 6 * 500 / 6)
    assert all(w <= h for h, w in enumerate(waste))
    assert hole_waste({}) == tuple(float(h) for h in range(1001))


def _stats(rows: list[tuple[int, int, int, int, str]], model_gpus: dict[str, int]) -> WorkloadStats:
    """(cpu, mem, gpus, milli, spec) rows, observed in order."""
    stats = WorkloadStats(model_gpus)
    for cpu, mem, gpus, milli, spec in rows:
        stats.observe(AskShape(cpu, mem, gpus, milli, tuple(spec.split("|")) if spec else ()))
    return stats


def test_model_scarcity() -> None:
    rows = [(1, 1, 1, 1000, "P100"), (1, 1, 1, 500, "P100|T4"), (1, 1, 1, 1000, "")]
    # P100 (2 GPUs) gets 1000 + 500 x 2/6; T4 (4 GPUs) gets 500 x 4/6.
    scarcity = _stats(rows, {"P100": 2, "T4": 4}).model().scarcity
    assert scarcity["P100"] == pytest.approx((1000 + 500 / 3) / 2000)
    assert scarcity["T4"] == pytest.approx((2000 / 6) / 4000)
    assert _stats([(1, 1, 1, 1000, "")], {"P100": 2, "T4": 4}).model().scarcity == {"P100": 0, "T4": 0}


def test_workload_stats_learn_ratios_and_are_deterministic() -> None:
    rows = [(4000, 8000, 1, 500, ""), (8000, 16000, 2, 1000, ""), (2000, 4000, 0, 0, "")]
    model = _stats(rows, {"T4": 4}).model()
    assert model.cpu_per_milli == pytest.approx(12000 / 2500)  # GPU asks only
    assert model.mem_per_milli == pytest.approx(24000 / 2500)
    assert model.hole_waste == hole_waste({500: 1})
    assert _stats(rows, {"T4": 4}).model() == model


def test_pairwise_sum_is_numpys_order() -> None:
    values = [1e16] + [1.0] * 7 + [-1e16] + [1.0] * 8
    # Eight running sums over the first 16: r0 = 1e16 - 1e16 = 0, r1..r7 = 2 each -> 14, then the
    # 17th -> 15 (left to right, the ones would vanish into 1e16 and the sum would be 8).
    assert pairwise_sum(values) == 15.0
    assert pairwise_sum([0.5] * 300) == 150.0
    assert pairwise_sum([]) == 0.0


REALISTIC = (
    [(3152, 16000, 1, 810, "")] * 35 + [(8000, 16000, 1, 470, "")] * 25 + [(4000, 8000, 1, 320, "")] * 11
)
REALISTIC += [(11000, 40000, 1, 1000, "")] * 48


def test_gpupool_fills_a_hole_rather_than_a_fresh_gpu() -> None:
    policy = Gpupool(_stats(REALISTIC, {"T4": 4}).model())
    nodes = [node((1000, 1000), 64000), node((530, 1000), 64000)]
    result = [policy.score(n, ask(8000, 1, 470)) for n in nodes]
    assert result[1].score > result[0].score
    assert result[1].gpu == 0  # the 530 hole, leaving 60


def test_gpupool_keeps_cpu_for_free_gpus() -> None:
    policy = Gpupool(_stats(REALISTIC, {"T4": 4}).model())
    # Same GPUs; the first node would have no CPU left for its two free GPUs.
    nodes = [node((1000, 1000), 20000), node((1000, 1000), 96000)]
    first, second = scores(policy, nodes, ask(20000, 0, 0))
    assert second > first


def test_gpupool_spares_models_that_constrained_asks_need() -> None:
    rows = [(4000, 8000, 1, 1000, "P100")] * 3 + [(4000, 8000, 1, 1000, "")] * 3
    policy = Gpupool(_stats(rows, {"P100": 2, "T4": 2}).model())
    nodes = [node((1000, 1000), 32000, "P100"), node((1000, 1000), 32000, "T4")]
    p100, t4 = scores(policy, nodes, ask(4000, 1, 1000))
    assert t4 > p100


def test_registry_builds_every_core_policy() -> None:
    stats = _stats(REALISTIC, {"T4": 4})
    nodes = [node((1000, 1000), 64000), node((530, 1000), 64000), node((190, 0), 64000)]
    for name in POLICY_NAMES:
        policy = make_scoring_policy(name, stats)
        assert policy.name == name
        for shape in (ask(1000, 1, 100), ask(1000, 1, 1000), ask(1000, 0, 0)):
            for n in nodes:
                if not fits(n, shape):
                    continue
                result = policy.score(n, shape)
                assert result.score == result.score and abs(result.score) < 1e9  # finite
                if shape.shares_gpu:
                    assert result.gpu is not None and n.gpu_free[result.gpu] >= 100
                else:
                    assert result.gpu is None
    with pytest.raises(KeyError):
        make_scoring_policy("tetris", stats)
