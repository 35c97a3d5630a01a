"""Node-scoring policies for GPU packing, and their registry.

Every policy scores a set of candidate nodes for one pod: arrays in, scores out. The caller has
already filtered the nodes (the pod fits on each of them), takes the highest score, and breaks
ties by node order (the first node wins). A policy may also choose which GPU of the node a
shared-GPU pod goes to; otherwise the tightest GPU that fits is used ("best fit", the first one
on ties), which is also what the FGD paper's simulator does for its baselines.

The baselines follow the FGD paper's simulator (Weng et al., "Beware of Fragmentation",
USENIX ATC'23; hkust-adsl/kubernetes-scheduler-simulator), including its integer scores: the
rounding decides which nodes tie, and ties decide a lot.

* ``random``: a uniformly random feasible node.
* ``bestfit``: the node with the least CPU and GPU left after placement (weights 1/2, 1/2).
* ``dotprod``: Tetris' dot product of free and requested (CPU, GPU), smallest first.
* ``gpupacking``: shared GPUs first, then partly used nodes, then empty nodes.
* ``fgd``: fragmentation gradient descent: the node whose GPU fragmentation, measured against
  the typical pods of the workload, grows least.
* ``gpupool``: gpupool's default policy; see docs/packing.md.

Scoring functions never mutate their inputs and hold no hidden state, so the scheduling core
can call them on its own snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from gpupool.packing.alibaba import MILLI, PodTable

MAX_NODE_SCORE = 100
# Normalisers of the simulator (largest node of the Alibaba cluster): 128 CPUs, 8 GPUs.
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8_000
TYPICAL_POD_POPULARITY = 95  # percent of pods the typical shapes cover


# --------------------------------------------------------------------------------------------
# Inputs and outputs of a scoring function
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """Free resources of R candidate nodes (rows). ``gpu_free[r, g]`` is the free milli-GPU of
    GPU g of node r; slots beyond the node's GPU count hold 0 (they never fit anything)."""

    gpu_free: np.ndarray  # int64 [R, G]
    cpu_free: np.ndarray  # int64 [R] milli-CPU
    mem_free: np.ndarray  # int64 [R] MiB
    cpu_cap: np.ndarray  # int64 [R]
    mem_cap: np.ndarray  # int64 [R]
    gpu_count: np.ndarray  # int64 [R]
    model: np.ndarray  # int64 [R], index into the model names; -1 for a node without GPUs

    def __len__(self) -> int:
        return int(self.cpu_free.shape[0])


@dataclass(frozen=True)
class PodRequest:
    """One pod: ``gpu_milli`` < 1000 means one shared GPU, 1000 means ``num_gpu`` whole GPUs."""

    cpu: int
    mem: int
    num_gpu: int
    gpu_milli: int
    allowed: np.ndarray  # bool [M]: GPU models the pod may use (all True when unconstrained)

    @property
    def gpu_total(self) -> int:
        return self.num_gpu * self.gpu_milli

    @property
    def shares_gpu(self) -> bool:
        return self.num_gpu == 1 and 0 < self.gpu_milli < MILLI


@dataclass(frozen=True)
class Scores:
    """Score per candidate node (higher is better) and, for a shared-GPU pod, the GPU to use on
    that node (-1: let the caller pick the tightest GPU that fits)."""

    score: np.ndarray  # float64 [R]
    gpu: np.ndarray  # int64 [R]


