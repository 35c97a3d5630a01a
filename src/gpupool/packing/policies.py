"""The packing policies of ``gpupool bench pack`` and their registry.

Every policy but one is a scoring policy of the core (:mod:`gpupool.core.scoring`:
``bestfit``, ``dotprod``, ``gpupacking``; :mod:`gpupool.core.scorers`: ``fgd``, ``gpupool``), the
very objects the scheduler uses, built here from the pod list of the experiment: the workload
-aware ones learn from it through :class:`gpupool.core.typical.WorkloadStats`, as FGD learns its
typical pods from the trace.

``random`` is the experiment's own baseline, since it needs a random generator, which the core
never holds: a uniformly random feasible node and, for a shared-GPU pod, a uniformly random GPU
that fits (the paper ran RandomScore with random GPU selection).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from gpupool.core.scorers import POLICY_NAMES, make_scoring_policy
from gpupool.core.scoring import AskShape, ScoringPolicy
from gpupool.core.typical import WorkloadStats
from gpupool.packing.alibaba import PodTable


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may know before the first pod: the GPU model names and the cluster's GPU
    count per model (same order), the pod list as given (its shape distribution, as FGD's
    typical pods), and a seeded random generator."""

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


class RandomPolicy:
    """A uniformly random feasible node, and for a shared-GPU pod a uniformly random GPU that
    fits. Not a scoring policy: it draws from the experiment's seeded generator."""

    name: ClassVar[str] = "random"

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def choose_node(self, count: int) -> int:
        """Which of ``count`` feasible nodes (one draw per node, the highest wins)."""
        return int(np.argmax(self._rng.random(count)))

    def choose_gpu(
        self, count: int, chosen: int, gpu_free: tuple[int, ...], milli: int, gpu_slots: int
    ) -> int:
        """Which GPU of the chosen node (the ``chosen``-th of ``count``) gets a share of ``milli``:
        one draw per GPU slot of every feasible node, as the numpy experiment drew them."""
        draws = self._rng.random((count, gpu_slots))[chosen]
        keys = [
            float(draws[g]) if g < len(gpu_free) and gpu_free[g] >= milli else -1.0 for g in range(gpu_slots)
        ]
        return int(np.argmax(keys))


PackingPolicy = ScoringPolicy | RandomPolicy

ShapeKey = tuple[int, int, int, int, str]  # (cpu, mem, num_gpu, gpu_milli, gpu_spec)


def pod_asks(pods: PodTable) -> list[AskShape]:
    """Each pod of the table as an ask shape (equal shapes share one object)."""
    made: dict[ShapeKey, AskShape] = {}
    out = []
    for key in zip(
        pods.cpu_milli.tolist(),
        pods.memory_mib.tolist(),
        pods.num_gpu.tolist(),
        pods.gpu_milli.tolist(),
        pods.gpu_spec,
        strict=True,
    ):
        ask = made.get(key)
        if ask is None:
            cpu, mem, num, milli, spec = key
            models = tuple(spec.split("|")) if spec and num > 0 else ()
            ask = made[key] = AskShape(cpu, mem, num, milli, models)
        out.append(ask)
    return out


def workload_stats(ctx: PolicyContext) -> WorkloadStats:
    """What the workload-aware policies learn: every pod of the list, in file order."""
    gpus = {m: int(n) for m, n in zip(ctx.models, ctx.model_gpus.tolist(), strict=True)}
    return WorkloadStats(gpus).observe_all(pod_asks(ctx.workload))


PolicyFactory = Callable[[PolicyContext], PackingPolicy]


def _scoring(name: str) -> PolicyFactory:
    def build(ctx: PolicyContext) -> PackingPolicy:
        return make_scoring_policy(name, workload_stats(ctx))

    return build


POLICIES: dict[str, PolicyFactory] = {"random": lambda ctx: RandomPolicy(ctx.rng)}
POLICIES.update({name: _scoring(name) for name in POLICY_NAMES})


def policy_names() -> list[str]:
    return sorted(POLICIES)


def make_policy(name: str, ctx: PolicyContext) -> PackingPolicy:
    """Build the policy called ``name``; UnknownPolicyError (listing the valid names) if none."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise UnknownPolicyError(name) from None
    return factory(ctx)
