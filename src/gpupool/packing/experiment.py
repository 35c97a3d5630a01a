"""The packing experiment of the FGD paper (docs/packing.md; spec/benchmarks.md section 1).

For each seed:

1. the nodes, sorted by name, are put in a random order (a random permutation);
2. the pods are sorted by name and shuffled;
3. the pod list is inflated to ``ratio`` x the cluster's GPU capacity: copies of uniformly drawn
   pods are appended while the total GPU request stays within the target (the first one that
   would overshoot stops it), or random pods are dropped while the total exceeds it;
4. the pods are scheduled one by one, without departures, queueing or retries: a pod that fits
   on no node fails. The policy scores the nodes the pod fits on; the highest score wins, ties
   going to the node that comes first in the seed's node order;
5. after each pod the arrived GPU request (failed pods included) and the allocated GPUs are
   recorded; the figure at x% is the mean allocated percent over the events whose arrived
   request rounds to x% of capacity (the neighbours x +- 1 if there are none, as the paper's
   analysis script does).

The cluster is a list of the core's node views (:class:`gpupool.core.scoring.NodeView`), scored by
the core's policies. Scores are kept per pod shape, in a heap, and only the nodes that changed
since the shape's last pod are rescored (equal nodes share one score); the best node is the top
of the heap, ties going to the node first in order.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from gpupool.core.scoring import (
    MILLI,
    AskShape,
    NodeScore,
    NodeView,
    ScoringPolicy,
    fits,
    tightest_gpu,
    whole_gpus,
)
from gpupool.packing.alibaba import NodeTable, PodTable
from gpupool.packing.policies import PackingPolicy, PolicyContext, RandomPolicy, make_policy, pod_asks

DEFAULT_SEEDS = tuple(range(42, 52))
DEFAULT_RATIO = 1.3
REPORTED_POINTS = (100, 130)

ProgressFn = Callable[[int, int, int], None]  # (seed, pods done, pods total)


@dataclass(frozen=True)
class Cluster:
    """Nodes in one seed's order, as arrays. ``model`` indexes ``models`` (-1: no GPU)."""

    names: tuple[str, ...]
    models: tuple[str, ...]
    cpu_cap: np.ndarray
    mem_cap: np.ndarray
    gpu_count: np.ndarray
    model: np.ndarray

    @property
    def max_gpus(self) -> int:
        return max(int(self.gpu_count.max(initial=0)), 1)

    @property
    def capacity_milli(self) -> int:
        return int(self.gpu_count.sum()) * MILLI

    @property
    def model_gpus(self) -> np.ndarray:
        """GPUs per model (index as ``models``)."""
        has = self.model >= 0
        return np.bincount(self.model[has], weights=self.gpu_count[has], minlength=len(self.models)).astype(
            np.int64
        )


def model_names(nodes: NodeTable) -> tuple[str, ...]:
    return tuple(sorted({m for m in nodes.models if m}))


def cluster_in_order(nodes: NodeTable, order: np.ndarray | None = None) -> Cluster:
    """The nodes sorted by name, then taken in ``order`` (indexes into the sorted list)."""
    models = model_names(nodes)
    by_name = np.array(sorted(range(len(nodes)), key=lambda i: nodes.names[i]), dtype=np.int64)
    idx = by_name if order is None else by_name[np.asarray(order, dtype=np.int64)]
    model_id = {m: i for i, m in enumerate(models)}
    return Cluster(
        names=tuple(nodes.names[i] for i in idx),
        models=models,
        cpu_cap=nodes.cpu_milli[idx].copy(),
        mem_cap=nodes.memory_mib[idx].copy(),
        gpu_count=nodes.gpus[idx].copy(),
        model=np.array([model_id.get(nodes.models[i], -1) for i in idx], dtype=np.int64),
    )


def sorted_by_name(pods: PodTable) -> np.ndarray:
    return np.array(sorted(range(len(pods)), key=lambda i: pods.names[i]), dtype=np.int64)


