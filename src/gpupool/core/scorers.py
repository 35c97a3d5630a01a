"""The workload-aware scoring policies, ``fgd`` and ``gpupool``, and the registry of all of them.

* ``fgd``: fragmentation gradient descent (Weng et al., "Beware of Fragmentation", USENIX
  ATC'23): the node whose GPU fragmentation, measured against the typical ask shapes of the
  workload, grows least. Its score is the simulator's ``int(100 x sigmoid(decrease / 1000))``.
* ``gpupool``: gpupool's default policy (docs/packing.md): FGD's fragmentation change, plus the
  change in GPU stranded by exhausted CPU or memory and a charge for GPUs of a model that
  model-constrained asks need; for a share of a GPU, the hole it leaves comes first.

Both score one node for one ask (:mod:`gpupool.core.scoring`) from what they learned
(:mod:`gpupool.core.typical`). What depends on the node alone (its fragmentation before the ask)
is computed once per distinct node and kept in a bounded table: a cache, not a state, since
it is a pure function of the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

from gpupool.core.scoring import (
    MAX_NODE_SCORE,
    MILLI,
    AskShape,
    BestFit,
    DotProduct,
    GpuPacking,
    NodeScore,
    NodeView,
    ScoringPolicy,
)
from gpupool.core.typical import TypicalShapes, WorkloadModel, WorkloadStats, pairwise_sum

FGD_SCALE = 1000.0  # milli-GPU of fragmentation change per sigmoid unit
GPUPOOL_SCALE = 1500.0
HOLE_STEP = 5  # milli-GPU: hole values closer than this tie (and fall through to the node score)
STRANDED_WEIGHT = 1.0
SCARCITY_WEIGHT = 0.5
_MEMO_LIMIT = 1 << 16  # distinct nodes remembered per policy before the table starts afresh

# A typical shape as the inner loop reads it: (threshold level or -1 if it can never fit the
# node's GPUs, GPU count, CPU, weight).
_Row = tuple[int, int, int, float]


def sigmoid_score(delta: float, scale: float) -> float:
    """The simulator's int(sigmoid(delta / scale) * 100); delta = fragmentation decrease."""
    try:
        e = math.exp(-delta / scale)
    except OverflowError:
        return 0.0
    return float(math.trunc(1.0 / (1.0 + e) * MAX_NODE_SCORE))


class Fragmentation:
    """A node's expected fragmented milli-GPU against typical shapes: for a typical shape that
    fits the node, the free milli on GPUs too small for it; for one that does not fit (CPU, GPU
    count, GPU model) or asks no GPU, all the free milli. Weighted over the shapes."""

    def __init__(self, typical: TypicalShapes) -> None:
        self.typical = typical
        self.thresholds = typical.thresholds
        self._rows: dict[str | None, tuple[_Row, ...]] = {}
        self._weight_sum = pairwise_sum([t.weight for t in typical.shapes])

    def rows(self, model: str | None) -> tuple[_Row, ...]:
        rows = self._rows.get(model)
        if rows is None:
            rows = tuple(
                (
                    t.level if model is not None and (t.models is None or model in t.models) else -1,
                    t.gpus,
                    t.cpu,
                    t.weight,
                )
                for t in self.typical.shapes
            )
            self._rows[model] = rows
        return rows

    def sums(self, gpu_free: tuple[int, ...]) -> tuple[list[int], list[int]]:
        """Per threshold u: the free milli on GPUs with less than u free, and how many GPUs have
        at least u free."""
        stranded = []
        usable = []
        for u in self.thresholds:
            s = 0
            n = 0
            for free in gpu_free:
                if free < u:
                    s += free
                else:
                    n += 1
            stranded.append(s)
            usable.append(n)
        return stranded, usable

    def from_sums(
        self, stranded: list[int], usable: list[int], total: int, cpu_free: int, rows: tuple[_Row, ...]
    ) -> float:
        if not self.thresholds:  # only CPU-only shapes: every free milli is a fragment
            return total * self._weight_sum
        return pairwise_sum(
            [
                (stranded[lv] if lv >= 0 and usable[lv] >= n and cpu_free >= c else total) * w
                for lv, n, c, w in rows
            ]
        )

    def of(self, node: NodeView) -> float:
        return self.prepare(node)[2]

    def prepare(self, node: NodeView) -> tuple[list[int], list[int], float]:
        """The node's per-threshold sums and its fragmentation: what scoring any ask starts from."""
        stranded, usable = self.sums(node.gpu_free)
        rows = self.rows(node.gpu_model)
        return stranded, usable, self.from_sums(stranded, usable, sum(node.gpu_free), node.cpu_free, rows)

    def after_share(
        self,
        stranded: list[int],
        usable: list[int],
        free: int,
        milli: int,
        total: int,
        cpu_free: int,
        rows: tuple[_Row, ...],
    ) -> float:
        """Fragmentation once ``milli`` is taken from a GPU with ``free`` milli free (``total`` and
        ``cpu_free`` already reduced)."""
        left = free - milli
        st = []
        us = []
        for u, s, n in zip(self.thresholds, stranded, usable, strict=True):
            if free < u:
                s -= free
            else:
                n -= 1
            if left < u:
                s += left
            else:
                n += 1
            st.append(s)
            us.append(n)
        return self.from_sums(st, us, total, cpu_free, rows)


