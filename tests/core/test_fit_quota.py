"""The allocation phase's quota check per GPU type (``fit.quota_blockers``) answers as the general
one does on the typed resources (``fit.quota_blocker(leaf, typed(...))``), type by type."""

from __future__ import annotations

import random

import pytest

from gpupool.core.config import PartitionConfig, QueueConfig
from gpupool.core.fit import quota_blocker, quota_blockers
from gpupool.core.resources import typed
from gpupool.core.scheduler import Scheduler

KEYS = ("gpu", "vcore", "memory", "gpu/H100", "gpu/A100")


def _limits(rng: random.Random) -> dict[str, int] | None:
    if rng.random() < 0.3:
        return None
    return {k: rng.randint(0, 8) * 1000 for k in KEYS if rng.random() < 0.5}


@pytest.mark.parametrize("seed", range(30))
def test_quota_blockers_are_quota_blocker_on_the_typed_resources(seed: int) -> None:
    rng = random.Random(seed)
    leaf_cfg = QueueConfig(name="leaf", max=_limits(rng))
    mid = QueueConfig(name="mid", max=_limits(rng), queues=(leaf_cfg,), parent=True)
    root = QueueConfig(name="root", submit_acl="*", queues=(mid,), parent=True)
    sched = Scheduler(PartitionConfig(name="default", root=root))
    leaf = sched.queues["root.mid.leaf"]
    for _ in range(200):
        for q in leaf.ancestors():
            q.allocated = {k: rng.randint(0, 8) * 1000 for k in KEYS if rng.random() < 0.6}
        res = {k: rng.randint(0, 3) * 1000 for k in ("gpu", "vcore", "memory") if rng.random() < 0.8}
        if rng.random() < 0.1:
            res["gpu/H100"] = rng.randint(0, 3) * 1000  # a typed key in the ask itself
        types = rng.sample([None, "H100", "A100", "L40S"], rng.randint(1, 4))
        gpus = res.get("gpu", 0)
        expected = [quota_blocker(leaf, typed(res, t, gpus)) for t in types]
        assert quota_blockers(leaf, res, types, gpus) == expected, (res, types)
