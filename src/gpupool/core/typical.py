"""What the workload-aware scoring policies learn from the asks they see (docs/packing.md).

:class:`WorkloadStats` counts observed ask shapes through one explicit method, ``observe``; it is
deterministic and holds everything it learns (no global state). From it, ``typical()`` gives
FGD's typical shapes and ``model()`` gpupool's :class:`WorkloadModel`: the typical shapes, the
expected waste of a hole of h milli-GPU (``hole_waste``), the CPU and memory asked per milli-GPU
and how scarce each GPU model is for the asks that insist on it.

Sums of floats are taken in a fixed order (:func:`pairwise_sum`, the order numpy sums in), so
the learned values, and the scores built on them, are the same on every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gpupool.core.scoring import MILLI, AskShape

TYPICAL_POPULARITY = 95  # percent of the asks the typical shapes cover
HOLE_DEAD_KAPPA = 0.2  # how unlikely a hole must be to get filled before it counts as dead

ShapeKey = tuple[int, int, int, str]  # (cpu, gpu_milli, gpus, spec): FGD's shape of an ask


def pairwise_sum(values: Sequence[float]) -> float:
    """The sum of ``values`` in numpy's pairwise order (8 running sums per block of up to 128,
    blocks halved recursively): a fixed order, so the same inputs give the same bits."""
    n = len(values)
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = values[:8]
        end = n - n % 8
        for i in range(8, end, 8):
            r0 += values[i]
            r1 += values[i + 1]
            r2 += values[i + 2]
            r3 += values[i + 3]
            r4 += values[i + 4]
            r5 += values[i + 5]
            r6 += values[i + 6]
            r7 += values[i + 7]
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(end, n):
            total += values[i]
        return total
    half = n // 2
    half -= half % 8
    return pairwise_sum(values[:half]) + pairwise_sum(values[half:])


@dataclass(frozen=True)
class TypicalShape:
    """One typical ask shape of FGD and its weight (the weights of a workload sum to 1).
    ``level`` indexes the shape's per-GPU milli in ``TypicalShapes.thresholds`` (-1: no GPU)."""

    cpu: int
    gpu_milli: int
    gpus: int
    models: frozenset[str] | None  # None: any model
    weight: float
    level: int


@dataclass(frozen=True)
class TypicalShapes:
    """The ask shapes a node's fragmentation is measured against (FGD's typical pods), in
    decreasing popularity; ``thresholds`` are their distinct per-GPU milli, increasing."""

    shapes: tuple[TypicalShape, ...]
    thresholds: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.shapes)

    @classmethod
    def from_counts(
        cls, counts: Mapping[ShapeKey, int], popularity: int = TYPICAL_POPULARITY
    ) -> TypicalShapes:
        """The most popular shapes that together cover ``popularity`` percent of the asks (as in
        the FGD simulator: count order, ties to the larger shape), weights renormalised to 1."""
        if not counts:
            raise ValueError("no asks to learn typical shapes from")
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
        thresholds = tuple(sorted({k[1] for k, _ in chosen if k[1] > 0}))
        shapes = tuple(
            TypicalShape(
                cpu=cpu,
                gpu_milli=milli,
                gpus=gpus,
                models=frozenset(spec.split("|")) if spec else None,
                weight=(count / total) / (cumulative / total),
                level=thresholds.index(milli) if milli > 0 else -1,
            )
            for (cpu, milli, gpus, spec), count in chosen
        )
        return cls(shapes, thresholds)


@dataclass(frozen=True)
class WorkloadModel:
    """What gpupool's policy expects of the asks to come (learned by :class:`WorkloadStats`).

    * ``typical``: FGD's typical shapes;
    * ``hole_waste[h]``: the milli-GPU expected to stay unused on a GPU with h milli free;
    * ``cpu_per_milli``, ``mem_per_milli``: CPU (milli) and memory that GPU asks ask per
      milli-GPU, to tell how much of a node's free GPU its free CPU and memory can still feed;
    * ``scarcity[model]``: the share of the model's GPUs that model-constrained asks need.
    """

    typical: TypicalShapes
    hole_waste: tuple[float, ...]  # [MILLI + 1]
    cpu_per_milli: float
    mem_per_milli: float
    scarcity: Mapping[str, float]