def workload_order(pods: PodTable, rng: np.random.Generator, ratio: float, capacity_milli: int) -> np.ndarray:
    """Indexes into ``pods`` in scheduling order: sorted by name, shuffled, then inflated (or
    thinned) to ``ratio`` x capacity of total GPU request."""
    base = sorted_by_name(pods)
    order = base.copy()
    rng.shuffle(order)
    request = pods.gpu_milli_total
    target = ratio * capacity_milli
    total = int(request.sum())
    if total < target and (request > 0).any():  # (a list of CPU-only pods is never inflated)
        extra: list[int] = []
        while True:
            pick = int(base[rng.integers(len(base))])
            if total + int(request[pick]) > target:
                break
            extra.append(pick)
            total += int(request[pick])
        order = np.concatenate([order, np.array(extra, dtype=np.int64)])
    elif total > target:
        kept = order.tolist()
        while total > target and kept:
            drop = kept.pop(int(rng.integers(len(kept))))
            total -= int(request[drop])
        order = np.array(kept, dtype=np.int64)
    return order


class _ShapeCache:
    """One pod shape's view of the nodes: a heap of (-score, node, node version, GPU), stale
    entries dropped when they come to the top (``random``: which nodes fit). Only the nodes
    changed since the shape's last pod are looked at again."""

    __slots__ = ("ask", "feasible", "heap", "memo", "scored", "seen")

    def __init__(self, ask: AskShape, n_nodes: int) -> None:
        self.ask = ask
        self.heap: list[tuple[float, int, int, int | None]] = []
        self.scored = [-1] * n_nodes  # node version each node was last looked at
        self.seen = -1  # length of the change log at the shape's last pod (-1: never)
        self.memo: dict[int, NodeScore | None] = {}  # by view id, for views several nodes share
        self.feasible = np.zeros(n_nodes, dtype=bool)


class _Nodes:
    """The nodes during one run: their views, a version per node, the log of changed nodes, and
    an id per distinct view with the number of nodes that have it (equal nodes share scores)."""

    def __init__(self, cluster: Cluster) -> None:
        self.views = [
            NodeView((MILLI,) * g, c, m, c, m, cluster.models[k] if k >= 0 else None)
            for g, c, m, k in zip(
                cluster.gpu_count.tolist(),
                cluster.cpu_cap.tolist(),
                cluster.mem_cap.tolist(),
                cluster.model.tolist(),
                strict=True,
            )
        ]
        self.version = [0] * len(self.views)
        self.changes: list[int] = []  # the node each placement changed, in order
        self._ids: dict[NodeView, int] = {}
        self.view_id = [self._intern(v) for v in self.views]
        self.sharing: Counter[int] = Counter(self.view_id)

    def _intern(self, view: NodeView) -> int:
        return self._ids.setdefault(view, len(self._ids))

    def stale(self, cache: _ShapeCache) -> Iterator[int]:
        """The nodes changed since the shape's last pod (each once), marked as looked at."""
        n_nodes = len(self.views)
        changes = self.changes
        candidates: Iterable[int]
        if cache.seen < 0 or len(changes) - cache.seen >= n_nodes:
            candidates = range(n_nodes)
        else:
            candidates = changes[cache.seen :]
        cache.seen = len(changes)
        scored = cache.scored
        version = self.version
        for node in candidates:
            v = version[node]
            if scored[node] != v:
                scored[node] = v
                yield node

    def place(self, node: int, ask: AskShape, gpu: int | None) -> None:
        """Put ``ask`` on ``node`` (a share on ``gpu``, or the tightest GPU)."""
        view = self.views[node]
        free = view.gpu_free
        if ask.shares_gpu:
            g = gpu if gpu is not None else tightest_gpu(free, ask.gpu_milli)
            assert g is not None and free[g] >= ask.gpu_milli
            free = (*free[:g], free[g] - ask.gpu_milli, *free[g + 1 :])
        elif ask.gpus:
            taken = set(whole_gpus(free, ask.gpus))
            free = tuple(0 if g in taken else f for g, f in enumerate(free))
        view = replace(
            view, gpu_free=free, cpu_free=view.cpu_free - ask.cpu, mem_free=view.mem_free - ask.mem
        )
        self.views[node] = view
        self.sharing[self.view_id[node]] -= 1
        self.view_id[node] = vid = self._intern(view)
        self.sharing[vid] += 1
        self.version[node] += 1
        self.changes.append(node)


_UNSEEN = NodeScore(float("nan"))  # memo marker: not scored yet (None: does not fit)


