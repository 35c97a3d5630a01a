"""Node scoring: how well one node suits one ask, from plain values (docs/packing.md).

A scoring policy looks at one node (:class:`NodeView`: the free milli-GPU of each of its GPUs,
its free and total CPU and memory, its GPU model) and one ask (:class:`AskShape`) that fits it
(:func:`fits`), and returns a :class:`NodeScore`: higher is better. The caller takes the best
node among those the ask fits, ties going to the node that comes first in its order. For an ask
that shares a GPU (1..999 milli-GPU of one GPU) the score also names the GPU the share goes to:
the policy's choice, or the tightest GPU that fits (the first one on ties) when the policy has
none. Whole GPUs come from fully free GPUs, the first ones of the node.

The baselines live here. They follow the FGD paper's simulator (Weng et al., "Beware of
Fragmentation", USENIX ATC'23; hkust-adsl/kubernetes-scheduler-simulator), including its integer
scores: the rounding decides which nodes tie, and ties decide a lot.

* ``bestfit``: the node with the least CPU and GPU left after placement (weights 1/2, 1/2);
* ``dotprod``: Tetris' dot product of free and requested (CPU, GPU), smallest first;
* ``gpupacking``: shared GPUs first, then partly used nodes, then empty nodes.

The workload-aware policies (``fgd``, ``gpupool``) are in :mod:`gpupool.core.scorers`; what they
learn from the asks they see is in :mod:`gpupool.core.typical`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

MILLI = 1000  # milli-GPU in one GPU
MAX_NODE_SCORE = 100
# Normalisers of the simulator (largest node of the Alibaba cluster): 128 CPUs, 8 GPUs.
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8_000


@dataclass(frozen=True)
class NodeView:
    """What a scoring policy sees of a node: free milli-GPU per GPU (0..1000, one entry per GPU
    in index order), free and total CPU (milli) and memory, and the GPU model (None: no GPU)."""

    gpu_free: tuple[int, ...]
    cpu_free: int
    mem_free: int
    cpu_total: int
    mem_total: int
    gpu_model: str | None = None

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_free)


@dataclass(frozen=True)
class AskShape:
    """The shape of one ask (one member of a gang): CPU (milli), memory, GPU count and milli-GPU
    per GPU (1000 for whole GPUs; 1..999 for a share of one GPU; 0 with no GPU), and the GPU
    models it accepts (empty: any). Its GPUs must all be of an accepted model."""

    cpu: int
    mem: int
    gpus: int = 0
    gpu_milli: int = 0
    gpu_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.gpus < 0 or not 0 <= self.gpu_milli <= MILLI:
            raise ValueError(f"bad GPU ask: {self.gpus} GPUs of {self.gpu_milli} milli")
        if (self.gpus == 0) != (self.gpu_milli == 0):
            raise ValueError(f"bad GPU ask: {self.gpus} GPUs of {self.gpu_milli} milli")
        if self.gpus > 1 and self.gpu_milli < MILLI:
            raise ValueError("a share of a GPU (gpu_milli < 1000) is for one GPU only")

    @property
    def gpu_total(self) -> int:
        """Milli-GPU asked in all."""
        return self.gpus * self.gpu_milli

    @property
    def shares_gpu(self) -> bool:
        return self.gpus == 1 and self.gpu_milli < MILLI

    @property
    def spec(self) -> str:
        """The accepted models as the trace writes them ('A|B'; '' for any)."""
        return "|".join(self.gpu_models)

    def accepts(self, model: str | None) -> bool:
        """Whether a GPU of ``model`` suits this ask (a node without GPUs suits no GPU ask)."""
        return model is not None and (not self.gpu_models or model in self.gpu_models)


@dataclass(frozen=True)
class NodeScore:
    """A node's score for an ask (higher is better) and, for a share of a GPU, the GPU it goes to."""

    score: float
    gpu: int | None = None


class ScoringPolicy(Protocol):
    """A named node-scoring policy. ``score`` is only called for a node the ask fits on; it is a
    pure function of the node and the ask, so callers may cache it until the node changes."""

    name: ClassVar[str]

    def score(self, node: NodeView, ask: AskShape) -> NodeScore: ...


