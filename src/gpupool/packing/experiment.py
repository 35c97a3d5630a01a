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

The cluster is held as arrays over nodes (per-GPU free milli as an int array [nodes, GPUs]),
so a pod's fit and scores are computed for all nodes at once. Scores of cacheable policies are
kept per pod shape and recomputed only for the nodes that changed since.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gpupool.packing.alibaba import MILLI, NodeTable, PodTable
from gpupool.packing.policies import (
    NodeState,
    PodRequest,
    Policy,
    PolicyContext,
    make_policy,
    model_access,
    node_access,
    tightest_gpu,
)

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


@dataclass
class _Shape:
    request: PodRequest
    kind: int  # 0 CPU-only, 1 shared GPU, 2 whole GPUs
    spec: int
    score: np.ndarray | None = None
    gpu: np.ndarray | None = None
    version: np.ndarray | None = None


_CPU_ONLY, _SHARED, _WHOLE = 0, 1, 2


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
    policy: Policy,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Trace:
    """Place ``pods`` one by one, in order, on ``cluster`` (initially empty) with ``policy``."""
    n_nodes, n_gpus = len(cluster.names), cluster.max_gpus
    gpu_free = np.where(np.arange(n_gpus) < cluster.gpu_count[:, None], MILLI, 0).astype(np.int64)
    cpu_free = cluster.cpu_cap.astype(np.int64).copy()
    mem_free = cluster.mem_cap.astype(np.int64).copy()
    total_free = gpu_free.sum(axis=1)
    full_free = (gpu_free == MILLI).sum(axis=1)
    max_free = gpu_free.max(axis=1)
    version = np.zeros(n_nodes, dtype=np.int64)

    specs = sorted(set(pods.gpu_spec))
    spec_id = {s: i for i, s in enumerate(specs)}
    allowed = [model_access(s, cluster.models) for s in specs]
    access = [node_access(a, cluster.model) for a in allowed]

    keys = list(
        zip(
            pods.cpu_milli.tolist(),
            pods.memory_mib.tolist(),
            pods.num_gpu.tolist(),
            pods.gpu_milli.tolist(),
            pods.gpu_spec,
            strict=True,
        )
    )
    shape_of: dict[tuple[int, int, int, int, str], int] = {}
    shapes: list[_Shape] = []
    pod_shape = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        sid = shape_of.get(key)
        if sid is None:
            cpu, mem, num, milli, spec = key
            sid = shape_of[key] = len(shapes)
            kind = _CPU_ONLY if num == 0 else (_WHOLE if milli >= MILLI else _SHARED)
            request = PodRequest(cpu, mem, num, milli, allowed[spec_id[spec]])
            shapes.append(_Shape(request, kind, spec_id[spec]))
        pod_shape[i] = sid

    chosen = np.full(len(keys), -1, dtype=np.int64)
    arrived = np.empty(len(keys), dtype=np.int64)
    used = np.empty(len(keys), dtype=np.int64)
    arrived_total = used_total = 0
    cacheable = policy.cacheable

    def view(rows: np.ndarray) -> NodeState:
        return NodeState(
            gpu_free=gpu_free[rows],
            cpu_free=cpu_free[rows],
            mem_free=mem_free[rows],
            cpu_cap=cluster.cpu_cap[rows],
            mem_cap=cluster.mem_cap[rows],
            gpu_count=cluster.gpu_count[rows],
            model=cluster.model[rows],
        )

    for i in range(len(keys)):
        shape = shapes[pod_shape[i]]
        req = shape.request
        arrived_total += req.gpu_total
        fits = (cpu_free >= req.cpu) & (mem_free >= req.mem)
        if shape.kind == _SHARED:
            fits &= access[shape.spec] & (max_free >= req.gpu_milli)
        elif shape.kind == _WHOLE:
            fits &= access[shape.spec] & (full_free >= req.num_gpu)
        rows = np.flatnonzero(fits)
        if rows.size:
            if cacheable:
                if shape.score is None:
                    shape.score = np.zeros(n_nodes)
                    shape.gpu = np.full(n_nodes, -1, dtype=np.int64)
                    shape.version = np.full(n_nodes, -1, dtype=np.int64)
                assert shape.gpu is not None and shape.version is not None
                stale = rows[shape.version[rows] != version[rows]]
                if stale.size:
                    fresh = policy.score(view(stale), req)
                    shape.score[stale] = fresh.score
                    shape.gpu[stale] = fresh.gpu
                    shape.version[stale] = version[stale]
                node = int(rows[int(np.argmax(shape.score[rows]))])
                gpu = int(shape.gpu[node])
            else:
                result = policy.score(view(rows), req)
                best = int(np.argmax(result.score))
                node, gpu = int(rows[best]), int(result.gpu[best])
            cpu_free[node] -= req.cpu
            mem_free[node] -= req.mem
            if shape.kind != _CPU_ONLY:
                row = gpu_free[node]
                if shape.kind == _SHARED:
                    if gpu < 0:
                        gpu = int(tightest_gpu(row[None, :], req.gpu_milli)[0])
                    row[gpu] -= req.gpu_milli
                else:
                    row[np.flatnonzero(row == MILLI)[: req.num_gpu]] = 0
                total_free[node] = row.sum()
                full_free[node] = (row == MILLI).sum()
                max_free[node] = row.max()
            version[node] += 1
            used_total += req.gpu_total
            chosen[i] = node
        arrived[i] = arrived_total
        used[i] = used_total
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1, len(keys))
    if progress is not None:
        progress(len(keys), len(keys))
    return Trace(chosen, arrived, used, cluster.capacity_milli, gpu_free, cpu_free, mem_free)


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