def _best_scored(cache: _ShapeCache, policy: ScoringPolicy, nodes: _Nodes) -> tuple[int, int | None] | None:
    """The best node for the shape (ties to the first in order) and the GPU of a share."""
    ask = cache.ask
    heap = cache.heap
    memo = cache.memo
    views, view_id, sharing, version = nodes.views, nodes.view_id, nodes.sharing, nodes.version
    for node in nodes.stale(cache):
        vid = view_id[node]
        result = memo.get(vid, _UNSEEN)
        if result is _UNSEEN:
            view = views[node]
            result = policy.score(view, ask) if fits(view, ask) else None
            if sharing[vid] > 1:
                memo[vid] = result
        if result is not None:
            heapq.heappush(heap, (-result.score, node, version[node], result.gpu))
    while heap:
        _, node, v, gpu = heap[0]
        if version[node] == v:
            return node, gpu
        heapq.heappop(heap)
    return None


def _random_choice(
    cache: _ShapeCache, policy: RandomPolicy, nodes: _Nodes, gpu_slots: int
) -> tuple[int, int | None] | None:
    """A random feasible node (and GPU of a share); the shape's feasible set is kept up to date."""
    feasible = cache.feasible
    for node in nodes.stale(cache):
        feasible[node] = fits(nodes.views[node], cache.ask)
    rows = np.flatnonzero(feasible)
    if not rows.size:
        return None
    pick = policy.choose_node(int(rows.size))
    node = int(rows[pick])
    ask = cache.ask
    if not ask.shares_gpu:
        return node, None
    return node, policy.choose_gpu(int(rows.size), pick, nodes.views[node].gpu_free, ask.gpu_milli, gpu_slots)


@dataclass
class Trace:
    """What one run of the scheduler produced, one entry per pod (in scheduling order)."""

    node: np.ndarray  # int64 [P]: index of the chosen node in the cluster order, -1 = failed
    arrived_milli: np.ndarray  # int64 [P]: cumulative GPU request after each pod
    used_milli: np.ndarray  # int64 [P]: allocated milli-GPU after each pod
    capacity_milli: int
    gpu_free: np.ndarray = field(repr=False)  # final per-GPU free milli [N, G]
    cpu_free: np.ndarray = field(repr=False)
    mem_free: np.ndarray = field(repr=False)

    @property
    def failed(self) -> int:
        return int((self.node < 0).sum())

    @property
    def arrived_pct(self) -> np.ndarray:
        return self.arrived_milli * 100.0 / self.capacity_milli

    @property
    def alloc_pct(self) -> np.ndarray:
        return self.used_milli * 100.0 / self.capacity_milli


def schedule(
    cluster: Cluster,
    pods: PodTable,
    policy: PackingPolicy,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Trace:
    """Place ``pods`` one by one, in order, on ``cluster`` (initially empty) with ``policy``."""
    nodes = _Nodes(cluster)
    n_nodes = len(nodes.views)
    asks = pod_asks(pods)
    caches: dict[AskShape, _ShapeCache] = {}
    chosen = [-1] * len(asks)
    arrived = [0] * len(asks)
    used = [0] * len(asks)
    arrived_total = used_total = 0

    for i, ask in enumerate(asks):
        arrived_total += ask.gpu_total
        cache = caches.get(ask)
        if cache is None:
            cache = caches[ask] = _ShapeCache(ask, n_nodes)
        if isinstance(policy, RandomPolicy):
            best = _random_choice(cache, policy, nodes, cluster.max_gpus)
        else:
            best = _best_scored(cache, policy, nodes)
        if best is not None:
            nodes.place(best[0], ask, best[1])
            used_total += ask.gpu_total
            chosen[i] = best[0]
        arrived[i] = arrived_total
        used[i] = used_total
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1, len(asks))
    if progress is not None:
        progress(len(asks), len(asks))
    gpu_free = np.zeros((n_nodes, cluster.max_gpus), dtype=np.int64)
    for n, view in enumerate(nodes.views):
        gpu_free[n, : view.gpu_count] = view.gpu_free
    return Trace(
        np.array(chosen, dtype=np.int64),
        np.array(arrived, dtype=np.int64),
        np.array(used, dtype=np.int64),
        cluster.capacity_milli,
        gpu_free,
        np.array([v.cpu_free for v in nodes.views], dtype=np.int64),
        np.array([v.mem_free for v in nodes.views], dtype=np.int64),
    )