def fits(node: NodeView, ask: AskShape) -> bool:
    """The packing fit rule: CPU and memory fit; for a GPU ask the node's model is accepted and a
    share finds one GPU with that much free, ``k`` whole GPUs find ``k`` fully free GPUs."""
    if node.cpu_free < ask.cpu or node.mem_free < ask.mem:
        return False
    if ask.gpus == 0:
        return True
    if not ask.accepts(node.gpu_model):
        return False
    if ask.gpu_milli < MILLI:
        return max(node.gpu_free, default=0) >= ask.gpu_milli
    return node.gpu_free.count(MILLI) >= ask.gpus


def tightest_gpu(gpu_free: tuple[int, ...], milli: int) -> int | None:
    """The GPU with the least free milli that still fits ``milli`` (first on ties); None if none."""
    best: int | None = None
    best_free = MILLI + 1
    for g, free in enumerate(gpu_free):
        if milli <= free < best_free:
            best, best_free = g, free
    return best


def whole_gpus(gpu_free: tuple[int, ...], count: int) -> tuple[int, ...]:
    """The GPUs ``count`` whole GPUs go to: the first fully free ones."""
    return tuple(g for g, free in enumerate(gpu_free) if free == MILLI)[:count]


def _share_gpu(node: NodeView, ask: AskShape) -> int | None:
    return tightest_gpu(node.gpu_free, ask.gpu_milli) if ask.shares_gpu else None


class BestFit:
    """Best fit: prefer the node whose free resources the pod fills the most.

    100 x (1 - (CPU left after / 128 CPUs + GPU left after / 8 GPUs) / 2), truncated."""

    name: ClassVar[str] = "bestfit"

    def score(self, node: NodeView, ask: AskShape) -> NodeScore:
        cpu_after = node.cpu_free - ask.cpu
        gpu_after = sum(node.gpu_free) - ask.gpu_total
        waste = cpu_after / MAX_SPEC_CPU * 0.5 + gpu_after / MAX_SPEC_GPU * 0.5
        return NodeScore(float(math.trunc((1.0 - waste) * MAX_NODE_SCORE)), _share_gpu(node, ask))


class DotProduct:
    """Dot product (Tetris): prefer the node whose free resources point least like the request.

    The GPU dimension is merged and normalised by the largest node; the simulator prefers the
    smallest dot product: 100 x (1 - dot / 2), truncated."""

    name: ClassVar[str] = "dotprod"

    def score(self, node: NodeView, ask: AskShape) -> NodeScore:
        node_cpu = node.cpu_free / MAX_SPEC_CPU
        node_gpu = sum(node.gpu_free) / MAX_SPEC_GPU
        dot = node_cpu * (ask.cpu / MAX_SPEC_CPU) + node_gpu * (ask.gpu_total / MAX_SPEC_GPU)
        return NodeScore(float(math.trunc(MAX_NODE_SCORE * (1.0 - dot / 2.0))), _share_gpu(node, ask))


class GpuPacking:
    """GPU packing (the simulator's GpuPacking): prefer (1) shared GPUs, (2) fully free GPUs of a
    used node, (3) an empty node, fewer GPUs first; CPU-only asks score 0 everywhere."""

    name: ClassVar[str] = "gpupacking"

    def score(self, node: NodeView, ask: AskShape) -> NodeScore:
        gpu = _share_gpu(node, ask)
        if ask.gpus == 0:
            return NodeScore(0.0)
        full = node.gpu_free.count(MILLI)
        if full == node.gpu_count:  # case 3: every GPU free
            return NodeScore(float(max(MAX_NODE_SCORE // 3 - full, full)), gpu)
        if gpu is not None:
            chosen = node.gpu_free[gpu]
            if chosen == MILLI:  # case 2: a free GPU of a used node
                return NodeScore(float(max(MAX_NODE_SCORE // 2 - 1, MAX_NODE_SCORE // 3)), gpu)
            # case 1: the tightest fitting GPU is already shared
            case1 = MAX_NODE_SCORE - (chosen * 100 // MILLI) // 10
            return NodeScore(float(max(case1, MAX_NODE_SCORE // 2)), gpu)
        # whole GPUs only ever come from fully free GPUs: case 2
        return NodeScore(float(max(MAX_NODE_SCORE // 2 - ask.gpus, MAX_NODE_SCORE // 3)))
