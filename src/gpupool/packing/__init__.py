"""Packing quality on Alibaba's GPU trace: loaders, the FGD paper's experiment, policies.

``gpupool bench pack`` (src/gpupool/cli/bench_cmd.py) drives it; docs/packing.md explains the
experiment and gpupool's own policy. The policies are the scheduling core's
(:mod:`gpupool.core.scoring`, :mod:`gpupool.core.scorers`); this package holds the trace
loaders, the experiment's loop and report, and the bench-only ``random`` baseline.
"""

from __future__ import annotations

from gpupool.packing.alibaba import LoadError, NodeTable, PodTable, load_nodes, load_pods
from gpupool.packing.experiment import (
    DEFAULT_RATIO,
    DEFAULT_SEEDS,
    PackResult,
    SeedResult,
    run_pack,
    run_seed,
)
from gpupool.packing.policies import UnknownPolicyError, make_policy, policy_names

__all__ = [
    "DEFAULT_RATIO",
    "DEFAULT_SEEDS",
    "LoadError",
    "NodeTable",
    "PackResult",
    "PodTable",
    "SeedResult",
    "UnknownPolicyError",
    "load_nodes",
    "load_pods",
    "make_policy",
    "policy_names",
    "run_pack",
    "run_seed",
]