class _NodeMemo:
    """What a policy derives from a node alone, per distinct node (bounded)."""

    def __init__(self, compute: Callable[[NodeView], tuple[list[int], list[int], float]]) -> None:
        self._compute = compute
        self._table: dict[NodeView, tuple[list[int], list[int], float]] = {}

    def get(self, node: NodeView) -> tuple[list[int], list[int], float]:
        found = self._table.get(node)
        if found is None:
            if len(self._table) >= _MEMO_LIMIT:
                self._table.clear()
            found = self._table[node] = self._compute(node)
        return found


def _first_best(gpu_free: tuple[int, ...], value: dict[int, float]) -> tuple[float, int]:
    """The best value over the GPUs that have one, and the first GPU that has it."""
    best = -math.inf
    gpu = -1
    for g, free in enumerate(gpu_free):
        v = value.get(free)
        if v is not None and v > best:
            best, gpu = v, g
    return best, gpu


class Fgd:
    """Fragmentation gradient descent (the FGD paper): least growth of expected GPU fragmentation.
    For a share of a GPU, the GPU where it grows least (the first on ties)."""

    name: ClassVar[str] = "fgd"

    def __init__(self, typical: TypicalShapes) -> None:
        self.frag = Fragmentation(typical)
        self._memo = _NodeMemo(self.frag.prepare)

    def score(self, node: NodeView, ask: AskShape) -> NodeScore:
        stranded, usable, before = self._memo.get(node)
        rows = self.frag.rows(node.gpu_model)
        total = sum(node.gpu_free)
        cpu_after = node.cpu_free - ask.cpu
        if not ask.shares_gpu:
            # Whole GPUs go from 1000 free to 0: they leave the usable count of every threshold
            # and add nothing to the stranded milli. A CPU-only ask leaves the GPUs alone.
            k = ask.gpus if ask.gpu_milli >= MILLI else 0
            after = self.frag.from_sums(stranded, [n - k for n in usable], total - k * MILLI, cpu_after, rows)
            return NodeScore(sigmoid_score(before - after, FGD_SCALE))
        m = ask.gpu_milli
        per_free: dict[int, float] = {}
        for free in node.gpu_free:
            if free >= m and free not in per_free:
                after = self.frag.after_share(stranded, usable, free, m, total - m, cpu_after, rows)
                per_free[free] = sigmoid_score(before - after, FGD_SCALE)
        best, gpu = _first_best(node.gpu_free, per_free)
        return NodeScore(best, gpu)


class Gpupool:
    """gpupool's policy: FGD's fragmentation change plus stranded-GPU and scarce-model terms;
    for a share of a GPU, the GPU whose hole improves most comes first. See docs/packing.md."""

    name: ClassVar[str] = "gpupool"

    def __init__(self, model: WorkloadModel) -> None:
        self.model = model
        self.frag = Fragmentation(model.typical)
        self._memo = _NodeMemo(self.frag.prepare)

    def stranded_gpu(self, gpu_free: int, cpu_free: int, mem_free: int) -> float:
        """Free milli-GPU that free CPU or memory cannot feed at the workload's ratios."""
        out = 0.0
        if self.model.cpu_per_milli > 0:
            out = max(out, gpu_free - cpu_free / self.model.cpu_per_milli)
        if self.model.mem_per_milli > 0:
            out = max(out, gpu_free - mem_free / self.model.mem_per_milli)
        return out

    def score(self, node: NodeView, ask: AskShape) -> NodeScore:
        stranded, usable, before = self._memo.get(node)
        rows = self.frag.rows(node.gpu_model)
        total = sum(node.gpu_free)
        cpu_after = node.cpu_free - ask.cpu
        scarce = self.model.scarcity.get(node.gpu_model, 0.0) if node.gpu_model is not None else 0.0
        stranded_before = self.stranded_gpu(total, node.cpu_free, node.mem_free)
        stranded_after = self.stranded_gpu(total - ask.gpu_total, cpu_after, node.mem_free - ask.mem)
        node_terms = (
            STRANDED_WEIGHT * (stranded_before - stranded_after) - SCARCITY_WEIGHT * ask.gpu_total * scarce
        )
        if not ask.shares_gpu:
            k = ask.gpus if ask.gpu_milli >= MILLI else 0
            after = self.frag.from_sums(stranded, [n - k for n in usable], total - k * MILLI, cpu_after, rows)
            return NodeScore(sigmoid_score(before - after + node_terms, GPUPOOL_SCALE))
        m = ask.gpu_milli
        waste = self.model.hole_waste
        per_free: dict[int, float] = {}
        for free in node.gpu_free:
            if free >= m and free not in per_free:
                after = self.frag.after_share(stranded, usable, free, m, total - m, cpu_after, rows)
                node_score = sigmoid_score(before - after + node_terms, GPUPOOL_SCALE)
                hole_gain = waste[free] - waste[max(free - m, 0)]
                per_free[free] = math.floor(hole_gain / HOLE_STEP) * 1000.0 + node_score
        best, gpu = _first_best(node.gpu_free, per_free)
        return NodeScore(best, gpu)


POLICY_NAMES = ("bestfit", "dotprod", "fgd", "gpupacking", "gpupool")


def make_scoring_policy(name: str, stats: WorkloadStats) -> ScoringPolicy:
    """The scoring policy called ``name``; ``fgd`` and ``gpupool`` learn from ``stats`` (the
    asks observed so far). KeyError for a name not in POLICY_NAMES."""
    if name == "bestfit":
        return BestFit()
    if name == "dotprod":
        return DotProduct()
    if name == "gpupacking":
        return GpuPacking()
    if name == "fgd":
        return Fgd(stats.typical())
    if name == "gpupool":
        return Gpupool(stats.model())
    raise KeyError(name)
