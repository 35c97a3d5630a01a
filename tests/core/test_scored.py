"""The scored node order (core/scored.py): the index's cached answer is the brute-force best over
all nodes, a changed node is re-scored, a refresh relearns; the scheduler's fit and the packing
experiment's fit are one rule."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from gpupool.core import scored
from gpupool.core.config import NodeSortPolicy, PartitionConfig, QueueConfig
from gpupool.core.fit import fits_node
from gpupool.core.model import GPU_TYPE_LABEL, App, Ask, Node, NodeSpec, pick_gpus
from gpupool.core.nodes import NodeIndex, WeightedUtilization, make_scorer
from gpupool.core.scheduler import Scheduler
from gpupool.core.scored import ScoredOrder, ask_shape, node_view
from gpupool.core.scorers import POLICY_NAMES
from gpupool.core.scoring import fits

MODELS = ("H100", "A100")
SHARES = (250, 500, 125)


def _node(rng: random.Random, i: int) -> Node:
    gpus = rng.choice((2, 4, 8))
    node = Node(
        f"n{i:03d}",
        {"gpu": gpus * 1000, "vcore": gpus * 8000, "memory": gpus * 64},
        {GPU_TYPE_LABEL: rng.choice(MODELS)},
    )
    for _ in range(rng.randint(0, 6)):
        _take(rng, node)
    return node


def _res(rng: random.Random) -> dict[str, int]:
    if rng.random() < 0.4:
        milli = rng.choice(SHARES)
        return {"gpu": milli, "vcore": 2000, "memory": 8}
    gpus = rng.choice((1, 1, 2, 4))
    return {"gpu": gpus * 1000, "vcore": gpus * rng.choice((4000, 8000)), "memory": gpus * 32}


_TAKEN: dict[str, list[tuple[dict[str, int], tuple[int, ...]]]] = {}


def _take(rng: random.Random, node: Node) -> None:
    res = _res(rng)
    view = node_view(node)
    if fits(view, ask_shape(res)):
        chosen = pick_gpus(node.gpu_free, res["gpu"])
        assert chosen is not None
        node.take(res, chosen)
        _TAKEN.setdefault(node.name, []).append((res, chosen))


def _give(node: Node) -> None:
    res, chosen = _TAKEN[node.name].pop()
    node.give(res, chosen)


def _brute(order: ScoredOrder, nodes: list[Node], res: dict[str, int], types: list[str]) -> Node | None:
    shape = ask_shape(res)
    best: tuple[float, tuple[float, str], Node] | None = None
    for node in nodes:
        view = node_view(node)
        if node.gpu_type not in types or not fits(view, shape):
            continue
        cand = (-order.policy.score(view, shape).score, order.key(node), node)
        if best is None or cand[:2] < best[:2]:
            best = cand
    return best[2] if best is not None else None


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tight", [False, True], ids=["defaults", "short-log-small-memo-relabels"])
def test_the_cached_best_is_the_brute_force_best_as_nodes_change(
    policy: str, seed: int, tight: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tight:
        monkeypatch.setattr(scored, "_LOG_LIMIT", 16)  # trims often; lagging shape caches are dropped
        monkeypatch.setattr(scored, "_MEMO_LIMIT", 8)  # the memo starts afresh often
    rng = random.Random(seed)
    _TAKEN.clear()
    order = make_scorer(policy, None)
    assert isinstance(order, ScoredOrder)
    index = NodeIndex(order)
    nodes = [_node(rng, i) for i in range(40)]
    for node in nodes:
        index.add(node)
    for _ in range(30):
        order.observe(_res(rng), ())
    for _ in range(300):
        res = _res(rng)
        types = rng.choice((list(MODELS), [MODELS[0]], [MODELS[1]]))
        got = index.best(res["gpu"], types, lambda n: True, res)
        assert got is _brute(order, nodes, res, types)
        # Change a few nodes between asks: placements, releases, relabelling (it moves to the
        # other type's caches and log), a node leaving and coming back.
        for node in rng.sample(nodes, 3):
            if tight and rng.random() < 0.1:
                index.remove(node)
                node.gpu_type = MODELS[1] if node.gpu_type == MODELS[0] else MODELS[0]
                node.labels[GPU_TYPE_LABEL] = node.gpu_type
                index.add(node)
                continue
            if _TAKEN.get(node.name) and rng.random() < 0.5:
                _give(node)
            else:
                _take(rng, node)
            index.update(node)
        if rng.random() < 0.05:
            gone = rng.choice(nodes)
            index.remove(gone)
            nodes.remove(gone)
        if rng.random() < 0.1:
            order.observe(_res(rng), ())


def test_a_changed_node_is_rescored_and_a_filter_skips_without_losing_nodes() -> None:
    order = make_scorer("gpupool", None)
    assert isinstance(order, ScoredOrder)
    index = NodeIndex(order)
    a = Node("a", {"gpu": 2000, "vcore": 16000, "memory": 100}, {GPU_TYPE_LABEL: "H100"})
    b = Node("b", {"gpu": 2000, "vcore": 16000, "memory": 100}, {GPU_TYPE_LABEL: "H100"})
    index.add(a)
    index.add(b)
    whole = {"gpu": 1000, "vcore": 4000, "memory": 10}
    order.observe(whole, ())
    assert index.best(1000, None, lambda n: True, whole) is a  # a tie: the binpacking key, the name
    a.take({"gpu": 2000, "vcore": 8000, "memory": 20}, (0, 1))  # a is full now
    index.update(a)
    assert index.best(1000, None, lambda n: True, whole) is b
    assert index.best(1000, None, lambda n: n is not b, whole) is None
    assert index.best(1000, None, lambda n: True, whole) is b  # the skipped node is still there
    a.give({"gpu": 2000, "vcore": 8000, "memory": 20}, (0, 1))
    index.update(a)
    b.take({"gpu": 1000, "vcore": 4000, "memory": 10}, (0,))
    index.update(b)
    # b has one GPU left: taking it keeps a whole, so gpupool (and the binpacking tie) prefers b.
    assert index.best(1000, None, lambda n: True, whole) is b


def test_the_model_is_refreshed_when_the_observed_count_doubles() -> None:
    order = ScoredOrder("gpupool", WeightedUtilization("binpacking").key)
    counts = []
    for _ in range(20):
        order.observe({"gpu": 250, "vcore": 1000}, ())
        counts.append(order.refreshed_at)
    assert counts[:5] == [1, 2, 2, 4, 4] and counts[-1] == 16
    assert ScoredOrder("bestfit", WeightedUtilization("binpacking").key).refreshed_at == 0


def test_a_share_does_not_break_a_free_gpu_while_a_used_one_has_room() -> None:
    order = ScoredOrder("gpupool", WeightedUtilization("binpacking").key)
    for _ in range(10):
        order.observe({"gpu": 250, "vcore": 1000}, ())
    node = Node("n", {"gpu": 2000, "vcore": 16000}, {GPU_TYPE_LABEL: "H100"})
    node.take({"gpu": 250, "vcore": 1000}, (1,))
    assert order.share_gpu(node, {"gpu": 250, "vcore": 1000}) == 1
    assert order.share_gpu(node, {"gpu": 1000}) is None


@pytest.mark.parametrize("seed", range(20))
def test_the_scheduler_fit_and_the_packing_fit_are_one_rule(seed: int) -> None:
    rng = random.Random(seed)
    app = App("app", user="u", groups=(), tags={}, gang=None, seq=0)
    for i in range(50):
        node = _node(rng, i)
        res = _res(rng)
        if rng.random() < 0.3:
            res["vcore"] = rng.randint(0, node.capacity["vcore"])
        ask = Ask("a", app, res, created=0.0, seq=i)
        assert fits_node(ask, node) == fits(node_view(node), ask_shape(res)), (node.gpu_free, node.avail, res)


def test_a_config_reload_to_a_learning_policy_learns_the_pending_asks() -> None:
    root = QueueConfig(name="root", submit_acl="*", queues=(QueueConfig(name="team"),), parent=True)
    partition = PartitionConfig(name="default", root=root, node_sort_policy=NodeSortPolicy(type="binpacking"))
    sched = Scheduler(partition)
    sched.add_node(NodeSpec("n", {"gpu": 2000, "vcore": 8000}, {GPU_TYPE_LABEL: "H100"}))
    assert sched.submit("app", queue="root.team") is None
    for i in range(3):
        sched.add_ask("app", f"a{i}", {"gpu": 250, "vcore": 1000}, created=0.0)
    sched.update_config(replace(partition, node_sort_policy=NodeSortPolicy(type="gpupool")))
    order = sched.index.scorer
    assert isinstance(order, ScoredOrder) and order.observed == 3
    assert order.refreshed_at == 2  # refreshed at the 1st and 2nd ask