def hole_waste(shared_milli: Mapping[int, int], kappa: float = HOLE_DEAD_KAPPA) -> tuple[float, ...]:
    """W[h]: expected milli-GPU never used on a GPU with h milli free, if the shares that fit
    arrive in proportion to ``shared_milli`` (milli -> count) and each takes its part of the hole.

    A hole that only rare shares fit is likely to stay as it is: with F(h) the fraction of
    shares that fit, the hole is filled with probability F / (F + kappa), else wasted:
    W[h] = (1 - a) h + a E[W[h - s] | s <= h], a = F(h) / (F(h) + kappa)."""
    counts = [0] * (MILLI + 1)
    for milli, count in shared_milli.items():
        if 0 <= milli <= MILLI:
            counts[milli] += count
    total = sum(counts)
    waste = [float(h) for h in range(MILLI + 1)]
    if total == 0:
        return tuple(waste)
    share = [c / total for c in counts]
    sizes = [s for s in range(MILLI + 1) if counts[s]]
    fits = []
    running = 0.0
    for s in share:
        running += s
        fits.append(running)
    for h in range(1, MILLI + 1):
        if fits[h] <= 0:
            continue
        expected = pairwise_sum([share[s] * waste[h - s] for s in sizes if s <= h]) / fits[h]
        filled = fits[h] / (fits[h] + kappa)
        waste[h] = (1.0 - filled) * h + filled * expected
    return tuple(waste)


@dataclass
class WorkloadStats:
    """Counts of the asks seen so far, from which the workload-aware policies learn.

    ``model_gpus`` is the cluster's GPU count per model (what model scarcity is measured
    against). ``observe`` is the only way in; the same asks in the same order give the same
    ``typical()`` and ``model()``."""

    model_gpus: Mapping[str, int]
    shapes: Counter[ShapeKey] = field(default_factory=Counter)
    shared_milli: Counter[int] = field(default_factory=Counter)
    gpu_asks_cpu: int = 0
    gpu_asks_mem: int = 0
    gpu_asks_milli: int = 0
    demand: dict[str, float] = field(default_factory=dict)  # milli-GPU of constrained asks per model

    def __post_init__(self) -> None:
        self._models = sorted(self.model_gpus)
        self._capacity = [float(self.model_gpus[m]) * MILLI for m in self._models]
        for m in self._models:
            self.demand.setdefault(m, 0.0)

    def observe(self, ask: AskShape, n: int = 1) -> None:
        """Count one ask (or ``n`` asks of that shape)."""
        self.shapes[(ask.cpu, ask.gpu_milli, ask.gpus, ask.spec)] += n
        if ask.gpus == 0:
            return
        if ask.shares_gpu:
            self.shared_milli[ask.gpu_milli] += n
        self.gpu_asks_cpu += n * ask.cpu
        self.gpu_asks_mem += n * ask.mem
        self.gpu_asks_milli += n * ask.gpu_total
        if ask.gpu_models:
            # Spread the ask over the models it accepts, in proportion to their capacity.
            usable = [
                c if m in ask.gpu_models else 0.0 for m, c in zip(self._models, self._capacity, strict=True)
            ]
            total = pairwise_sum(usable)
            if total > 0:
                for m, u in zip(self._models, usable, strict=True):
                    self.demand[m] += n * ask.gpu_total * u / total if n != 1 else ask.gpu_total * u / total

    def observe_all(self, asks: Iterable[AskShape]) -> WorkloadStats:
        for ask in asks:
            self.observe(ask)
        return self

    def typical(self, popularity: int = TYPICAL_POPULARITY) -> TypicalShapes:
        return TypicalShapes.from_counts(self.shapes, popularity)

    def model(self) -> WorkloadModel:
        milli = float(self.gpu_asks_milli)
        return WorkloadModel(
            typical=self.typical(),
            hole_waste=hole_waste(self.shared_milli),
            cpu_per_milli=float(self.gpu_asks_cpu) / milli if milli else 0.0,
            mem_per_milli=float(self.gpu_asks_mem) / milli if milli else 0.0,
            scarcity={
                m: (self.demand[m] / c if c > 0 else 0.0)
                for m, c in zip(self._models, self._capacity, strict=True)
            },
        )
