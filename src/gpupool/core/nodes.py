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
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from gpupool.core.model import Node
from gpupool.core.resources import GPU_RESOURCES, Resources
from gpupool.core.scored import ScoredOrder
from gpupool.core.scorers import POLICY_NAMES

DEFAULT_WEIGHTS: dict[str, float] = {"vcore": 1.0, "memory": 1.0}
GPU_DOMINANCE = 10.0
_KEY = operator.itemgetter(0)  # a bucket entry's sort key: (key, node) -> key

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


def make_scorer(policy: str, weights: Mapping[str, float] | None) -> NodeScorer:
    """The node sort policy called ``policy`` (core.config.NODE_SORT_POLICIES) with resource weights
    (the tie order of the scored policies)."""
    if policy in POLICY_NAMES:
        return ScoredOrder(policy, WeightedUtilization("binpacking", weights).key)
    return WeightedUtilization(policy, weights)


class NodeIndex:
    """Schedulable nodes in buckets by (GPU type, GPU level), each sorted by the scorer's key."""

    def __init__(self, scorer: NodeScorer) -> None:
        self.scorer = scorer
        self.scored = scorer if isinstance(scorer, ScoredOrder) else None
        self._buckets: dict[str | None, dict[int, list[tuple[NodeKey, Node]]]] = {}
        self._where: dict[str, tuple[str | None, int, NodeKey]] = {}
        self._types: list[str | None] | None = None  # types(), until a new type is indexed

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def add(self, node: Node) -> None:
        self._unfile(node)
        free = node.gpu_level
        key = self.scorer.key(node)
        if node.gpu_type not in self._buckets:
            self._types = None
        bucket = self._buckets.setdefault(node.gpu_type, {}).setdefault(free, [])
        bisect.insort(bucket, (key, node), key=_KEY)
        self._where[node.name] = (node.gpu_type, free, key)
        if self.scored is not None:
            self.scored.touch(node, key)

    def remove(self, node: Node) -> None:
        if self._unfile(node) and self.scored is not None:
            self.scored.touch(node, None)

    def _unfile(self, node: Node) -> bool:
        where = self._where.pop(node.name, None)
        if where is None:
            return False
        gpu_type, free, key = where
        by_free = self._buckets[gpu_type]
        bucket = by_free[free]
        i = bisect.bisect_left(bucket, key, key=_KEY)
        while bucket[i][1] is not node:
            i += 1
        del bucket[i]
        if not bucket:
            del by_free[free]
        return True

    def update(self, node: Node) -> None:
        if node.name in self._where:
            self.add(node)

    def level(self, name: str) -> int:
        """The GPU level an indexed node is filed under (0 for a node not in the index)."""
        where = self._where.get(name)
        return where[1] if where is not None else 0

    def types(self) -> list[str | None]:
        """The GPU types of the indexed nodes, by name (None last); do not edit the list."""
        if self._types is None:
            self._types = sorted(self._buckets, key=lambda t: (t is None, t or ""))
        return self._types

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
        if self.scored is not None and ask is not None:
            return self.scored.best(types, fits, ask)
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

    def max_level(self, types: Iterable[str | None] | None) -> int:
        """The highest GPU level of a node among ``types`` (see ``Node.gpu_level``)."""
        out = 0
        chosen_types = self._buckets.keys() if types is None else types
        for t in chosen_types:
            by_free = self._buckets.get(t)
            if by_free:
                out = max(out, max(by_free))
        return out
