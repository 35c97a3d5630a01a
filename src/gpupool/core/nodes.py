"""Node order and the node index: which node an ask goes to, found without scanning the cluster.

Node sort policies (YuniKorn ``nodesortpolicy``) give every node a key, smaller = preferred:

* ``binpacking``: most utilised first, so whole nodes stay free for big gangs and scale-down;
* ``fair``: least utilised first, to spread load.

Utilisation is YuniKorn's weighted score ``sum(w_t * used_t / capacity_t) / sum(w_t)`` over the
weighted types a node has. gpupool's default weights let GPUs dominate: each GPU resource weighs
ten times all the other weighted resources together. Ties go to the node name that sorts first.

The index keeps schedulable nodes in buckets by (GPU type, GPU level), each bucket sorted by key.
A node's GPU level (``Node.gpu_level``, milli-GPU) is 1000 x its fully free GPUs when it has
any, else the most free milli-GPU on one of its GPUs; an ask of ``m`` milli-GPU (a share of one
GPU, or whole GPUs) fits a node's GPUs exactly when the level is at least ``m``. An ask looks
only at buckets of an allowed type with a level of at least ``m`` and walks each from its best
node to the first that fits, so full nodes cost nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from gpupool.core.model import Node
from gpupool.core.resources import GPU_RESOURCES, Resources, gpu_milli

DEFAULT_WEIGHTS: dict[str, float] = {"vcore": 1.0, "memory": 1.0}
GPU_DOMINANCE = 10.0

NodeKey = tuple[float, str]


def effective_weights(configured: Mapping[str, float] | None) -> dict[str, float]:
    """Weights in force: the configured ones, else gpupool's GPU-dominant defaults."""
    if configured is not None:
        return dict(configured)
    weights = dict(DEFAULT_WEIGHTS)
    gpu_weight = GPU_DOMINANCE * sum(weights.values())
    for name in sorted(GPU_RESOURCES):
        weights[name] = gpu_weight
    return weights


class NodeScorer(Protocol):
    """A node sort policy: ``key(node)``, smaller = preferred, ending in the node name."""

    name: str

    def key(self, node: Node) -> NodeKey: ...


class WeightedUtilization:
    """YuniKorn's ``binpacking`` and ``fair`` node sorting with resource weights."""

    def __init__(self, policy: str = "binpacking", weights: Mapping[str, float] | None = None) -> None:
        if policy not in ("binpacking", "fair"):
            raise ValueError(f"unknown node sort policy {policy!r} (expected binpacking or fair)")
        self.name = policy
        self.weights = effective_weights(weights)
        self._sign = -1.0 if policy == "binpacking" else 1.0

    def utilisation(self, node: Node) -> float:
        num = 0.0
        den = 0.0
        cap = node.capacity
        avail = node.avail
        for t, w in self.weights.items():
            c = cap.get(t, 0)
            if c > 0 and w > 0:
                num += w * (1.0 - avail.get(t, 0) / c)
                den += w
        return num / den if den else 0.0

    def key(self, node: Node) -> NodeKey:
        return (self._sign * self.utilisation(node), node.name)


class FragmentationGradient:
    """FGD-class node choice (Weng et al., ATC'23) for whole-GPU asks.

    The fragmentation of a node, measured against the typical ask shapes (the most popular
    (GPUs, vcore) shapes seen, covering 95% of asks), is the expected number of its free GPUs
    that a typical ask could not use there (milli-GPU, as every GPU amount in the core). An ask
    goes to the node whose fragmentation grows least; ties follow the binpacking key. It scores
    every candidate node, so it is slower than the indexed policies: ``gpupool bench throughput
    --policy fgd`` measures by how much.
    """

    def __init__(self) -> None:
        self.name = "fgd"
        self._order = WeightedUtilization("binpacking", None)
        self._seen: dict[tuple[int, int], int] = {}
        self._typical: list[tuple[int, int, float]] | None = None
        self._count = 0

    def key(self, node: Node) -> NodeKey:
        return self._order.key(node)

    def observe(self, ask: Mapping[str, int]) -> None:
        shape = (gpu_milli(ask), ask.get("vcore", 0))
        self._seen[shape] = self._seen.get(shape, 0) + 1
        self._count += 1
        if self._count < 1000 or self._count % 1000 == 0:
            self._typical = None

    def typical(self) -> list[tuple[int, int, float]]:
        if self._typical is None:
            total = sum(self._seen.values()) or 1
            ranked = sorted(self._seen.items(), key=lambda kv: (-kv[1], kv[0]))
            out: list[tuple[int, int, float]] = []
            covered = 0
            for (g, cpu), n in ranked:
                out.append((g, cpu, n / total))
                covered += n
                if covered >= 0.95 * total:
                    break
            self._typical = out
        return self._typical

    def fragmentation(self, free_gpus: int, free_cpu: int) -> float:
        frag = 0.0
        for g, cpu, p in self.typical():
            if g > free_gpus or cpu > free_cpu:
                frag += p * free_gpus
        return frag

    def score(self, node: Node, ask: Mapping[str, int]) -> float:
        free = max(0, gpu_milli(node.avail))
        cpu = node.avail.get("vcore", 0)
        after = self.fragmentation(free - gpu_milli(ask), cpu - ask.get("vcore", 0))
        return after - self.fragmentation(free, cpu)