def alloc_at(arrived_pct: np.ndarray, alloc_pct: np.ndarray, point: int) -> float | None:
    """Mean allocated percent over the events whose arrived percent rounds to ``point`` (or to
    ``point`` +- 1 when none does); None if there are no such events."""
    bucket = np.round(arrived_pct)
    hit = bucket == point
    if not hit.any():
        hit = (bucket >= point - 1) & (bucket <= point + 1)
    if not hit.any():
        return None
    return float(alloc_pct[hit].mean())


@dataclass(frozen=True)
class SeedResult:
    """One seed of the packing experiment: allocation at 100 % and 130 % of capacity, failures."""

    seed: int
    alloc_pct_at_100: float | None
    alloc_pct_at_130: float | None
    failed_pods: int
    pods: int
    seconds: float
    arrived_pct: np.ndarray = field(repr=False)
    alloc_pct: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class PackResult:
    """A whole `bench pack` run: the policy, the trace files, and every seed's result."""

    policy: str
    nodes_file: str
    pods_file: str
    ratio: float
    seeds: tuple[int, ...]
    per_seed: tuple[SeedResult, ...]
    seconds: float

    @property
    def alloc_pct_at_100(self) -> float | None:
        return _mean([s.alloc_pct_at_100 for s in self.per_seed])

    @property
    def alloc_pct_at_130(self) -> float | None:
        return _mean([s.alloc_pct_at_130 for s in self.per_seed])

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "pods_file": self.pods_file,
            "seeds": list(self.seeds),
            "alloc_pct_at_100": _round(self.alloc_pct_at_100),
            "alloc_pct_at_130": _round(self.alloc_pct_at_130),
            "per_seed": [
                {
                    "seed": s.seed,
                    "alloc_pct_at_100": _round(s.alloc_pct_at_100),
                    "alloc_pct_at_130": _round(s.alloc_pct_at_130),
                    "failed_pods": s.failed_pods,
                }
                for s in self.per_seed
            ],
            "seconds": round(self.seconds, 3),
        }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def run_seed(
    nodes: NodeTable,
    pods: PodTable,
    policy_name: str,
    seed: int,
    ratio: float = DEFAULT_RATIO,
    *,
    progress: ProgressFn | None = None,
) -> SeedResult:
    """One seed of the experiment: order, inflate, schedule, measure."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    cluster = cluster_in_order(nodes, rng.permutation(len(nodes)))
    order = workload_order(pods, rng, ratio, cluster.capacity_milli)
    workload = pods.take(order)
    policy = make_policy(
        policy_name,
        PolicyContext(models=cluster.models, model_gpus=cluster.model_gpus, workload=pods, rng=rng),
    )
    step = None if progress is None else (lambda done, total: progress(seed, done, total))
    trace = schedule(cluster, workload, policy, progress=step)
    arrived, alloc = trace.arrived_pct, trace.alloc_pct
    return SeedResult(
        seed=seed,
        alloc_pct_at_100=alloc_at(arrived, alloc, 100),
        alloc_pct_at_130=alloc_at(arrived, alloc, 130),
        failed_pods=trace.failed,
        pods=len(workload),
        seconds=time.perf_counter() - started,
        arrived_pct=arrived,
        alloc_pct=alloc,
    )


def run_pack(
    nodes: NodeTable,
    pods: PodTable,
    policy_name: str,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    ratio: float = DEFAULT_RATIO,
    *,
    progress: ProgressFn | None = None,
) -> PackResult:
    """The experiment over ``seeds`` (validates the policy name and the cluster before any work)."""
    if nodes.total_gpus == 0:
        raise ValueError(f"{nodes.file}: the nodes have no GPUs, so there is nothing to pack")
    cluster = cluster_in_order(nodes)
    make_policy(
        policy_name, PolicyContext(cluster.models, cluster.model_gpus, pods, np.random.default_rng(0))
    )
    started = time.perf_counter()
    per_seed = tuple(run_seed(nodes, pods, policy_name, seed, ratio, progress=progress) for seed in seeds)
    return PackResult(
        policy=policy_name,
        nodes_file=nodes.file,
        pods_file=pods.file,
        ratio=ratio,
        seeds=tuple(seeds),
        per_seed=per_seed,
        seconds=time.perf_counter() - started,
    )
