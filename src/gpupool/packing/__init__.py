"""Packing quality on Alibaba's GPU trace: loaders, the FGD paper's experiment, policies.

``gpupool bench pack`` (src/gpupool/cli/bench_cmd.py) drives it; docs/packing.md explains the
experiment and gpupool's own policy. Everything here is numpy over nodes; the scoring functions
in :mod:`gpupool.packing.policies` are pure so the scheduling core can reuse them.
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