class Policy(Protocol):
    """A named node-scoring policy. ``cacheable``: a node's score depends only on that node's
    state and the pod, so the caller may reuse it until the node changes."""

    name: ClassVar[str]
    cacheable: ClassVar[bool]

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores: ...


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may know before the first pod: the GPU model names (indexes used by
    ``NodeState.model`` and ``PodRequest.allowed``) and the cluster's GPU count per model, the
    pod list as given (its shape distribution, as FGD's typical pods), and a seeded random
    generator."""

    models: tuple[str, ...]
    model_gpus: np.ndarray  # int64 [M]
    workload: PodTable
    rng: np.random.Generator


class UnknownPolicyError(KeyError):
    """A packing policy name that is not registered; its message lists the valid names."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown packing policy {self.name!r}; valid policies: {', '.join(policy_names())}"


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def tightest_gpu(gpu_free: np.ndarray, milli: int) -> np.ndarray:
    """Per row, the GPU with the least free milli that still fits ``milli`` (first on ties);
    -1 where none fits."""
    fits = gpu_free >= milli
    left = np.where(fits, gpu_free, np.iinfo(np.int64).max)
    best = np.argmin(left, axis=1)
    return np.where(fits.any(axis=1), best, -1)


def _no_gpu(rows: int) -> np.ndarray:
    return np.full(rows, -1, dtype=np.int64)


def model_access(spec: str, models: Sequence[str]) -> np.ndarray:
    """bool [M]: which models a gpu_spec ('A|B', '' = any) allows."""
    if not spec:
        return np.ones(len(models), dtype=bool)
    wanted = set(spec.split("|"))
    return np.array([m in wanted for m in models], dtype=bool)


def node_access(allowed: np.ndarray, model: np.ndarray) -> np.ndarray:
    """bool [R]: whether each node's model is in ``allowed`` (nodes without GPUs: never)."""
    ok = np.zeros(model.shape[0], dtype=bool)
    has = model >= 0
    ok[has] = allowed[model[has]]
    return ok


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


class RandomPolicy:
    """A uniformly random feasible node, and for a shared-GPU pod a uniformly random GPU that
    fits (the paper ran RandomScore with random GPU selection)."""

    name: ClassVar[str] = "random"
    cacheable: ClassVar[bool] = False

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores:
        rows = len(nodes)
        score = self._rng.random(rows)
        if not pod.shares_gpu:
            return Scores(score, _no_gpu(rows))
        keys = np.where(nodes.gpu_free >= pod.gpu_milli, self._rng.random(nodes.gpu_free.shape), -1.0)
        return Scores(score, np.argmax(keys, axis=1).astype(np.int64))


def bestfit_scores(nodes: NodeState, pod: PodRequest) -> np.ndarray:
    """100 x (1 - (CPU left after / 128 CPUs + GPU left after / 8 GPUs) / 2), truncated."""
    cpu_after = (nodes.cpu_free - pod.cpu).astype(np.float64)
    gpu_after = (nodes.gpu_free.sum(axis=1) - pod.gpu_total).astype(np.float64)
    waste = cpu_after / MAX_SPEC_CPU * 0.5 + gpu_after / MAX_SPEC_GPU * 0.5
    return np.trunc((1.0 - waste) * MAX_NODE_SCORE)


class BestFitPolicy:
    """Best fit: prefer the node whose free resources the pod fills the most."""

    name: ClassVar[str] = "bestfit"
    cacheable: ClassVar[bool] = True

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores:
        return Scores(bestfit_scores(nodes, pod), _no_gpu(len(nodes)))


def dotprod_scores(nodes: NodeState, pod: PodRequest) -> np.ndarray:
    """Tetris alignment with the GPU dimension merged, normalised by the largest node; the
    simulator prefers the smallest dot product: 100 x (1 - dot / 2), truncated."""
    node_cpu = nodes.cpu_free / MAX_SPEC_CPU
    node_gpu = nodes.gpu_free.sum(axis=1) / MAX_SPEC_GPU
    dot = node_cpu * (pod.cpu / MAX_SPEC_CPU) + node_gpu * (pod.gpu_total / MAX_SPEC_GPU)
    return np.trunc(MAX_NODE_SCORE * (1.0 - dot / 2.0))


class DotProdPolicy:
    """Dot product: prefer the node whose free resources point most like the pod's request."""

    name: ClassVar[str] = "dotprod"
    cacheable: ClassVar[bool] = True

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores:
        return Scores(dotprod_scores(nodes, pod), _no_gpu(len(nodes)))


def gpupacking_scores(nodes: NodeState, pod: PodRequest) -> np.ndarray:
    """The simulator's GpuPacking: prefer (1) shared GPUs, (2) fully free GPUs of a used node,
    (3) an empty node, fewer GPUs first; CPU-only pods score 0 everywhere."""
    rows = len(nodes)
    if pod.gpu_milli <= 0:
        return np.zeros(rows)
    free = nodes.gpu_free
    full = (free == MILLI).sum(axis=1)
    empty_node = full == nodes.gpu_count
    score = np.empty(rows, dtype=np.float64)
    # case 3: every GPU free
    score[empty_node] = np.maximum(MAX_NODE_SCORE // 3 - full[empty_node], full[empty_node])
    if pod.shares_gpu:
        gpu = tightest_gpu(free, pod.gpu_milli)
        chosen = free[np.arange(rows), np.maximum(gpu, 0)]
        uses_full = chosen == MILLI
        # case 1: the tightest fitting GPU is already shared
        case1 = MAX_NODE_SCORE - (chosen * 100 // MILLI) // 10
        case2 = np.maximum(MAX_NODE_SCORE // 2 - 1, MAX_NODE_SCORE // 3)
        partial = np.where(uses_full, case2, np.maximum(case1, MAX_NODE_SCORE // 2))
    else:
        # whole GPUs only ever come from fully free GPUs: case 2
        partial = np.full(rows, max(MAX_NODE_SCORE // 2 - pod.num_gpu, MAX_NODE_SCORE // 3))
    score[~empty_node] = partial[~empty_node]
    return score


class GpuPackingPolicy:
    """GPU packing: prefer nodes with GPUs already in use, keeping whole GPUs and nodes free."""

    name: ClassVar[str] = "gpupacking"
    cacheable: ClassVar[bool] = True

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores:
        return Scores(gpupacking_scores(nodes, pod), _no_gpu(len(nodes)))


# --------------------------------------------------------------------------------------------
# FGD: fragmentation gradient descent
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypicalPods:
    """The pod shapes a node's fragmentation is measured against, with their weights (sum 1).

    ``thresholds`` are the distinct per-GPU requests (milli) of the GPU shapes and ``level[t]``
    the index of shape t's request in it (-1 for a CPU-only shape)."""

    cpu: np.ndarray  # int64 [T]
    gpu_milli: np.ndarray  # int64 [T]
    num_gpu: np.ndarray  # int64 [T]
    access: np.ndarray  # bool [T, M]
    weight: np.ndarray  # float64 [T]
    thresholds: np.ndarray  # int64 [U]
    level: np.ndarray  # int64 [T]

    def __len__(self) -> int:
        return int(self.weight.shape[0])


ShapeKey = tuple[int, int, int, str]  # (cpu, gpu_milli, num_gpu, gpu_spec)


def typical_pods_from_counts(
    counts: Counter[ShapeKey], models: Sequence[str], popularity: int = TYPICAL_POD_POPULARITY
) -> TypicalPods:
    """The most popular shapes that together cover ``popularity`` percent of the pods (as in the FGD
    simulator: count order, ties to the larger shape), renormalised to weights summing to 1."""
    if not counts:
        raise ValueError("no pods to learn typical shapes from")
    # Decreasing count; on equal counts the "larger" shape first (cpu, milli, num, spec).
    ordered = sorted(
        counts.items(), key=lambda kv: (kv[1], kv[0][0], kv[0][1], kv[0][2], kv[0][3]), reverse=True
    )
    total = float(sum(counts.values()))
    chosen: list[tuple[ShapeKey, int]] = []
    cumulative = 0.0
    for key, count in ordered:
        if cumulative >= popularity * total / 100.0:
            break
        chosen.append((key, count))
        cumulative += count
    weight = np.array([(c / total) / (cumulative / total) for _, c in chosen], dtype=np.float64)
    cpu = np.array([k[0] for k, _ in chosen], dtype=np.int64)
    milli = np.array([k[1] for k, _ in chosen], dtype=np.int64)
    num = np.array([k[2] for k, _ in chosen], dtype=np.int64)
    access = (
        np.stack([model_access(k[3], models) for k, _ in chosen])
        if models
        else np.zeros((len(chosen), 0), bool)
    )
    thresholds = np.unique(milli[milli > 0])
    level = np.where(milli > 0, np.searchsorted(thresholds, milli), -1)
    return TypicalPods(cpu, milli, num, access, weight, thresholds, level)


def shape_counts(pods: PodTable) -> Counter[ShapeKey]:
    return Counter(
        zip(
            pods.cpu_milli.tolist(),
            pods.gpu_milli.tolist(),
            pods.num_gpu.tolist(),
            pods.gpu_spec,
            strict=True,
        )
    )


def typical_pods(
    pods: PodTable, models: Sequence[str], popularity: int = TYPICAL_POD_POPULARITY
) -> TypicalPods:
    return typical_pods_from_counts(shape_counts(pods), models, popularity)


def gpu_sums(gpu_free: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row and threshold u: the free milli on GPUs with less than u free (unusable by
    a pod asking u per GPU), and the number of GPUs with at least u free. Shapes [..., U]."""
    below = gpu_free[..., None] < thresholds
    stranded = np.where(below, gpu_free[..., None], 0).sum(axis=-2)
    usable = (~below).sum(axis=-2)
    return stranded, usable


def fragmentation_from_sums(
    stranded: np.ndarray,
    usable: np.ndarray,
    total: np.ndarray,
    cpu_free: np.ndarray,
    access: np.ndarray,
    typical: TypicalPods,
) -> np.ndarray:
    """Expected fragmented milli-GPU of nodes, given ``gpu_sums`` ([..., U]), total free milli,
    free CPU ([...]) and each node's access to each typical shape ([..., T]).

    For a typical pod that fits the node, the fragment is the free milli on GPUs too small for
    it; for one that does not fit (CPU, GPU count, GPU model) or asks no GPU, every free milli
    is a fragment. The node's fragmentation is the weighted sum over typical pods."""
    if typical.thresholds.size == 0:  # only CPU-only shapes: every free milli is a fragment
        return total * typical.weight.sum()
    gpu_shape = typical.level >= 0
    level = np.maximum(typical.level, 0)
    fits = gpu_shape & access & (usable[..., level] >= typical.num_gpu) & (cpu_free[..., None] >= typical.cpu)
    frag = np.where(fits, stranded[..., level], total[..., None])
    return (frag * typical.weight).sum(axis=-1)


def fragmentation(nodes: NodeState, typical: TypicalPods) -> np.ndarray:
    """float64 [R]: each node's fragmentation against the typical pods (milli-GPU)."""
    stranded, usable = gpu_sums(nodes.gpu_free, typical.thresholds)
    access = _typical_access(nodes, typical)
    return fragmentation_from_sums(
        stranded, usable, nodes.gpu_free.sum(axis=1), nodes.cpu_free, access, typical
    )


def _typical_access(nodes: NodeState, typical: TypicalPods) -> np.ndarray:
    access = np.zeros((len(nodes), len(typical)), dtype=bool)
    has = nodes.model >= 0
    access[has] = typical.access[:, nodes.model[has]].T
    return access


def fragmentation_after(nodes: NodeState, pod: PodRequest, typical: TypicalPods) -> np.ndarray:
    """Fragmentation of each node after placing ``pod`` there: [R] for a CPU-only or whole-GPU
    pod, [R, G] for a shared-GPU pod (one column per GPU it could go to; +inf where it does not
    fit)."""
    free = nodes.gpu_free
    stranded, usable = gpu_sums(free, typical.thresholds)
    total = free.sum(axis=1)
    cpu_after = nodes.cpu_free - pod.cpu
    access = _typical_access(nodes, typical)
    if not pod.shares_gpu:
        # Whole GPUs go from 1000 free to 0: they leave the usable count of every threshold and
        # add nothing to the stranded milli. A CPU-only pod leaves the GPUs alone.
        k = pod.num_gpu if pod.gpu_milli >= MILLI else 0
        return fragmentation_from_sums(stranded, usable - k, total - k * MILLI, cpu_after, access, typical)
    m = pod.gpu_milli
    u = typical.thresholds
    before = free[..., None]  # [R, G, 1]
    after = before - m
    stranded_g = stranded[:, None, :] - np.where(before < u, before, 0) + np.where(after < u, after, 0)
    usable_g = usable[:, None, :] - (before >= u) + (after >= u)
    frag = fragmentation_from_sums(
        stranded_g,
        usable_g,
        (total - m)[:, None] + np.zeros(free.shape[1], dtype=np.int64),
        cpu_after[:, None] + np.zeros(free.shape[1], dtype=np.int64),
        access[:, None, :],
        typical,
    )
    return np.where(free >= m, frag, np.inf)


def _sigmoid_score(delta: np.ndarray, scale: float = 1000.0) -> np.ndarray:
    """The simulator's int64(sigmoid(delta / 1000) * 100); delta = fragmentation decrease."""
    with np.errstate(over="ignore"):
        return np.trunc(1.0 / (1.0 + np.exp(-delta / scale)) * MAX_NODE_SCORE)


def fgd_scores(nodes: NodeState, pod: PodRequest, typical: TypicalPods) -> Scores:
    """FGD: score = sigmoid(fragmentation decrease), truncated to an integer in [0, 100]; for a
    shared-GPU pod the best GPU of each node (first on ties) is also returned."""
    before = fragmentation(nodes, typical)
    after = fragmentation_after(nodes, pod, typical)
    if after.ndim == 1:
        return Scores(_sigmoid_score(before - after), _no_gpu(len(nodes)))
    per_gpu = np.where(np.isfinite(after), _sigmoid_score(before[:, None] - after), -1.0)
    gpu = np.argmax(per_gpu, axis=1)
    return Scores(per_gpu[np.arange(len(nodes)), gpu], gpu.astype(np.int64))


class FgdPolicy:
    """Fragmentation gradient descent (the FGD paper): least growth of expected GPU fragmentation."""

    name: ClassVar[str] = "fgd"
    cacheable: ClassVar[bool] = True

    def __init__(self, typical: TypicalPods) -> None:
        self.typical = typical

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores:
        return fgd_scores(nodes, pod, self.typical)


# --------------------------------------------------------------------------------------------
# gpupool: FGD, plus stranded CPU/memory, hole quality and GPU-model scarcity
# --------------------------------------------------------------------------------------------

HOLE_DEAD_KAPPA = 0.2  # how unlikely a hole must be to get filled before it counts as dead
HOLE_STEP = 5  # milli-GPU: hole values closer than this tie (and fall through to the node score)
STRANDED_WEIGHT = 1.0
SCARCITY_WEIGHT = 0.5
GPUPOOL_SCALE = 1500.0  # milli-GPU of fragmentation change per sigmoid unit


@dataclass(frozen=True)
class WorkloadModel:
    """What gpupool's policy expects of the pods to come, learned from a pod list (the
    benchmark's; the scheduling core can build it from the pods it has seen).

    * ``typical``: FGD's typical pods;
    * ``hole_waste[h]``: the milli-GPU expected to stay unused on a GPU with h milli free;
    * ``cpu_per_milli``, ``mem_per_milli``: CPU (milli) and memory (MiB) that GPU pods ask per
      milli-GPU, to tell how much of a node's free GPU its free CPU and memory can still feed;
    * ``scarcity[m]``: the share of model m's GPUs that model-constrained pods need.
    """

    typical: TypicalPods
    hole_waste: np.ndarray  # float64 [MILLI + 1]
    cpu_per_milli: float
    mem_per_milli: float
    scarcity: np.ndarray  # float64 [M]

    @classmethod
    def from_pods(cls, pods: PodTable, models: Sequence[str], model_gpus: np.ndarray) -> WorkloadModel:
        gpu_pods = pods.num_gpu > 0
        gpu_milli = float(pods.gpu_milli_total[gpu_pods].sum())
        shared = (pods.num_gpu == 1) & (pods.gpu_milli < MILLI)
        return cls(
            typical=typical_pods(pods, models),
            hole_waste=hole_waste(pods.gpu_milli[shared]),
            cpu_per_milli=float(pods.cpu_milli[gpu_pods].sum()) / gpu_milli if gpu_milli else 0.0,
            mem_per_milli=float(pods.memory_mib[gpu_pods].sum()) / gpu_milli if gpu_milli else 0.0,
            scarcity=model_scarcity(pods, models, model_gpus),
        )


def hole_waste(shared_milli: np.ndarray, kappa: float = HOLE_DEAD_KAPPA) -> np.ndarray:
    """W[h]: expected milli-GPU never used on a GPU with h milli free, if the shared-GPU pods
    that fit arrive in proportion to ``shared_milli`` and each takes its share of the hole.

    A hole that only rare pods fit is likely to stay as it is: with F(h) the fraction of
    shared pods that fit, the hole is filled with probability F / (F + kappa), else wasted:
    W[h] = (1 - a) h + a E[W[h - s] | s <= h], a = F(h) / (F(h) + kappa)."""
    counts = np.bincount(np.asarray(shared_milli, dtype=np.int64), minlength=MILLI + 1)[: MILLI + 1]
    total = counts.sum()
    waste = np.arange(MILLI + 1, dtype=np.float64)
    if total == 0:
        return waste
    share = counts / total
    sizes = np.flatnonzero(counts)
    fits = np.cumsum(share)
    for h in range(1, MILLI + 1):
        if fits[h] <= 0:
            continue
        s = sizes[sizes <= h]
        expected = float((share[s] * waste[h - s]).sum()) / fits[h]
        filled = fits[h] / (fits[h] + kappa)
        waste[h] = (1.0 - filled) * h + filled * expected
    return waste


def model_scarcity(pods: PodTable, models: Sequence[str], model_gpus: np.ndarray) -> np.ndarray:
    """Per GPU model: GPU demand of the pods restricted to a set of models containing it
    (spread over the set by capacity), as a fraction of the model's capacity. 0 everywhere
    when no pod names a model."""
    capacity = np.asarray(model_gpus, dtype=np.float64) * MILLI
    demand = np.zeros(len(models))
    for spec, request in zip(pods.gpu_spec, pods.gpu_milli_total.tolist(), strict=True):
        if not spec or request == 0:
            continue
        usable = capacity * model_access(spec, models)
        if usable.sum() > 0:
            demand += request * usable / usable.sum()
    return np.divide(demand, capacity, out=np.zeros(len(models)), where=capacity > 0)


def stranded_gpu(
    gpu_free: np.ndarray, cpu_free: np.ndarray, mem_free: np.ndarray, model: WorkloadModel
) -> np.ndarray:
    """Free milli-GPU that the node's free CPU or memory cannot feed at the workload's ratios."""
    out = np.zeros(np.broadcast(gpu_free, cpu_free, mem_free).shape)
    if model.cpu_per_milli > 0:
        out = np.maximum(out, gpu_free - cpu_free / model.cpu_per_milli)
    if model.mem_per_milli > 0:
        out = np.maximum(out, gpu_free - mem_free / model.mem_per_milli)
    return out


def gpupool_scores(nodes: NodeState, pod: PodRequest, model: WorkloadModel) -> Scores:
    """gpupool's default packing score (docs/packing.md).

    The node score is FGD's: sigmoid of the fragmentation decrease, truncated to an integer so
    that near-equal nodes tie and go to the first node. Two terms join FGD's fragmentation
    change (all in milli-GPU): the decrease in GPU stranded by exhausted CPU or memory, and a
    charge for using GPUs of a model that model-constrained pods need. For a shared-GPU pod
    the hole it leaves comes first: GPUs are ranked by the expected waste the placement
    removes (``hole_waste``), in steps of HOLE_STEP, and only then by the node score."""
    free = nodes.gpu_free
    total = free.sum(axis=1)
    before = fragmentation(nodes, model.typical)
    after = fragmentation_after(nodes, pod, model.typical)
    stranded_before = stranded_gpu(total, nodes.cpu_free, nodes.mem_free, model)
    stranded_after = stranded_gpu(
        total - pod.gpu_total, nodes.cpu_free - pod.cpu, nodes.mem_free - pod.mem, model
    )
    scarce = np.where(nodes.model >= 0, model.scarcity[np.maximum(nodes.model, 0)], 0.0)
    node_terms = (
        STRANDED_WEIGHT * (stranded_before - stranded_after) - SCARCITY_WEIGHT * pod.gpu_total * scarce
    )
    if after.ndim == 1:
        return Scores(_sigmoid_score(before - after + node_terms, GPUPOOL_SCALE), _no_gpu(len(nodes)))
    fits = np.isfinite(after)
    delta = np.where(fits, before[:, None] - after + node_terms[:, None], 0.0)
    node_score = _sigmoid_score(delta, GPUPOOL_SCALE)
    hole_gain = model.hole_waste[free] - model.hole_waste[np.maximum(free - pod.gpu_milli, 0)]
    key = np.where(fits, np.floor(hole_gain / HOLE_STEP) * 1000.0 + node_score, -np.inf)
    gpu = np.argmax(key, axis=1)
    return Scores(key[np.arange(len(nodes)), gpu], gpu.astype(np.int64))


class GpupoolPolicy:
    """gpupool's policy: FGD's fragmentation change plus stranded-GPU and scarce-model terms.

    See docs/packing.md.
    """

    name: ClassVar[str] = "gpupool"
    cacheable: ClassVar[bool] = True

    def __init__(self, model: WorkloadModel) -> None:
        self.model = model

    def score(self, nodes: NodeState, pod: PodRequest) -> Scores:
        return gpupool_scores(nodes, pod, self.model)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

PolicyFactory = Callable[[PolicyContext], Policy]

POLICIES: dict[str, PolicyFactory] = {
    "random": lambda ctx: RandomPolicy(ctx.rng),
    "bestfit": lambda ctx: BestFitPolicy(),
    "dotprod": lambda ctx: DotProdPolicy(),
    "gpupacking": lambda ctx: GpuPackingPolicy(),
    "fgd": lambda ctx: FgdPolicy(typical_pods(ctx.workload, ctx.models)),
    "gpupool": lambda ctx: GpupoolPolicy(WorkloadModel.from_pods(ctx.workload, ctx.models, ctx.model_gpus)),
}


def policy_names() -> list[str]:
    return sorted(POLICIES)


def make_policy(name: str, ctx: PolicyContext) -> Policy:
    """Build the policy called ``name``; UnknownPolicyError (listing the valid names) if none."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise UnknownPolicyError(name) from None
    return factory(ctx)