def make_scorer(policy: str, weights: Mapping[str, float] | None) -> NodeScorer:
    if policy == "fgd":
        return FragmentationGradient()
    return WeightedUtilization(policy, weights)


class NodeIndex:
    """Schedulable nodes in buckets by (GPU type, GPU level), each sorted by the scorer's key."""

    def __init__(self, scorer: NodeScorer) -> None:
        self.scorer = scorer
        self._buckets: dict[str | None, dict[int, list[tuple[NodeKey, Node]]]] = {}
        self._where: dict[str, tuple[str | None, int, NodeKey]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def add(self, node: Node) -> None:
        if node.name in self._where:
            self.remove(node)
        free = node.gpu_level
        key = self.scorer.key(node)
        bucket = self._buckets.setdefault(node.gpu_type, {}).setdefault(free, [])
        bisect.insort(bucket, (key, node), key=lambda e: e[0])
        self._where[node.name] = (node.gpu_type, free, key)

    def remove(self, node: Node) -> None:
        where = self._where.pop(node.name, None)
        if where is None:
            return
        gpu_type, free, key = where
        by_free = self._buckets[gpu_type]
        bucket = by_free[free]
        i = bisect.bisect_left(bucket, key, key=lambda e: e[0])
        while bucket[i][1] is not node:
            i += 1
        del bucket[i]
        if not bucket:
            del by_free[free]

    def update(self, node: Node) -> None:
        if node.name in self._where:
            self.add(node)

    def level(self, name: str) -> int:
        """The GPU level an indexed node is filed under (0 for a node not in the index)."""
        where = self._where.get(name)
        return where[1] if where is not None else 0

    def types(self) -> list[str | None]:
        return sorted(self._buckets, key=lambda t: (t is None, t or ""))

    def best(
        self,
        gpus: int,
        types: Iterable[str | None] | None,
        fits: Callable[[Node], bool],
        ask: Resources | None = None,
    ) -> Node | None:
        """The preferred node among ``types`` (None = any) with a GPU level of ``gpus`` (milli-GPU:
        room for a share of one GPU, or that many fully free GPUs) on which ``fits``."""
        chosen_types = self._buckets.keys() if types is None else types
        score = getattr(self.scorer, "score", None)
        if score is not None and ask is not None:
            return self._best_scored(gpus, chosen_types, fits, ask, score)
        best: tuple[NodeKey, Node] | None = None
        for t in chosen_types:
            by_free = self._buckets.get(t)
            if not by_free:
                continue
            for free, bucket in by_free.items():
                if free < gpus:
                    continue
                for entry in bucket:
                    if best is not None and entry[0] >= best[0]:
                        break
                    if fits(entry[1]):
                        best = entry
                        break
        return best[1] if best is not None else None

    def _best_scored(
        self,
        gpus: int,
        types: Iterable[str | None],
        fits: Callable[[Node], bool],
        ask: Resources,
        score: Callable[[Node, Resources], float],
    ) -> Node | None:
        """Ask-dependent policies score every node that fits: O(nodes), the price of FGD."""
        best: tuple[float, NodeKey, Node] | None = None
        for t in types:
            for free, bucket in self._buckets.get(t, {}).items():
                if free < gpus:
                    continue
                for key, node in bucket:
                    if not fits(node):
                        continue
                    cand = (score(node, ask), key, node)
                    if best is None or cand[:2] < best[:2]:
                        best = cand
        return best[2] if best is not None else None

    def max_level(self, types: Iterable[str | None] | None) -> int:
        """The highest GPU level of a node among ``types`` (see ``Node.gpu_level``)."""
        out = 0
        chosen_types = self._buckets.keys() if types is None else types
        for t in chosen_types:
            by_free = self._buckets.get(t)
            if by_free:
                out = max(out, max(by_free))
        return out
